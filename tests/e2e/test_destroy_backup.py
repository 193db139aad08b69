"""`nebari destroy` backs up first: the stage's own destroy path, on a real PostgreSQL
holding seeded runs, the rendered backup and restore pods run as local processes
against the S3 emulator, through the fake Kubernetes API the real client talks to.

What is checked comes from the store itself (its keys, the stored dump's sha256) and
from psql, never from the code under test's report.
"""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from _nebari.provider import opentofu
from support import emulators
from support import nebari as nb
from support.backup_journey import (
    LocalKubelet,
    cli,
    cloud_store,
    counts,
    database_objects,
    fake_cluster,
    local_manifests,
    pod_of,
    succeeded,
)
from support.deployment import server_deployment
from support.emulators import BUCKET, STANDINS
from support.k8s_api import write_kubeconfig
from support.k8s_cluster import FakeCluster, serving
from support.pods import LocalPod, database_addresses, database_secrets, pod_spec
from support.postgres import Postgres
from support.release import find, render_release
from support.tofu import FakeTofu

from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

pytestmark = pytest.mark.slow


@dataclass
class CloudKubelet(LocalKubelet):
    """LocalKubelet whose pods reach the emulated cloud store (`env`)."""

    env: dict = field(default_factory=dict)

    def pod(self, spec: dict, name: str, secrets: dict) -> LocalPod:
        addresses = database_addresses(self.manifests, "dev", self.postgres.port)
        return LocalPod(spec, self.workdir / name, secrets, addresses, env=self.env,
                        manifests=self.manifests)  # fmt: skip


@contextlib.contextmanager
def cloud_release(provider: str, deployment, tmp_path: Path, monkeypatch, server: bool = True):
    """(stage, stage outputs naming the fake cluster, store env, kubelet); `server`
    False: the cluster holds no server Deployment (a deploy that failed half-way)."""
    nb.patch_cloud_lookups(monkeypatch)
    if reason := emulators.missing(provider):
        pytest.skip(reason)
    config = nb.validate(nb.config_dict(provider, {"workers": 2}))
    stage = MlflowStage(tmp_path / "out", config)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    locals_ = emulators.provider_locals(provider, input_vars, STANDINS[provider], tmp_path / "tf")
    manifests = render_release(stage, nb.STAGE_OUTPUTS, locals_)
    with emulators.emulator(provider, tmp_path / "emu") as emu:
        env = {**emu.server_env, "BUCKET": BUCKET, "AWS_DEFAULT_REGION": "us-west-2"}
        cloud_store(provider, env, "create")
        kubelet = CloudKubelet(manifests, tmp_path / "pods", deployment.postgres, tmp_path,
                               env=env)  # fmt: skip
        cronjobs = {c["metadata"]["name"]: c for c in find(manifests, "CronJob")}
        cluster = FakeCluster("dev", cronjobs, server_deployment(manifests) if server else None,
                              kubelet, objects=database_objects(manifests))  # fmt: skip
        with serving(cluster) as url:
            kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": url}, "c")
            outputs = {**nb.STAGE_OUTPUTS}
            outputs["stages/02-infrastructure"] = {
                **outputs["stages/02-infrastructure"],
                "kubeconfig_filename": {"value": str(kubeconfig)},
            }
            yield stage, outputs, env, kubelet


