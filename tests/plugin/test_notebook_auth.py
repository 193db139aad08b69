"""The notebook package's request auth: the pod's JupyterHub token, to its MLflow only."""

from __future__ import annotations

import json
import os
import time

import pytest
import requests

from nebari_mlflow_plugin.notebook.auth import PROVIDER_NAME, NebariHubAuthProvider

SERVER = "http://mlflow.dev.svc:5000/mlflow"


@pytest.fixture(autouse=True)
def token_file(monkeypatch, tmp_path):
    """Where a workflow token would be kept (none unless a test writes it)."""
    path = tmp_path / "workflow-token.json"
    monkeypatch.setenv("NEBARI_MLFLOW_TOKEN_FILE", str(path))
    return path


def sent(url: str, headers: dict | None = None) -> dict:
    auth = NebariHubAuthProvider().get_auth()
    return dict(auth(requests.Request("GET", url, headers=headers).prepare()).headers)


def test_the_token_goes_to_the_pods_server_read_at_each_request(monkeypatch):
    monkeypatch.setenv("NEBARI_MLFLOW_SERVER", SERVER)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "first")
    assert NebariHubAuthProvider().get_name() == PROVIDER_NAME == "nebari-jupyterhub"
    url = f"{SERVER}/api/2.0/mlflow/runs/create"
    assert sent(url)["Authorization"] == "Bearer first"
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "rotated")
    assert sent(url)["Authorization"] == "Bearer rotated"


def test_never_to_another_host_nor_over_explicit_credentials(monkeypatch):
    monkeypatch.setenv("NEBARI_MLFLOW_SERVER", SERVER)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "secret")
    for url in (
        "https://mlflow.example.com/api/2.0/mlflow/runs/create",
        "http://mlflow.dev.svc:5001/mlflow/api",
        "https://mlflow.dev.svc:5000/mlflow",
    ):
        assert "Authorization" not in sent(url), url
    explicit = sent(f"{SERVER}/api", {"Authorization": "Basic c3ZjOnB3"})
    assert explicit["Authorization"] == "Basic c3ZjOnB3"
    monkeypatch.delenv("NEBARI_MLFLOW_SERVER")
    assert "Authorization" not in sent(f"{SERVER}/api")


_writes = iter(range(1, 1000))


def keep(path, token: str, expires_at: float) -> None:
    path.write_text(json.dumps({"token": token, "expires_at": expires_at}))
    # A distinct mtime each write, as a rewrite some time later has (the provider re-reads
    # the file when it changes).
    stamp = time.time_ns() + next(_writes) * 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def test_a_valid_workflow_token_goes_before_the_servers_until_it_expires(monkeypatch, token_file):
    """Argo steps copy the server's token, deleted when the server stops; the workflow
    token made in JupyterLab outlives it."""
    monkeypatch.setenv("NEBARI_MLFLOW_SERVER", SERVER)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    url = f"{SERVER}/api/2.0/mlflow/runs/create"
    keep(token_file, "workflow-token", time.time() + 3600)
    assert sent(url)["Authorization"] == "Bearer workflow-token"
    assert "Authorization" not in sent("https://elsewhere.example.com/api")  # only to MLflow
    keep(token_file, "expired-token", time.time() - 1)
    assert sent(url)["Authorization"] == "Bearer server-token"
    token_file.write_text("not json")
    assert sent(url)["Authorization"] == "Bearer server-token"
