"""A throwaway PostgreSQL cluster (Debian's postgresql, initdb) on loopback."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

from support.mlflow_server import free_port


def postgres_bin_dir() -> Path | None:
    """Directory holding initdb/postgres/pg_ctl, or None when PostgreSQL is absent."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


class Postgres:
    def __init__(
        self, workdir: Path, *, user: str = "mlflow", password: str, database: str = "mlflow"
    ):
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb) not installed")
        self.bin = bin_dir
        self.workdir = Path(workdir)
        self.data = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.port = free_port()
        self.user, self.password, self.database = user, password, database
        self.log = self.workdir / "postgres.log"

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, check=True, capture_output=True, text=True, timeout=120, **kwargs
        )

    def init(self) -> Postgres:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        return self

    def start(self) -> Postgres:
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )  # fmt: skip
        return self

    def create_database(self) -> Postgres:
        env = {**os.environ, "PGPASSWORD": self.password}
        psql = shutil.which("psql") or str(self.bin / "psql")
        self._run(
            psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "postgres",
            "-c", f'CREATE DATABASE "{self.database}"', env=env,
        )  # fmt: skip
        return self

    def query(self, sql: str) -> str:
        """One value from psql (-tA), as text."""
        env = {**os.environ, "PGPASSWORD": self.password}
        psql = shutil.which("psql") or str(self.bin / "psql")
        return self._run(
            psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", self.database,
            "-tAc", sql, env=env,
        ).stdout.strip()  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip

    def restart(self) -> None:
        self.stop()
        time.sleep(0.5)
        self.start()

    def __enter__(self) -> Postgres:
        return self.init().start().create_database()

    def __exit__(self, *exc) -> None:
        self.stop("immediate")
