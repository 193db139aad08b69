"""`nebari destroy` never loses MLflow data silently: through nebari's own
destroy_configuration (stages entered in order, deleted in reverse), the stage either
backs up to a store that survives or stops before any stage deletes anything.

The backup itself runs against real PostgreSQL and the S3 emulator in
tests/e2e/test_destroy_backup.py; here the decisions and the stop.
"""

from __future__ import annotations

import contextlib
import json
import shlex

import kubernetes_validate
import pytest
from _nebari.destroy import destroy_configuration
from _nebari.provider import opentofu
from support import nebari as nb
from support.k8s_api import write_kubeconfig

from nebari_mlflow_plugin.lifecycle import final_backup
from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

S3 = {"type": "s3", "s3": {"bucket": "team-bucket", "credentials_secret": "s3"}}
EXTERNAL = {"type": "external", "external_secret": {"name": "db"}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    monkeypatch.setenv("NEBARI_MLFLOW_SKIP_PREFLIGHT", "1")


def _decision(provider: str, mlflow: dict) -> final_backup.Decision:
    return final_backup.decide(nb.validate(nb.config_dict(provider, mlflow)))


@pytest.mark.parametrize(
    ("provider", "mlflow", "backs_up", "loses"),
    [
        ("local", {}, False, ["artifact volume (claim mlflow-artifacts) and the database backups"]),
        ("existing", {"artifacts": {"existing_claim": "mine"}}, False, ["(claim mine)"]),
        ("local", {"artifacts": S3}, True, []),
        ("local", {"artifacts": S3, "database": EXTERNAL}, False, []),
        ("local", {"database": EXTERNAL}, False, ["artifact volume (claim mlflow-artifacts):"]),
        ("aws", {}, True, []),
        ("gcp", {}, True, []),
        ("azure", {}, True, []),
        ("azure", {"database": EXTERNAL}, False, []),
        ("aws", {"backup": {"enabled": False}}, False, ["mlflow.backup.enabled is false"]),
        ("gcp", {"enabled": False}, False, ["MLflow is disabled"]),
        ("local", {"force_destroy": True}, False, []),
        ("aws", {"force_destroy": True}, False, []),
    ],
)
def test_every_store_combination_is_backed_up_kept_or_refused(provider, mlflow, backs_up, loses):
    decision = _decision(provider, mlflow)
    assert decision.back_up is backs_up
    assert len(decision.lost) == len(loses)
    for lost, said in zip(decision.lost, loses, strict=True):
        assert said in lost


def _copy_pod(command: str) -> dict:
    args = shlex.split(command)
    (overrides,) = [a.split("=", 1)[1] for a in args if a.startswith("--overrides=")]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": args[4]},
            **json.loads(overrides)}  # fmt: skip


def test_the_copy_out_commands_name_the_claim_and_a_valid_pod():
    config = nb.validate(nb.config_dict("local", {}))
    commands = final_backup.copy_out_commands(config)
    assert commands[0] == "nebari mlflow backup -c nebari-config.yaml"  # fresh, onto the volume
    run = next(c for c in commands if " run " in c)
    pod = _copy_pod(run)
    kubernetes_validate.validate(pod, "1.31", strict=True)
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": "mlflow-artifacts", "readOnly": True}
    copy = next(c for c in commands if " cp " in c)
    assert shlex.split(copy)[-2:] == ["mlflow-copy-out:/artifacts", "./mlflow-artifacts"]
    assert commands[-1].endswith("delete pod mlflow-copy-out")


class Recorder:
    """What nebari's destroy asked of the stages: entered, destroyed."""

    def __init__(self):
        self.events: list[str] = []

    def stage(self, name: str, priority: int):
        events = self.events

        class Stage:
            def __init__(self, output_directory, config):
                self.name = name

            @contextlib.contextmanager
            def destroy(self, stage_outputs, status):
                events.append(f"entered {name}")
                yield
                events.append(f"destroyed {name}")
                status[name] = True

        Stage.priority = priority
        return Stage


def _nebari_destroy(monkeypatch, tmp_path, provider: str, mlflow: dict, recorder: Recorder):
    """nebari's destroy_configuration over stage 03's stand-in and the real MlflowStage."""
    monkeypatch.chdir(tmp_path)
    config = nb.validate(nb.config_dict(provider, mlflow))
    tofu = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: tofu.append(kw) or {})
    monkeypatch.setattr(opentofu, "run_tofu_subprocess", lambda *a, **k: b"")

    class Mlflow(MlflowStage):
        def destroy(self, stage_outputs, status, ignore_errors=True):
            stage_outputs.update(nb.STAGE_OUTPUTS)  # what stages 02-07 report
            return super().destroy(stage_outputs, status, ignore_errors)

    stages = [recorder.stage("03-kubernetes-initialize", 30), Mlflow]
    destroy_configuration(config, stages)
    return tofu


def test_destroy_stops_before_any_stage_deletes_when_volumes_would_be_lost(
    monkeypatch, tmp_path, capsys
):
    recorder = Recorder()
    with pytest.raises(SystemExit) as stopped:
        _nebari_destroy(monkeypatch, tmp_path, "local", {}, recorder)
    assert stopped.value.code == 1
    out = capsys.readouterr().out
    # Stage 03 (the namespace and its claims) was entered, never destroyed.
    assert recorder.events == ["entered 03-kubernetes-initialize"]
    assert "claim mlflow-artifacts" in out and "database backups" in out
    assert "kubectl -n dev cp mlflow-copy-out:/artifacts ./mlflow-artifacts" in out
    assert "mlflow.force_destroy: true" in out and "Nothing was deleted" in out


def test_force_destroy_is_the_admins_yes(monkeypatch, tmp_path, capsys):
    recorder = Recorder()
    tofu = _nebari_destroy(monkeypatch, tmp_path, "local", {"force_destroy": True}, recorder)
    assert recorder.events[-1] == "destroyed 03-kubernetes-initialize"
    assert [call["tofu_destroy"] for call in tofu] == [False, True]
    assert "no backup is taken" in capsys.readouterr().out


def test_an_unreachable_cluster_stops_the_destroy_before_anything_is_deleted(
    monkeypatch, tmp_path, capsys
):
    """The backup cannot be written: nothing is destroyed, and the admin reads why."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": "http://127.0.0.1:9"}, "c")
    monkeypatch.setitem(
        nb.STAGE_OUTPUTS, "stages/02-infrastructure",
        {**nb.STAGE_OUTPUTS["stages/02-infrastructure"],
         "kubeconfig_filename": {"value": str(kubeconfig)}},
    )  # fmt: skip
    recorder = Recorder()
    with pytest.raises(SystemExit):
        _nebari_destroy(monkeypatch, tmp_path, "aws", {}, recorder)
    out = capsys.readouterr().out
    assert recorder.events == ["entered 03-kubernetes-initialize"]
    assert "pre-destroy backup failed: no cluster reachable" in out
    assert "stopped before deleting anything" in out
