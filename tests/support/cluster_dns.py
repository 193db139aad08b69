"""Cluster DNS and Service ports for local Python processes.

In a pod, `mlflow.dev.svc:5000` resolves to the Service and kube-proxy forwards
to the server. Here a sitecustomize on PYTHONPATH makes `socket.getaddrinfo`
answer those names with 127.0.0.1 and the local port, so clients use the real
in-cluster URL (and send its Host header) unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

ENV = "TEST_CLUSTER_DNS"

SITECUSTOMIZE = """
import json, os, socket
_MAP = json.loads(os.environ.get("TEST_CLUSTER_DNS", "{}"))
if _MAP:
    _getaddrinfo = socket.getaddrinfo
    def getaddrinfo(host, port, *args, **kwargs):
        target = _MAP.get(f"{host}:{port}")
        if target is not None:
            host, port = "127.0.0.1", target
        return _getaddrinfo(host, port, *args, **kwargs)
    socket.getaddrinfo = getaddrinfo
"""


def client_env(workdir: Path, services: dict[str, int]) -> dict[str, str]:
    """Env for a process that should reach `host:port` keys of `services` locally."""
    directory = Path(workdir) / "cluster-dns"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": str(directory), ENV: json.dumps(services)}
