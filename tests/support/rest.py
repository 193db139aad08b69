"""MLflow's REST API at the server's in-cluster address, as a pod calls it, without
raising on a refusal: tests assert the status and read the message."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def call(dep, path: str, body: dict | None = None, headers: dict | None = None,
         method: str | None = None) -> tuple[int, bytes]:  # fmt: skip
    """`<prefix>/api/2.0/mlflow/<path>` (or an absolute path): (status, body)."""
    prefix = dep.config.mlflow.route_path
    url = path if path.startswith("/") else f"{prefix}/api/2.0/mlflow/{path}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{dep.server_port}{url}",
        data=json.dumps(body).encode() if body is not None else None, method=method,
        headers={"Host": f"mlflow.{dep.namespace}.svc:5000",
                 "Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def bearer(dep, user: str) -> dict[str, str]:
    """A new JupyterHub token of `user` (verified, with their groups, on first use)."""
    return {"Authorization": f"Bearer {dep.hub.token(user)[0]}"}
