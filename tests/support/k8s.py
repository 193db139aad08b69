"""Kubernetes API answers recorded as JSON, for `status.Source` users (status, check)."""

from __future__ import annotations

import json
from pathlib import Path

RECORDED = Path(__file__).resolve().parents[1] / "plugin" / "data" / "k8s"


class Recorded:
    """A status.Source answering from API responses saved as JSON (camelCase, as the API
    server sends them and `sanitize_for_serialization` returns them)."""

    def __init__(self, scenario: str):
        self.dir = RECORDED / scenario

    def _load(self, name: str):
        path = self.dir / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def deployment(self, name):
        return self._load(f"deployment-{name}")

    def statefulset(self, name):
        return self._load(f"statefulset-{name}")

    def pods(self, selector):
        return (self._load("pods") or {"items": []})["items"]

    def service_get(self, service, path):
        answer = self._load("proxy")
        if answer is None:
            raise ConnectionError("503 Service Unavailable: no endpoints available")
        return answer[path.rsplit("/", 1)[-1]]