@pytest.mark.usefixtures("seeded")
def test_destroy_writes_and_verifies_a_pre_destroy_backup_before_deleting(
    deployment, tmp_path, monkeypatch
):
    """Runs in the database (seeded through the real server) -> the stage's destroy: a
    `pre-destroy` backup is in the bucket, whole (its sha256 as stored matches its
    manifest) and holding every run, before OpenTofu is asked to destroy anything;
    the bucket itself is forgotten, not destroyed. The server Deployment is gone (a
    deploy that failed half-way): the backup needs the database, not the server.
    (With the Deployment: test_destroy_deploy_restore_brings_the_runs_back_...)"""
    expected = counts(deployment.postgres)
    assert expected["runs"] > 0
    release = cloud_release("aws", deployment, tmp_path, monkeypatch, server=False)
    with release as (stage, outputs, env, kubelet):
        events: list[tuple[str, dict]] = []

        def deploy(**kwargs):
            # What the store holds when OpenTofu is asked to destroy.
            events.append(("destroy" if kwargs["tofu_destroy"] else "init",
                           cloud_store("aws", env, "read")))  # fmt: skip
            return {}

        monkeypatch.setattr(opentofu, "deploy", deploy)
        retained = provider_for("aws").retained_addresses()
        tofu = FakeTofu(state=[*retained, "module.mlflow[0].helm_release.mlflow"], answers={})
        monkeypatch.setattr(opentofu, "run_tofu_subprocess", tofu)
        status: dict[str, bool] = {}
        with stage.destroy(outputs, status):
            pass
    (init, _), (destroy, store) = events[0], events[1]
    assert (init, destroy) == ("init", "destroy")
    made = [m for m in store["manifests"].values() if m["kind"] == "pre-destroy"]
    assert len(made) == 1, store["keys"]
    (manifest,) = made
    assert manifest["counts"] == expected
    dump_key = next(k for k in store["sha256"] if manifest["name"] in k)
    assert store["sha256"][dump_key] == manifest["dump"]["sha256"]
    assert dump_key.startswith("artifacts-backups/")  # beside the served prefix
    # The read-back ran in the cluster: the restore template's fetch, nothing else.
    fetches = [j for j in kubelet.jobs if j["metadata"]["name"].startswith("mlflow-fetch-")]
    (fetch,) = fetches
    pod = fetch["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["fetch"] and not pod["initContainers"]
    assert pod["containers"][0]["args"] == ["fetch", manifest["name"]]
    # Then the kept storage left the state: destroy does not delete the bucket.
    assert not set(retained) & set(tofu.state)


@dataclass
class RestartingKubelet(CloudKubelet):
    """The server Deployment's scale: to 0 stops nothing (no server process here, the
    database is what is checked); back up runs the server pod's init containers (the
    pre-upgrade check and `migrate-database`), as a new pod would."""

    def scale(self, deployment: dict, replicas: int) -> None:
        if replicas == 0:
            return
        spec = {**deployment["spec"]["template"]["spec"], "containers": []}
        # Every Secret key the pod reads (a database password stands for each).
        secrets: dict[str, dict[str, str]] = {}
        for init in deployment["spec"]["template"]["spec"].get("initContainers") or []:
            for item in init.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    secrets.setdefault(ref["name"], {})[ref["key"]] = self.postgres.password
        finished = self.pod(spec, f"server-{len(self.jobs)}", secrets).run()
        assert all(f.returncode == 0 for f in finished), finished[-1].output[-3000:]


@pytest.mark.usefixtures("seeded")
def test_destroy_deploy_restore_brings_the_runs_back_not_the_empty_backup(
    deployment, tmp_path, monkeypatch
):
    """seeded runs -> the stage's destroy (pre-destroy backup in the bucket) -> a new,
    empty database (deploy: migrate-database) -> its scheduled backup, now the newest ->
    `nebari mlflow restore --yes` with no --from: the runs are back (psql), the empty
    database is kept as a pre-restore backup, and the output names both sides."""
    expected = counts(deployment.postgres)
    with cloud_release("aws", deployment, tmp_path, monkeypatch) as (stage, outputs, env, _):
        monkeypatch.setattr(opentofu, "deploy", lambda **kw: {})
        monkeypatch.setattr(opentofu, "run_tofu_subprocess", FakeTofu(state=[], answers={}))
        with stage.destroy(outputs, {}):
            pass
        input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
        locals_ = emulators.provider_locals("aws", input_vars, STANDINS["aws"], tmp_path / "tf2")
        manifests = render_release(stage, nb.STAGE_OUTPUTS, locals_)
        source = deployment.postgres
        with Postgres(tmp_path / "new-pg", user=source.user, password=source.password,
                      database=source.database) as new_pg:  # fmt: skip
            kubelet = RestartingKubelet(manifests, tmp_path / "new-pods", new_pg, tmp_path,
                                        env=env)  # fmt: skip
            kubelet.scale(server_deployment(manifests), 1)  # the deploy: an empty schema
            assert counts(new_pg)["runs"] == 0
            (scheduled,) = find(manifests, "CronJob", "mlflow-backup")
            addresses = database_addresses(manifests, "dev", new_pg.port)
            secrets = database_secrets(scheduled, new_pg.password)
            empty = LocalPod(pod_spec(scheduled), tmp_path / "scheduled", secrets, addresses,
                             env=env, manifests=manifests).run()  # fmt: skip
            assert [f.returncode for f in empty] == [0, 0], empty[-1].output[-2000:]
            config_file = tmp_path / "nebari-config.yaml"
            config_file.write_text(yaml.safe_dump(nb.config_dict("aws", {"workers": 2})))
            with fake_cluster(manifests, kubelet, config_file) as (cluster, args):
                code, out = cli("restore", *args, "--yes")
            restored = counts(new_pg)
        store = cloud_store("aws", env, "read")
    assert code == 0, out
    assert restored == expected
    kinds = {m["name"]: m for m in store["manifests"].values()}
    (pre_destroy,) = [n for n, m in kinds.items() if m["kind"] == "pre-destroy"]
    (pre_restore,) = [n for n, m in kinds.items() if m["kind"] == "pre-restore"]
    (scheduled_empty,) = [n for n, m in kinds.items() if m["kind"] == "scheduled"]
    assert scheduled_empty > pre_destroy  # the empty one was the newest
    assert f"backup {pre_destroy} (pre-destroy" in out, out
    assert kinds[pre_restore]["counts"]["runs"] == 0  # what the restore replaced
    assert f"--from {pre_restore}` undoes this restore" in out
    # Both sides, per table: brought back (backup) and replaced (database now).
    assert f"runs {expected['runs']} 0" in out, out
    assert cluster.scaled == [0, 1]


@pytest.mark.usefixtures("seeded")
def test_retention_keeps_the_newest_backup_with_data_after_ten_empty_ones(deployment, tmp_path):
    """A scheduled backup with runs, then ten scheduled backups of an empty database
    with keep: 3: the three newest empty ones stay, and so does the one with runs."""
    manifests = local_manifests(tmp_path, backup={"keep": 3})
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    volumes = {"artifacts": artifacts}
    with_data = succeeded(pod_of(manifests, "mlflow-backup", tmp_path / "with-data",
                                 deployment.postgres, volumes=volumes))  # fmt: skip
    source = deployment.postgres
    names = []
    with Postgres(tmp_path / "empty-pg", user=source.user, password=source.password,
                  database=source.database) as empty:  # fmt: skip
        empty.query("CREATE TABLE experiments AS SELECT 0 AS experiment_id")  # a new database
        for attempt in range(10):
            subprocess.run(["sleep", "1"], check=True)  # names have one-second resolution
            made = succeeded(pod_of(manifests, "mlflow-backup", tmp_path / f"empty-{attempt}",
                                    empty, volumes=volumes))  # fmt: skip
            assert made["manifest"]["counts"]["runs"] == 0
            names.append(made["backup"])
    kept = sorted(p.name for p in (artifacts / "_backups").iterdir())
    assert kept == sorted([with_data["backup"], *names[-3:]])


def test_restore_without_from_changes_nothing_when_every_backup_is_of_an_empty_database(
    deployment, tmp_path
):
    """Only backups of an empty database (a new deploy's scheduled one), and a database
    MLflow has not made its tables in yet (it lacks even their Default experiment):
    `nebari mlflow restore --yes` with no --from restores none of them. It says there
    is nothing to bring back and names the newest for --from; the server is never
    stopped."""
    manifests = local_manifests(tmp_path)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    source = deployment.postgres
    with Postgres(tmp_path / "empty-pg", user=source.user, password=source.password,
                  database=source.database) as empty:  # fmt: skip
        empty.query("CREATE TABLE experiments AS SELECT 0 AS experiment_id")  # a new database
        made = succeeded(pod_of(manifests, "mlflow-backup", tmp_path / "empty", empty,
                                volumes={"artifacts": artifacts}))  # fmt: skip
        assert made["manifest"]["counts"]["experiments"] == 1
        empty.query("DROP TABLE experiments")  # the deploy's migration has not run yet
        config_file = tmp_path / "nebari-config.yaml"
        config_file.write_text(yaml.safe_dump(nb.config_dict("local", {"workers": 2})))
        kubelet = LocalKubelet(manifests, tmp_path / "pods", empty, artifacts)
        with fake_cluster(manifests, kubelet, config_file) as (cluster, args):
            code, out = cli("restore", *args, "--yes")
        assert empty.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    assert code == 1, out
    assert "nothing to bring back" in out and "a backup of an empty database is never" in out
    assert f"To restore one anyway, name it: --from {made['backup']} (the newest" in out, out
    assert cluster.scaled == []
    assert [j["metadata"]["name"].split("-")[1] for j in kubelet.jobs] == ["plan"]
