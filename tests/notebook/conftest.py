"""Fixtures for the notebook side; these tests run in the mlflow environment."""

from __future__ import annotations

import pytest
from support.mlflow_server import MlflowServer


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real MLflow server for the session (SQLite + local artifacts)."""
    with MlflowServer(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture
def make_mlflow_server(tmp_path):
    """Factory for servers a test starts and stops itself (down/up scenarios)."""
    servers: list[MlflowServer] = []

    def make(**kwargs) -> MlflowServer:
        server = MlflowServer(tmp_path / f"server-{len(servers)}", **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
