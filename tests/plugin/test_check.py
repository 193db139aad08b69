"""nebari's post-deploy check reads the cluster nebari deployed to: a kubeconfig with
several contexts (usual with `existing` clusters) must not send it to another one.

Each context points at its own loopback API server answering with recorded
responses; the real kubernetes client loads the kubeconfig and picks the context."""

from __future__ import annotations

import time

import pytest
import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support.k8s_api import serving, write_kubeconfig
from typer.testing import CliRunner

from nebari_mlflow_plugin.stages import mlflow_stage as stage_module


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


@pytest.fixture
def two_clusters(tmp_path):
    """(kubeconfig, healthy api, crashloop api); the current-context is the broken one."""
    with serving("healthy", "crashloop") as (healthy, crashloop):
        kubeconfig = write_kubeconfig(
            tmp_path / "kubeconfig",
            {"healthy-cluster": healthy.url, "other-cluster": crashloop.url},
            current="other-cluster",
        )
        yield kubeconfig, healthy, crashloop


def _outputs(kubeconfig) -> dict:
    """Stage outputs with stage 02's kubeconfig_filename pointing at the test's file."""
    infrastructure = {"kubeconfig_filename": {"value": str(kubeconfig)}}
    return {**nb.STAGE_OUTPUTS, "stages/02-infrastructure": infrastructure}


def _existing_config(context: str):
    return nb.validate(nb.config_dict("existing", existing={"kube_context": context}))


def test_check_reads_the_context_nebari_deployed_to(monkeypatch, tmp_path, two_clusters, capsys):
    kubeconfig, healthy, crashloop = two_clusters
    monkeypatch.setattr(stage_module, "CHECK_TIMEOUT_SECONDS", 2)
    monkeypatch.setattr(stage_module, "CHECK_POLL_SECONDS", 0.2)
    stage = nb.stage_for(_existing_config("healthy-cluster"), tmp_path)
    started = time.monotonic()
    stage.check(_outputs(kubeconfig))  # SystemExit(1) when it polls the crash-looping cluster
    assert time.monotonic() - started < 2
    assert "MLflow is available at https://nebari.example.com/mlflow/" in capsys.readouterr().out
    assert any(path.endswith("/deployments/mlflow") for path in healthy.requests)
    assert crashloop.requests == []


def test_check_fails_on_the_named_cluster_when_broken(monkeypatch, tmp_path, two_clusters, capsys):
    kubeconfig, healthy, _ = two_clusters
    monkeypatch.setattr(stage_module, "CHECK_TIMEOUT_SECONDS", 0)
    stage = nb.stage_for(_existing_config("other-cluster"), tmp_path)
    with pytest.raises(SystemExit):
        stage.check(_outputs(kubeconfig))
    assert "CrashLoopBackOff" in capsys.readouterr().out
    assert healthy.requests == []


def test_status_command_reads_the_same_context(monkeypatch, tmp_path, two_clusters):
    """`nebari mlflow status` asks the same function: the config's context, no flag needed."""
    kubeconfig, healthy, crashloop = two_clusters
    config = tmp_path / "nebari-config.yaml"
    config.write_text(
        yaml.safe_dump(nb.config_dict("existing", existing={"kube_context": "healthy-cluster"}))
    )
    result = CliRunner().invoke(
        create_cli(), ["mlflow", "status", "-c", str(config), "--kubeconfig", str(kubeconfig)]
    )
    assert result.exit_code == 0, result.output
    assert crashloop.requests == []
    assert any("/proxy/mlflow/health" in path for path in healthy.requests)
