"""Taking over a 2025.10.x deployment: the takeover init containers as rendered.

The old deployment is real: PostgreSQL with Bitnami's database and user names,
filled by the public plugin's MLflow (`.venv-mlflow-<old>`) serving artifacts from
a MinIO-like store (moto S3, bucket `mlflow`), logged through that old server.
The stage sees it as it would in the state on the first deploy (its
`helm_release.mlflow` with the values the 2025.10.x local template passed), the
chart renders the takeover, and the server pod's init containers run in order
(takeover-database, takeover-artifacts, migrate-database), then the server, as the
kubelet would. The old Services' addresses are the local ones (as relocate() does
for ours) and the kubelet's termination-message file is a local file.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import types
from pathlib import Path

import pytest
from support import emulators, public_plugin, seed
from support import nebari as nb
from support.deployment import (
    containers_of,
    missing_tools,
    render,
    run_container,
    running_deployment,
    server_deployment,
    server_volume,
)
from support.mlflow_server import MlflowServer
from support.postgres import Postgres, postgres_bin_dir

from nebari_mlflow_plugin.lifecycle import takeover

OLD_PYTHON = public_plugin.MLFLOW_PYTHON
OLD_RELEASE = "demo-mlflow"  # <project>-mlflow, project "demo"
MINIO_USER, MINIO_PASSWORD = "minio", "testing-only-password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(missing_tools() or emulators.missing("aws") or public_plugin.missing())
        or not OLD_PYTHON.exists(),
        reason=missing_tools()
        or emulators.missing("aws")
        or public_plugin.missing()
        or f"{OLD_PYTHON} missing (make install)",
    ),
]

RUNS = [
    {"name": f"run-{i}", "params": {"alpha": str(i), "solver": "lbfgs"},
     "tags": {"team": "forecasting", "attempt": str(i)},
     "loss": [round(1.0 / (step + 1 + i), 6) for step in range(4)],
     "note": f"notes of run {i}"}
    for i in range(3)
]  # fmt: skip

# What the old server gets (artifacts proxied into its S3 store): RUNS in two
# experiments, a nested artifact each, two versions of a model.
OLD_DATA = {"experiments": ["forecasts", "vision"], "runs": RUNS, "nested": True,
            "model": "forecaster", "versions": 2}  # fmt: skip


def old_state(values: list[str]) -> dict:
    """The stage's state as the 2025.10.x local template left it (the parts read)."""
    release = {"name": OLD_RELEASE, "namespace": "dev", "values": values}
    return {"version": 4, "resources": [
        {"mode": "managed", "type": "helm_release", "name": "mlflow",
         "instances": [{"index_key": 0, "attributes": release}]},
    ]}  # fmt: skip


def public_local_values() -> list[str]:
    """The values documents the public plugin's local template hands Helm: its two
    YAML files (from the public wheel) and its MinIO block."""
    files = public_plugin.template_files("local")
    documents = [files["shared_helm_values.yaml"], files["values.yaml"]]
    minio = {"minio": {"enabled": True, "auth": {"rootUser": MINIO_USER,
             "rootPassword": MINIO_PASSWORD}, "defaultBuckets": "mlflow"}}  # fmt: skip
    return [*documents, json.dumps(minio)]


def local_takeover(container, old_pg: Postgres, s3: emulators.Emulator, log: Path):
    """The old Services' addresses -> the local processes; the kubelet's message file."""
    env = container.env
    if "OLD_HOST" in env:
        env["OLD_HOST"], env["OLD_PORT"] = "127.0.0.1", str(old_pg.port)
    if "MLFLOW_S3_ENDPOINT_URL" in env:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3.endpoint
    env["TERMINATION_LOG"] = str(log)
    return container


