"""A loopback Kubernetes API server answering with recorded responses.

Serves the paths `status.KubernetesSource` reads (Deployment, StatefulSet, Pods,
the service proxy) from a scenario under tests/plugin/data/k8s, so the real
kubernetes client, kubeconfig loading and context selection are exercised.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from support.http_answer import answer
from support.k8s import RECORDED

OBJECT = re.compile(r"^/apis/apps/v1/namespaces/[^/]+/(deployments|statefulsets)/([^/]+)$")
PODS = re.compile(r"^/api/v1/namespaces/[^/]+/pods$")
PROXY = re.compile(r"^/api/v1/namespaces/[^/]+/services/[^/]+/proxy/(.*)$")
PVC = re.compile(r"^/api/v1/namespaces/[^/]+/persistentvolumeclaims/([^/]+)$")
STORAGE_CLASS = re.compile(r"^/apis/storage.k8s.io/v1/storageclasses/([^/]+)$")
KIND_FILE = {"deployments": "deployment", "statefulsets": "statefulset"}


class RecordedApi:
    """One fake API server; `requests` lists the paths it was asked for."""

    def __init__(self, scenario: str | Path):
        self.dir = RECORDED / scenario  # an absolute path stays itself
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                api.requests.append(path)
                status, body, kind = api.answer(path)
                answer(self, status, body, kind)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _load(self, name: str):
        path = self.dir / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def answer(self, path: str) -> tuple[int, object, str]:
        if match := OBJECT.match(path):
            found = self._load(f"{KIND_FILE[match[1]]}-{match[2]}")
            if found is None:
                return 404, _status(404, f"{match[1]} {match[2]!r} not found"), "application/json"
            return 200, found, "application/json"
        for pattern, prefix in ((PVC, "pvc"), (STORAGE_CLASS, "storageclass")):
            if match := pattern.match(path):
                found = self._load(f"{prefix}-{match[1]}")
                if found is None:
                    return 404, _status(404, f"{prefix} {match[1]!r} not found"), "application/json"
                return 200, found, "application/json"
        if PODS.match(path):
            return 200, self._load("pods") or {"kind": "PodList", "items": []}, "application/json"
        if match := PROXY.match(path):
            answers = self._load("proxy")
            if answers is None:
                return 503, _status(503, "no endpoints available"), "application/json"
            return 200, answers[match[1].rsplit("/", 1)[-1]], "text/plain"
        return 404, _status(404, f"not recorded: {path}"), "application/json"


def _status(code: int, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "message": message}  # fmt: skip


@contextmanager
def serving(*scenarios: str | Path) -> Iterator[list[RecordedApi]]:
    """Start one server per scenario (daemon threads), stop them on exit."""
    apis = [RecordedApi(scenario) for scenario in scenarios]
    threads = [threading.Thread(target=a.server.serve_forever, daemon=True) for a in apis]
    for thread in threads:
        thread.start()
    try:
        yield apis
    finally:
        for api in apis:
            api.server.shutdown()
            api.server.server_close()


def write_kubeconfig(path: Path, contexts: dict[str, str], current: str) -> Path:
    """A kubeconfig with one cluster and user per context name -> server URL."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": current,
                "clusters": [{"name": n, "cluster": {"server": u}} for n, u in contexts.items()],
                "users": [{"name": n, "user": {"token": f"token-{n}"}} for n in contexts],
                "contexts": [
                    {"name": n, "context": {"cluster": n, "user": n, "namespace": "dev"}}
                    for n in contexts
                ],
            }
        )
    )
    return path
