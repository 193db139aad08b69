"""`nebari destroy` never loses MLflow data silently: through nebari's own
destroy_configuration (stages entered in order, deleted in reverse), the stage either
backs up to a store that survives or stops before any stage deletes anything.

The backup itself runs against real PostgreSQL and the S3 emulator in
tests/e2e/test_destroy_backup.py; here the decisions and the stop.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shlex

import kubernetes_validate
import pytest
from _nebari.destroy import destroy_configuration
from _nebari.provider import opentofu
from support import nebari as nb
from support.k8s_api import write_kubeconfig
from support.k8s_store import serving
from support.release import find, render_release

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


def _check_copy_pod(commands: list[str], claim: str, mount: str, target: str) -> None:
    pod = _copy_pod(next(c for c in commands if " run " in c))
    kubernetes_validate.validate(pod, "1.31", strict=True)
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    copy = next(c for c in commands if " cp " in c)
    assert shlex.split(copy)[-2:] == [f"mlflow-copy-out:{mount}", target]
    assert commands[-1].endswith("delete pod mlflow-copy-out")


def test_the_copy_out_commands_name_the_claim_and_a_valid_pod():
    config = nb.validate(nb.config_dict("local", {}))
    commands = final_backup.copy_out_commands(config)
    assert commands[0] == "nebari mlflow backup -c nebari-config.yaml"  # fresh, onto the volume
    _check_copy_pod(commands, "mlflow-artifacts", "/artifacts", "./mlflow-artifacts")
    # The database's files, when its PostgreSQL is not running (a pg_dump when it is).
    stopped = final_backup.Unreachable("mine-db", "gone", "deploy again", serving=False)
    _, commands = final_backup.database_copy_out(config, stopped)
    _check_copy_pod(commands, "mine-db", "/database", "./mlflow-database")


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


# A local cluster with an S3-compatible store: its destroy backs the database up.
BACKED_UP = ("local", {"artifacts": S3})


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> list[dict]:
    """What a deploy of BACKED_UP leaves in the cluster, rendered by the chart."""
    config = nb.validate(nb.config_dict(*BACKED_UP))
    stage = nb.stage_for(config, tmp_path_factory.mktemp("stage"))
    return render_release(stage, nb.STAGE_OUTPUTS)


def _objects(release, *, keep: set[str], postgres_ready: int = 1) -> dict[str, list[dict]]:
    """The release's objects in the API server, by plural, only the kinds in `keep`
    (PVC, StatefulSet, CronJob, Deployment); PostgreSQL with `postgres_ready` ready."""
    plural = {"PersistentVolumeClaim": "persistentvolumeclaims", "StatefulSet": "statefulsets",
              "CronJob": "cronjobs", "Deployment": "deployments"}  # fmt: skip
    objects: dict[str, list[dict]] = {p: [] for p in plural.values()}
    for kind in keep:
        for found in copy.deepcopy(find(release, kind)):
            if kind == "StatefulSet":
                found["spec"]["replicas"] = postgres_ready
                found["status"] = {"replicas": postgres_ready, "readyReplicas": postgres_ready}
            objects[plural[kind]].append(found)
    return objects


def _cluster_at(monkeypatch, tmp_path, url: str) -> None:
    """The stage outputs' kubeconfig names the API server at `url`."""
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": url}, "c")
    monkeypatch.setitem(
        nb.STAGE_OUTPUTS, "stages/02-infrastructure",
        {**nb.STAGE_OUTPUTS["stages/02-infrastructure"],
         "kubeconfig_filename": {"value": str(kubeconfig)}},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("left", "postgres_ready", "said"),
    [
        # `helm uninstall` (the claims are kept) or a release deleted by hand.
        (
            {"PersistentVolumeClaim"},
            1,
            [
                "StatefulSet mlflow-postgres) is gone",
                "no backup Job (CronJob mlflow-backup)",
                "deploy again (`nebari deploy -c nebari-config.yaml`",
                "kubectl -n dev cp mlflow-copy-out:/database ./mlflow-database",
            ],
        ),
        # PostgreSQL scaled to zero by the admin; the server Deployment deleted too.
        (
            {"PersistentVolumeClaim", "StatefulSet", "CronJob"},
            0,
            [
                "StatefulSet mlflow-postgres) is not running (0/0 ready)",
                "start it (`kubectl -n dev scale statefulset/mlflow-postgres --replicas=1`",
                "kubectl -n dev cp mlflow-copy-out:/database ./mlflow-database",
            ],
        ),
        # The backup CronJob deleted; PostgreSQL serves: a pg_dump copies it out.
        (
            {"PersistentVolumeClaim", "StatefulSet", "Deployment"},
            1,
            [
                "no backup Job (CronJob mlflow-backup) is deployed",
                "kubectl -n dev exec mlflow-postgres-0 -c postgres -- sh -c",
                "> mlflow-database.dump",
            ],
        ),
    ],
    ids=["release-gone", "postgres-stopped", "backup-cronjob-gone"],
)
def test_a_database_volume_no_backup_can_read_stops_the_destroy_before_anything_is_deleted(
    monkeypatch, tmp_path, capsys, release, left, postgres_ready, said
):
    """The claim holding the database is still in the namespace, but no backup Job can
    read it now: stage 03 (which deletes the claim) is never destroyed, and the admin
    reads what holds data, how to make the backup possible, how to copy it out, and
    that force_destroy is the way to delete it."""
    recorder = Recorder()
    with serving(_objects(release, keep=left, postgres_ready=postgres_ready)) as api:
        _cluster_at(monkeypatch, tmp_path, api.url)
        with pytest.raises(SystemExit) as stopped:
            _nebari_destroy(monkeypatch, tmp_path, *BACKED_UP, recorder)
    assert stopped.value.code == 1
    assert recorder.events == ["entered 03-kubernetes-initialize"]
    assert api.events == []  # nothing deleted or replaced in the cluster either
    out = " ".join(capsys.readouterr().out.split())
    assert "the database volume (claim mlflow-postgres-data): a claim in namespace dev" in out
    for words in said:
        assert words in out, out
    assert "mlflow.force_destroy: true" in out and "Nothing was deleted" in out


def test_without_a_database_volume_the_destroy_goes_on_and_says_nothing_holds_data(
    monkeypatch, tmp_path, capsys, release
):
    """No claim (never deployed, or removed with force_destroy before): nothing to
    back up, nothing lost; the destroy proceeds and says so."""
    recorder = Recorder()
    with serving(_objects(release, keep=set())) as api:
        _cluster_at(monkeypatch, tmp_path, api.url)
        tofu = _nebari_destroy(monkeypatch, tmp_path, *BACKED_UP, recorder)
    assert recorder.events[-1] == "destroyed 03-kubernetes-initialize"
    assert [call["tofu_destroy"] for call in tofu] == [False, True]
    out = " ".join(capsys.readouterr().out.split())
    assert ("no database volume (claim mlflow-postgres-data) in namespace dev: nothing holds "
            "MLflow's database, nothing to back up") in out  # fmt: skip