@pytest.fixture(scope="module")
def old_deployment(tmp_path_factory):
    """(workdir, old PostgreSQL, moto S3, run ids) of a 2025.10.x deployment."""
    work = tmp_path_factory.mktemp("takeover")
    with emulators.emulator("aws", work / "s3") as s3:
        import boto3

        boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=MINIO_USER,
                     aws_secret_access_key=MINIO_PASSWORD,
                     region_name="us-east-1").create_bucket(Bucket="mlflow")  # fmt: skip
        old_pg = Postgres(work / "old-pg", user="bn_mlflow", password="old-secret",
                          database="bitnami_mlflow").__enter__()  # fmt: skip
        try:
            env = {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint, "AWS_ACCESS_KEY_ID": MINIO_USER,
                   "AWS_SECRET_ACCESS_KEY": MINIO_PASSWORD}  # fmt: skip
            # As Bitnami's chart runs it: --artifacts-destination=s3://mlflow --serve-artifacts.
            args = ["--artifacts-destination", "s3://mlflow", "--serve-artifacts"]
            server = MlflowServer(work / "old", backend_store_uri=old_pg.uri,
                                  python=str(OLD_PYTHON), extra_args=args, env=env)  # fmt: skip
            with server:
                result = _run_old(seed.SCRIPT, json.dumps(OLD_DATA), server.url)
            yield work, old_pg, s3, json.loads(result)
        finally:
            old_pg.__exit__()


