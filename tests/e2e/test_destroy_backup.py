"""`nebari destroy` backs up first: the stage's own destroy path, on a real PostgreSQL
holding seeded runs, the rendered backup and restore pods run as local processes
against the S3 emulator, through the fake Kubernetes API the real client talks to.

What is checked comes from the store itself (its keys, the stored dump's sha256) and
from psql, never from the code under test's report.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _nebari.provider import opentofu
from support import emulators
from support import nebari as nb
from support.deployment import server_deployment
from support.k8s_api import write_kubeconfig
from support.k8s_cluster import FakeCluster, serving
from support.pods import LocalPod, database_addresses
from support.release import find, render_release
from support.tofu import FakeTofu
from test_artifact_stores import BUCKET, STANDINS
from test_backups import LocalKubelet, cloud_store, counts, seeded  # noqa: F401 (fixture)

from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.stage import MlflowStage

pytestmark = pytest.mark.slow


@dataclass
class CloudKubelet(LocalKubelet):
    """LocalKubelet whose pods reach the emulated cloud store (`env`)."""

    env: dict = field(default_factory=dict)

    def pod(self, spec: dict, name: str, secrets: dict) -> LocalPod:
        addresses = database_addresses(self.manifests, "dev", self.postgres.port)
        return LocalPod(spec, self.workdir / name, secrets, addresses, env=self.env)


@contextlib.contextmanager
def cloud_release(provider: str, deployment, tmp_path: Path, monkeypatch):
    """(stage, stage outputs naming the fake cluster, store env, kubelet)."""
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
        cluster = FakeCluster("dev", cronjobs, server_deployment(manifests), kubelet)
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
    the bucket itself is forgotten, not destroyed."""
    expected = counts(deployment.postgres)
    assert expected["runs"] > 0
    with cloud_release("aws", deployment, tmp_path, monkeypatch) as (stage, outputs, env, kubelet):
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
