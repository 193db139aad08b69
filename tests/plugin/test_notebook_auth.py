"""The notebook package's request auth: the pod's JupyterHub token, to its MLflow only."""

from __future__ import annotations

import requests

from nebari_mlflow_plugin.notebook.auth import PROVIDER_NAME, NebariHubAuthProvider

SERVER = "http://mlflow.dev.svc:5000/mlflow"


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