def _run_old(code: str, data: str, url: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "MLFLOW_DISABLE_TELEMETRY": "true",
           "MLFLOW_TRACKING_URI": url}  # fmt: skip
    result = subprocess.run([str(OLD_PYTHON), "-c", code, data], capture_output=True, text=True,
                            timeout=300, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def taken_over(old_deployment):
    """The release rendered for the takeover and its init containers run once:
    (release, new PostgreSQL, {container: (exit code, output, termination message)})."""
    work, old_pg, s3, run_ids = old_deployment
    config = nb.validate(nb.config_dict("local", {"workers": 1}))
    old = takeover.from_state(old_state(public_local_values()))
    release = render(config, work, takeover_from=old)
    release.secret_values[f"{OLD_RELEASE}-postgresql"] = {"password": old_pg.password}
    release.secret_values[f"{OLD_RELEASE}-minio"] = {"root-user": MINIO_USER,
                                                     "root-password": MINIO_PASSWORD}  # fmt: skip
    new_pg = release.postgres(work).__enter__()
    try:
        # The artifact volume is one claim, mounted by the takeover and the server alike.
        shared = server_volume(work, "artifacts")
        shared.mkdir(parents=True, exist_ok=True)
        (work / "takeover-artifacts" / "volumes").mkdir(parents=True, exist_ok=True)
        (work / "takeover-artifacts" / "volumes" / "artifacts").symlink_to(shared)
        path = f"{postgres_bin_dir()}:{os.environ['PATH']}"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PATH", path)  # the postgres image's pg_dump and psql

            def run_init(only: tuple[str, ...] = ()) -> dict[str, tuple[int, str, str]]:
                """The init containers in order (`only` these), each to its end."""
                results = {}
                names = [c["name"] for c in containers_of(server_deployment(release.manifests))[0]]
                for name, init in zip(names, release.init_containers(work, new_pg), strict=True):
                    if only and name not in only:
                        continue
                    log = work / f"{name}.termination-log"
                    local_takeover(init, old_pg, s3, log)
                    done = run_container(init, work, timeout=180)
                    results[name] = (done.returncode, done.stdout + done.stderr,
                                     log.read_text() if log.exists() else "")  # fmt: skip
                    assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
                return results

            first = run_init()
            yield release, config, new_pg, first, run_init, run_ids
    finally:
        new_pg.__exit__()


def test_takeover_containers_run_before_the_migration(taken_over):
    _, _, _, first, _, _ = taken_over
    # (The pre-upgrade backup's containers run between: tests/e2e/test_migrations.py.)
    ran = [name for name in first if not name.startswith("pre-upgrade-")]
    # auth-config (the auth ini, the built-in admin's password) runs last of all.
    assert ran == ["takeover-database", "takeover-artifacts", "migrate-database", "auth-config"]


def test_counts_are_verified_and_reported(taken_over):
    _, _, _, first, _, run_ids = taken_over
    database = json.loads(first["takeover-database"][2])["database"]
    assert database["verified"] is True
    tables = database["tables"]
    assert tables["runs"] == [len(run_ids), str(len(run_ids))]
    assert tables["metrics"][0] == sum(len(r["loss"]) for r in RUNS) * 2
    assert tables["model_versions"][0] == 2
    artifacts = json.loads(first["takeover-artifacts"][2])["artifacts"]
    # Two files per run, plus what the registry's model versions point to (none extra).
    assert artifacts["verified"] is True and artifacts["files"] == [2 * len(run_ids)] * 2
    assert artifacts["copied"] == 2 * len(run_ids) and artifacts["skipped"] == 0


def test_a_second_run_copies_nothing_and_verifies_again(taken_over):
    _, _, new_pg, _, run_init, run_ids = taken_over
    second = run_init(only=("takeover-database", "takeover-artifacts"))  # a restarted pod
    assert "already copied" in second["takeover-database"][1]
    assert json.loads(second["takeover-database"][2])["database"]["verified"] is True
    artifacts = json.loads(second["takeover-artifacts"][2])["artifacts"]
    assert artifacts["copied"] == 0 and artifacts["skipped"] == 2 * len(run_ids)
    assert new_pg.query("SELECT count(*) FROM runs") == str(len(run_ids))


def test_a_database_holding_anything_else_is_refused(taken_over, old_deployment):
    release, _, new_pg, _, _, _ = taken_over
    work, old_pg, s3, _ = old_deployment
    new_pg.query('CREATE DATABASE "other"')
    other = copy.copy(new_pg)
    other.database = "other"
    other.query("CREATE TABLE notes (id int)")
    (init,) = [c for c in release.init_containers(work, new_pg) if "OLD_HOST" in c.env]
    log = work / "refused.termination-log"
    local_takeover(init, old_pg, s3, log)
    uri = init.env["MLFLOW_BACKEND_STORE_URI"]
    init.env["MLFLOW_BACKEND_STORE_URI"] = uri.rsplit("/", 1)[0] + "/other"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{postgres_bin_dir()}:{os.environ['PATH']}")
        done = run_container(init, work, timeout=120)
    assert done.returncode != 0
    assert "refusing to overwrite" in log.read_text()
    assert other.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "1"


def test_a_copy_cut_off_midway_leaves_nothing_and_the_next_run_completes(
    taken_over, old_deployment
):
    """The pod dies mid-copy (its connection to the new database is cut while the one
    transaction is writing): nothing of the copy stays, and the restarted container
    copies everything."""
    import threading
    import time

    from support.podrun import process_env

    release, _, new_pg, _, _, _ = taken_over
    work, old_pg, s3, _ = old_deployment
    old_pg.query('CREATE DATABASE "bigcopy" TEMPLATE "bitnami_mlflow"')
    big = copy.copy(old_pg)
    big.database = "bigcopy"
    big.query(
        "CREATE TABLE filler AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g"
    )
    new_pg.query('CREATE DATABASE "resumed"')
    resumed = copy.copy(new_pg)
    resumed.database = "resumed"
    (init,) = [c for c in release.init_containers(work, new_pg) if "OLD_HOST" in c.env]
    local_takeover(init, old_pg, s3, work / "resumed.termination-log")
    init.env["OLD_DATABASE"] = "bigcopy"
    uri = init.env["MLFLOW_BACKEND_STORE_URI"]
    init.env["MLFLOW_BACKEND_STORE_URI"] = uri.rsplit("/", 1)[0] + "/resumed"
    env = {**process_env(init), "PATH": f"{postgres_bin_dir()}:{os.environ['PATH']}"}
    # The restore's transaction has written (it holds a transaction id): cut it off.
    writing = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
               "'resumed' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()")  # fmt: skip
    cut = threading.Event()

    def cut_off(process):
        while process.poll() is None and not cut.is_set():
            if resumed.query(writing) == "t":
                cut.set()
            time.sleep(0.01)

    process = subprocess.Popen(init.argv, env=env, cwd=work, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    watcher = threading.Thread(target=cut_off, args=(process,), daemon=True)
    watcher.start()
    output, _ = process.communicate(timeout=120)
    watcher.join(timeout=10)
    assert cut.is_set(), f"the copy ended before it could be cut off: {output}"
    assert process.returncode != 0, output
    assert resumed.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0"
    # The kubelet restarts the container: this time it completes and verifies.
    again = subprocess.run(init.argv, env=env, cwd=work, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((work / "resumed.termination-log").read_text())["database"]
    assert report["verified"] is True and report["tables"]["filler"] == [300000, "300000"]


def test_artifacts_on_the_old_tracking_volume_are_copied_too(old_deployment, tmp_path):
    """Bitnami's chart keeps artifacts on the tracking claim unless MinIO, an S3 host or
    a GCS bucket is set (the 2025.10.x AWS and Azure templates): the claim holds
    `mlartifacts/<experiment>/...` under the tracking mount, mounted read-only here."""
    import boto3

    _, _, s3, run_ids = old_deployment
    claim = tmp_path / "old-tracking-claim"
    client = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=MINIO_USER,
                          aws_secret_access_key=MINIO_PASSWORD,
                          region_name="us-east-1")  # fmt: skip
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="mlflow")["Contents"]]
    for key in keys:  # what the old server wrote, as it would lie on its volume
        target = claim / "mlartifacts" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file("mlflow", key, str(target))
    config = nb.validate(nb.config_dict("local", {"workers": 1}))
    values = {"minio": {"enabled": False}, "externalS3": {"bucket": "unused"}}
    old = takeover.OldDeployment(release=OLD_RELEASE, namespace="dev", values=values)
    release = render(config, tmp_path, takeover_from=old)
    names = [c["name"] for c in containers_of(server_deployment(release.manifests))[0]]
    no_database = types.SimpleNamespace(port=1)  # this container does not reach it
    (init,) = [c for n, c in zip(names, release.init_containers(tmp_path, no_database),
                                 strict=True) if n == "takeover-artifacts"]  # fmt: skip
    source = init.mounts["/takeover/source"]
    source.rmdir()
    source.symlink_to(claim)
    init.env["TERMINATION_LOG"] = str(tmp_path / "log")
    done = run_container(init, tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "log").read_text())["artifacts"]
    assert report["verified"] is True and report["files"] == [len(keys), len(keys)]
    landed = init.mounts["/mlartifacts"]
    files = sorted(str(p.relative_to(landed)) for p in landed.rglob("*") if p.is_file())
    # Every old file at its path, and the takeover's record of the verified copy.
    assert files == sorted([*keys, "nebari-takeover.json"])
    assert len(run_ids) * 2 == len(keys)


