"""`nebari mlflow` through nebari's own CLI app (typer), as an admin runs it."""

from __future__ import annotations

import json

import pytest
import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support.k8s import Recorded
from typer.testing import CliRunner

from nebari_mlflow_plugin.lifecycle import status

EXAMPLES = sorted(nb.EXAMPLES_DIR.glob("*/nebari-config.yaml"))


def run(*args: str):
    result = CliRunner().invoke(create_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.output


def run_wide(*args: str):
    """As run(), with tables unfolded: assertions read whole rows."""
    result = CliRunner().invoke(
        create_cli(), list(args), env={"COLUMNS": "400"}, catch_exceptions=False
    )
    return result.exit_code, result.output


def test_mlflow_commands_are_registered():
    code, output = run("mlflow", "--help")
    assert code == 0
    for command in ("render", "status"):
        assert command in output


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_render_writes_terraform_values_and_manifests(example, tmp_path):
    config = yaml.safe_load(example.read_text())
    code, output = run("mlflow", "render", "-c", str(example), "-o", str(tmp_path))
    assert code == 0, output
    stage_dir = tmp_path / "stages" / "mlflow"
    assert (stage_dir / "main.tf").is_file()
    assert (stage_dir / "chart" / "mlflow" / "Chart.yaml").is_file()
    # The tfvars the stage would hand to OpenTofu, with deploy-time outputs marked.
    tfvars = json.loads((stage_dir / "preview.tfvars.json").read_text())
    assert tfvars["namespace"] == config["namespace"]
    assert tfvars["domain"] == config["domain"]
    values = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert values["ingressRoute"]["host"] == config["domain"]
    manifests = [yaml.safe_load(p.read_text()) for p in (tmp_path / "manifests").glob("*.yaml")]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "IngressRoute", "NetworkPolicy"} <= kinds
    # The user-pod ConfigMaps come from the stage that runs before JupyterHub's.
    client_dir = tmp_path / "stages" / "mlflow-notebook-client"
    assert (client_dir / "main.tf").is_file()
    client_vars = json.loads((client_dir / "preview.tfvars.json").read_text())
    assert "mlflow-notebook-package" in client_vars["config_maps"]
    # The summary names the URL, the in-cluster URI, the image and what is kept.
    flat = " ".join(output.split())
    assert f"https://{config['domain']}/mlflow/" in flat
    assert f"http://mlflow.{config['namespace']}.svc:5000/mlflow" in flat
    assert "ghcr.io/mlflow/mlflow:v3.17.2-full" in flat
    assert "kept" in flat
    # ...and what user pods get mounted, by ConfigMap.
    assert "user pod mounts" in flat and "ConfigMap mlflow-notebook-package" in flat


def test_render_marks_unknown_domain_as_placeholder(tmp_path):
    config = nb.config_dict()
    del config["domain"]
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(config))
    code, output = run("mlflow", "render", "-c", str(path), "-o", str(tmp_path / "out"))
    assert code == 0, output
    tfvars = json.loads((tmp_path / "out/stages/mlflow/preview.tfvars.json").read_text())
    assert tfvars["domain"].startswith("PLACEHOLDER-")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ({"mlflow": {"replicas": 0}}, "mlflow.replicas"),
        ({"mlflow": {"database": {"type": "external"}}}, "external_secret"),
    ],
)
def test_errors_are_one_line(tmp_path, content, expected):
    path = tmp_path / "nebari-config.yaml"
    if content is not None:
        path.write_text(yaml.safe_dump(nb.config_dict(**content)))
    code, output = run("mlflow", "render", "-c", str(path), "-o", str(tmp_path / "out"))
    assert code == 1
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert expected in lines[0]


def test_status_without_cluster_is_one_line(tmp_path):
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict()))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, output = run(
        "mlflow", "status", "-c", str(path), "--kubeconfig", str(kubeconfig), "--context", "x"
    )
    assert code == 1
    assert output.strip().startswith("error: no cluster reachable")


# --- status logic on recorded API responses -----------------------------------


def test_status_healthy():
    report = status.collect(Recorded("healthy"), "dev", "/mlflow")
    assert report.healthy, report.rows
    assert report.version == "3.17.2"
    assert [row[0] for row in report.rows] == [
        "MLflow Deployment",
        "PostgreSQL StatefulSet",
        "MLflow /health",
    ]


def test_status_crashlooping_server():
    report = status.collect(Recorded("crashloop"), "dev", "/mlflow")
    assert not report.healthy
    detail = dict((what, detail) for what, _, detail in report.rows)
    assert "CrashLoopBackOff" in detail["MLflow Deployment"]
    assert "no answer" in detail["MLflow /health"]


def test_status_not_deployed():
    report = status.collect(Recorded("absent"), "dev", "/mlflow")
    assert not report.healthy
    assert "not found" in report.rows[0][2]


# --- preflight (cloud calls monkeypatched: they would leave the machine) ------------


@pytest.fixture
def gcp_config(tmp_path, monkeypatch):
    monkeypatch.delenv("NEBARI_MLFLOW_SKIP_PREFLIGHT", raising=False)
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict("gcp", {})))
    return path


def test_preflight_passes_when_the_cloud_grants_everything(gcp_config, monkeypatch):
    from nebari_mlflow_plugin.providers import preflight

    asked = []
    monkeypatch.setattr(
        preflight, "_gcp_test_permissions", lambda project, perms: asked.append(project) or perms
    )
    code, output = run_wide("mlflow", "preflight", "-c", str(gcp_config))
    assert code == 0, output
    assert "pre-flight passed for provider gcp" in output
    assert asked == ["my-gcp-project"]


def test_preflight_names_the_missing_permission(gcp_config, monkeypatch):
    from nebari_mlflow_plugin.providers import preflight

    monkeypatch.setattr(
        preflight,
        "_gcp_test_permissions",
        lambda project, perms: [p for p in perms if p != "iam.serviceAccounts.create"],
    )
    code, output = run_wide("mlflow", "preflight", "-c", str(gcp_config))
    assert code == 1, output
    (row,) = [line for line in output.splitlines() if "GCP permission" in line]
    assert "failed" in row and "lacks iam.serviceAccounts.create" in row
    assert "pre-flight failed for provider gcp" in output and "passed" not in output


def test_preflight_that_could_not_ask_does_not_say_passed(gcp_config, monkeypatch):
    from nebari_mlflow_plugin.providers import preflight

    def no_credentials(project, permissions):
        raise preflight.PreflightSkipped("no Google credentials: ADC not found")

    monkeypatch.setattr(preflight, "_gcp_test_permissions", no_credentials)
    code, output = run_wide("mlflow", "preflight", "-c", str(gcp_config))
    assert code == 2, output
    assert "not checked" in output and "no Google credentials" in output
    assert "passed" not in output and "1 check(s) not run" in output


def test_preflight_with_the_skip_variable_says_it_did_not_run(gcp_config, monkeypatch):
    monkeypatch.setenv("NEBARI_MLFLOW_SKIP_PREFLIGHT", "1")
    code, output = run_wide("mlflow", "preflight", "-c", str(gcp_config))
    assert code == 2 and "pre-flight not run" in output and "passed" not in output


def test_preflight_of_a_volume_provider_has_nothing_to_ask(tmp_path):
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict("local", {})))
    code, output = run("mlflow", "preflight", "-c", str(path))
    assert code == 0 and "nothing to check for provider local" in output
    assert "passed" not in output
