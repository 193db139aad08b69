"""Helpers (no tests): drive real tracked kernels with jupyter_client.

Shared by the capture tests and benchmarks/cell_overhead.py.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from nebari_mlflow_plugin.notebook import kernel

PACKAGE_EXTENSION = "nebari_mlflow_plugin.notebook.capture"


def start_kernel(
    extension: str | None, env: dict[str, str], cwd: Path | None = None
) -> tuple[KernelManager, Any]:
    """A kernel via jupyter_client; `extension=None` is the plain ipykernel."""
    spec_root = Path(tempfile.mkdtemp(prefix="kernels-"))
    name = "tracked" if extension else "plain"
    if extension:
        spec = kernel.kernel_json(extension=extension)
    else:
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "plain",
            "language": "python",
        }
    (spec_root / name).mkdir()
    (spec_root / name / "kernel.json").write_text(json.dumps(spec))
    km = KernelManager(
        kernel_name=name, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)])
    )
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **env}
    if "MLFLOW_TRACKING_URI" not in env:
        full_env.pop("MLFLOW_TRACKING_URI", None)
    km.start_kernel(env=full_env, cwd=str(cwd) if cwd else None)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def execute(kc: Any, code: str, timeout: float = 30) -> tuple[dict, list[dict], float]:
    """Run one cell; returns (shell reply, iopub messages, wall seconds)."""
    msgs: list[dict] = []
    t0 = time.perf_counter()
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=msgs.append)
    return reply, msgs, time.perf_counter() - t0


def stop_kernel(km: KernelManager, kc: Any) -> None:
    try:
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=False)


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