def test_after_finish_a_restarted_pod_starts_without_the_old_release(taken_over, old_deployment):
    """`--finish` removed the old release; until the next deploy drops them, the
    takeover containers find their copies recorded and let the server start."""
    _, _, _, _, run_init, _ = taken_over
    _, old_pg, s3, _ = old_deployment
    old_pg.stop()
    s3.stop()
    after = run_init(only=("takeover-database", "takeover-artifacts"))
    database = json.loads(after["takeover-database"][2])["database"]
    artifacts = json.loads(after["takeover-artifacts"][2])["artifacts"]
    # Started, and not claiming a verification it could not make.
    assert database["copied"] is True and database["verified"] is False
    assert artifacts["copied"] is True and artifacts["verified"] is False


def test_new_server_serves_everything_the_old_one_had(taken_over, old_deployment):
    release, config, new_pg, _, _, run_ids = taken_over
    work = old_deployment[0]
    with running_deployment(work, config, release=_no_init(release), postgres=new_pg) as dep:
        found = []
        for name in ("forecasts", "vision"):
            experiment = dep.api(f"experiments/get-by-name?experiment_name={name}")["experiment"]
            assert experiment["artifact_location"].startswith("mlflow-artifacts:/")
            runs = dep.api("runs/search", {"experiment_ids": [experiment["experiment_id"]]})
            found += runs["runs"]
        assert sorted(r["info"]["run_id"] for r in found) == sorted(run_ids)
        for run in found:
            logged = next(r for r in RUNS if r["name"] == run["info"]["run_name"])
            assert {p["key"]: p["value"] for p in run["data"]["params"]} == logged["params"]
            assert {t["key"]: t["value"] for t in run["data"]["tags"]}.items() >= logged[
                "tags"
            ].items()
            run_id = run["info"]["run_id"]
            history = dep.api(f"metrics/get-history?run_id={run_id}&metric_key=loss")["metrics"]
            assert [m["value"] for m in sorted(history, key=lambda m: m["step"])] == logged["loss"]
            assert dep.artifact(run["info"], "notes/note.txt") == logged["note"]
            info = json.loads(dep.artifact(run["info"], "nested/deeper/info.json"))
            assert info == {"run": logged["name"]}
        model = dep.api("registered-models/get?name=forecaster")["registered_model"]
        assert model["latest_versions"]
        versions = dep.api("model-versions/search?filter=name%3D%27forecaster%27")
        assert sorted(v["run_id"] for v in versions["model_versions"]) == sorted(run_ids[:2])


def _no_init(release):
    """The same release, its init containers already run (running_deployment runs them)."""
    ran = copy.deepcopy(release)
    server_deployment(ran.manifests)["spec"]["template"]["spec"]["initContainers"] = []
    return ran
