"""A throwaway PostgreSQL cluster (Debian's postgresql, initdb) on loopback."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
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
        # PostgreSQL refuses to run as root (CI runs as root): then the server runs as
        # the `postgres` account Debian's package creates, in a directory it owns.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            workdir = Path(tempfile.mkdtemp(prefix="pg-"))
            os.chown(workdir, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
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

    def _server(self, *args: str) -> subprocess.CompletedProcess:
        return self._run(*self.as_user, *args)

    def init(self) -> Postgres:
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password)
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self._server("mkdir", "-p", str(self.socket_dir))
        self._server(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        return self

    def start(self) -> Postgres:
        self._server(
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
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                 "stop"],
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
        if self.as_user:
            shutil.rmtree(self.workdir, ignore_errors=True)
