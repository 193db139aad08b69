"""A real `mlflow server` process on loopback, for tests and benchmarks.

Runs from the interpreter's own environment (the mlflow virtualenv), with a
SQLite backend and local artifacts in a temporary directory unless told
otherwise. Bounded in time: start waits at most `start_timeout` seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        backend_store_uri: str | None = None,
        static_prefix: str = "",
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 90.0,
        python: str | None = None,
        workers: int = 1,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.workdir / 'mlflow.db'}"
        self.static_prefix = static_prefix
        self.extra_args = extra_args or []
        self.env = env or {}
        self.start_timeout = start_timeout
        self.python = python or sys.executable
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.static_prefix}"

    def start(self) -> MlflowServer:
        args = [
            self.python, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.workdir / "artifacts"),
        ]  # fmt: skip
        if self.workers:
            args += ["--workers", str(self.workers)]
        if self.static_prefix:
            args += ["--static-prefix", self.static_prefix]
        args += self.extra_args
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **self.env}
        env.pop("MLFLOW_TRACKING_URI", None)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"mlflow server not healthy: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
