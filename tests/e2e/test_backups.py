"""Backups and restores with the pods exactly as rendered, run as local processes
(support/pods.py) against real PostgreSQL clusters and real stores.

Data is seeded through the running deployment's real server; the backup CronJob's pod
dumps its database into the artifact volume, moto S3, the GCS emulator and Azurite;
the restore template's pod restores it into an empty database of a second cluster,
whose server (as rendered) must then serve every run, metric history, model and
artifact. Expected values come from the seed data and from psql, never from the code
under test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml
from support import emulators
from support import nebari as nb
from support.backup_journey import (
    LocalKubelet,
    check_serves_seed,
    cli,
    cloud_store,
    counts,
    fake_cluster,
    local_manifests,
    pod_of,
    succeeded,
)
from support.deployment import MLFLOW_BIN, render, running_deployment, server_volume
from support.emulators import BUCKET, STANDINS
from support.pods import last_json_line, pod_spec
from support.postgres import Postgres
from support.release import find, render_release

from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

pytestmark = pytest.mark.slow

KEEP = 1


def test_scheduled_backups_land_on_the_artifact_volume_and_the_oldest_go(
    deployment, seeded, tmp_path
):
    manifests = local_manifests(tmp_path, backup={"keep": KEEP})
    artifacts = deployment.server.mounts["/mlartifacts"]
    expected = counts(deployment.postgres)
    names = []
    for attempt in range(KEEP + 1):
        pod = pod_of(manifests, "mlflow-backup", tmp_path / f"pod-{attempt}", deployment.postgres,
                     volumes={"artifacts": artifacts})  # fmt: skip
        made = succeeded(pod)
        names.append(made["backup"])
        folder = artifacts / "_backups" / made["backup"]
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["counts"] == expected  # nothing was written meanwhile
        assert manifest["schema_revision"] == deployment.postgres.query(
            "SELECT version_num FROM alembic_version"
        )
        dump = folder / "mlflow.dump"
        assert dump.stat().st_size == manifest["dump"]["bytes"] > 0
        # The next one gets its own name (names have one-second resolution).
        subprocess.run(["sleep", "1"], check=True)
    assert len(set(names)) == KEEP + 1
    kept = sorted(p.name for p in (artifacts / "_backups").iterdir())
    assert kept == sorted(names)[-KEEP:]


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_backups_land_beside_the_artifacts_in_the_cloud_store(
    provider, deployment, seeded, tmp_path, monkeypatch
):
    nb.patch_cloud_lookups(monkeypatch)
    if reason := emulators.missing(provider):
        pytest.skip(reason)
    data = nb.config_dict(provider, {"workers": 2, "backup": {"keep": 1}})
    config = nb.validate(data)
    stage = MlflowStage(tmp_path / "out", config)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    locals_ = emulators.provider_locals(provider, input_vars, STANDINS[provider], tmp_path / "tf")
    manifests = render_release(stage, nb.STAGE_OUTPUTS, locals_)
    (server,) = find(manifests, "Deployment", "mlflow")
    args = pod_spec(server)["containers"][0]["args"]
    destination = args[args.index("--artifacts-destination") + 1]
    with emulators.emulator(provider, tmp_path / "emu") as emu:
        env = {**emu.server_env, "BUCKET": BUCKET, "AWS_DEFAULT_REGION": "us-west-2"}
        cloud_store(provider, env, "create")  # Terraform's bucket / container
        first, made = [
            succeeded(pod_of(manifests, "mlflow-backup", tmp_path / f"backup-{attempt}",
                             deployment.postgres, env=env))
            for attempt in range(2)
        ]  # fmt: skip
        # The restore template's fetch container finds it as the newest and downloads it.
        restore = pod_of(manifests, "mlflow-restore", tmp_path / "fetch", deployment.postgres,
                         env=env)  # fmt: skip
        fetch_name, fetch = restore.containers()[0]
        assert fetch_name == "fetch"
        fetch_env = {**os.environ, **fetch.env, **env, "PATH": f"{MLFLOW_BIN}:{os.environ['PATH']}"}
        fetched = subprocess.run(fetch.argv, env=fetch_env, capture_output=True, text=True,
                                 timeout=180)  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr[-3000:]
        store = cloud_store(provider, env, "read")
    assert made["location"] == f"{destination}-backups/{made['backup']}"
    prefix = destination.rsplit("/", 1)[-1]  # the key prefix the server serves
    assert first["backup"] != made["backup"]
    assert not [k for k in store["keys"] if first["backup"] in k]  # keep: 1, the older went
    backup_keys = [k for k in store["keys"] if made["backup"] in k]
    assert sorted(k.rsplit("/", 1)[-1] for k in backup_keys) == ["manifest.json", "mlflow.dump"]
    assert all(k.startswith(f"{prefix}-backups/") for k in backup_keys), backup_keys
    (manifest,) = store["manifests"].values()
    assert manifest["counts"] == counts(deployment.postgres)
    assert last_json_line(fetched.stdout)["backup"] == made["backup"]
    dump = restore.workdir / "volumes" / "backup-work" / "mlflow.dump"
    assert dump.stat().st_size == manifest["dump"]["bytes"]


@pytest.mark.timeout(900)  # a dozen Jobs, each an MLflow or postgres process
def test_backup_then_restore_on_a_new_cluster_with_the_cli(deployment, seeded, tmp_path):
    """`nebari mlflow backup` on a deployment, then on a new one (destroy + deploy: a new
    empty database, the kept artifact store) `nebari mlflow restore`: a corrupt newest
    backup is refused with the server left stopped, the one named is restored."""
    config_file = tmp_path / "nebari-config.yaml"
    config_file.write_text(yaml.safe_dump(nb.config_dict("local", {"workers": 1})))
    config = nb.validate(nb.config_dict("local", {"workers": 1}))
    artifacts = deployment.server.mounts["/mlartifacts"]
    old = render(config, tmp_path / "old")
    kubelet = LocalKubelet(old.manifests, tmp_path / "old-pods", deployment.postgres, artifacts)
    with fake_cluster(old.manifests, kubelet, config_file) as (cluster, args):
        code, out = cli("backup", *args)
        expected = counts(deployment.postgres)
    assert code == 0, out
    name = re.search(r"backup (\S+-on-demand) written to (\S+)", out)
    # (The location as the pod sees it: the volume's mount path, localised here.)
    assert name and name[2].endswith(f"/artifacts/_backups/{name[1]}"), out
    assert (artifacts / "_backups" / name[1] / "mlflow.dump").is_file()
    assert f"runs {expected['runs']}" in out
    assert cluster.scaled == []  # a backup never stops the server

    new = tmp_path / "new"
    release = render(config, new)
    shutil.copytree(artifacts, server_volume(new, "artifacts"), symlinks=True)
    kept = server_volume(new, "artifacts") / "_backups"
    # A newer backup whose dump was damaged after it was written.
    damaged = kept / name[1].replace("-on-demand", "9-on-demand")
    shutil.copytree(kept / name[1], damaged)
    with (damaged / "mlflow.dump").open("ab") as dump:
        dump.write(b"damage")
    with running_deployment(new, config, release=release) as dep:
        volume = server_volume(new, "artifacts")
        kubelet = LocalKubelet(release.manifests, new / "pods", dep.postgres, volume, dep,
                               release.secret_values)  # fmt: skip
        with fake_cluster(release.manifests, kubelet, config_file) as (cluster, args):
            code, listing = cli("backups", *args)
            assert code == 0, listing
            assert listing.index(damaged.name) < listing.index(name[1]), listing

            code, out = cli("restore", *args, "--from", "no-such-backup", "--yes")
            assert code == 1 and "no backup named 'no-such-backup'" in out, out
            assert "Traceback" not in out and cluster.scaled == []
            code, out = cli("restore", *args, "--from", name[1], answer="n\n")
            assert code == 1 and "nothing changed: restore not confirmed" in out, out
            assert cluster.scaled == []

            code, out = cli("restore", *args, "--yes")  # the newest: the damaged one
            assert code == 1, out
            assert "container fetch" in out and "sha256" in out, out
            assert "the database is unchanged" in out and "server is stopped" in out, out
            assert f"--from {damaged.name}" in out
            assert cluster.scaled == [0]
            assert dep.postgres.query("SELECT count(*) FROM runs") == "0"

            code, out = cli("restore", *args, "--from", name[1], "--yes")
            assert code == 0, out
            assert cluster.scaled == [0, 0, 1]
        assert counts(dep.postgres) == expected
        for table, rows in expected.items():
            assert f"{table} {rows} {rows}" in out, out  # backup, database
        # The restore Job the CLI posted ran the rendered containers, in order.
        restores = [j for j in kubelet.jobs if j["metadata"]["name"].startswith("mlflow-restore-")]
        pod = restores[-1]["spec"]["template"]["spec"]
        assert [c["name"] for c in pod["initContainers"] + pod["containers"]] == [
            "fetch", "restore", "verify"]  # fmt: skip
        check_serves_seed(dep, seeded)


def test_a_restore_that_breaks_off_leaves_the_database_as_it_was(deployment, seeded, tmp_path):
    """The restore container gets a dump cut in half (as a node losing its disk would
    leave it): it fails, and the database it was to replace still holds what it held."""
    manifests = local_manifests(tmp_path)
    backup = pod_of(manifests, "mlflow-backup", tmp_path / "backup", deployment.postgres)
    (dump_name, dump), _ = backup.containers()
    assert dump_name == "dump"
    dumped = subprocess.run(dump.argv, env={**os.environ, **dump.env}, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr
    whole = (backup.workdir / "volumes" / "backup-work" / "mlflow.dump").read_bytes()
    with Postgres(tmp_path / "target", password="target-password") as target:
        target.query("CREATE TABLE runs (kept text); INSERT INTO runs VALUES ('before')")
        restore = pod_of(manifests, "mlflow-restore", tmp_path / "restore", target)
        name, container = restore.containers()[1]
        assert name == "restore"
        work = restore.workdir / "volumes" / "backup-work"
        (work / "mlflow.dump").write_bytes(whole[: len(whole) // 2])
        # What the fetch container leaves for it: the libpq service of the database.
        (work / "pg_service.conf").write_text(
            f"[mlflow]\nhost=127.0.0.1\nport={target.port}\ndbname={target.database}\n"
            f"user={target.user}\npassword={target.password}\n"
        )
        result = subprocess.run(container.argv, env={**os.environ, **container.env},
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode != 0, result.stdout
        assert target.query("SELECT kept FROM runs") == "before"
        assert target.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "1"
