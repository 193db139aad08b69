"""Schema migrations as the server pod runs them: its `migrate-database` init container.

The database is the one a deployment keeps across releases: created and filled by
the MLflow the public plugin runs (`.venv-mlflow-<old>`), then the rendered init
container (the image's MLflow, `.venv-mlflow`) upgrades it and the rendered server
serves it. Failed init containers are re-run as the kubelet re-runs them in a
Deployment's pod (restartPolicy Always); every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest
from support import nebari as nb
from support import public_plugin, seed
from support.deployment import (
    MLFLOW_BIN,
    launch,
    missing_tools,
    render,
    run_container,
    run_to_completion,
    running_deployment,
    server_volume,
)
from support.mlflow_server import MlflowServer

OLD_PYTHON = public_plugin.MLFLOW_PYTHON

# Seconds the init container waits for the database in the tests that stop it.
WAIT = 8
EXPERIMENT = "legacy"
MODEL = "legacy-model"
RUNS = [
    {
        "name": f"run-{i}",
        "params": {"alpha": str(0.1 * (i + 1)), "solver": "lbfgs"},
        "tags": {"team": "forecasting", "attempt": str(i)},
        "loss": [round(1.0 / (step + 1 + i), 6) for step in range(5)],
        "note": f"notes of run {i}",
    }
    for i in range(3)
]


# The old MLflow's schema and one run, straight into the database (no server).
CREATE_OLD_SCHEMA = """
import sys
import mlflow

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("before-upgrade")
with mlflow.start_run(run_name="kept"):
    mlflow.log_metric("kept", 1.0)
"""

pytestmark = pytest.mark.skipif(
    bool(missing_tools()) or not OLD_PYTHON.exists(),
    reason=missing_tools() or f"{OLD_PYTHON} missing (run `make install`)",
)


def config(**migration):
    mlflow = {"workers": 1}
    if migration:
        mlflow["overrides"] = {"migration": migration}
    return nb.validate(nb.config_dict("local", mlflow))


def schema_head(python: Path) -> str:
    """The schema revision an MLflow installation expects (its alembic head)."""
    code = "from mlflow.store.db.utils import _get_latest_schema_revision as h; print(h())"
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


def old_mlflow(code: str, *args: str, **env: str) -> str:
    """Run `code` with the public plugin's MLflow; its last line of output."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "MLFLOW_DISABLE_TELEMETRY": "true", **env}
    result = subprocess.run(
        [str(OLD_PYTHON), "-c", code, *args], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def pre_upgrade_backups(workdir: Path) -> list[dict]:
    """Manifests of the backups the server pod took on its artifact volume."""
    root = server_volume(workdir, "artifacts") / "_backups"
    return [json.loads(m.read_text()) for m in sorted(root.glob("*-pre-upgrade/manifest.json"))]


def revision(postgres) -> list[str]:
    return postgres.query("SELECT version_num FROM alembic_version").split()


@pytest.fixture(scope="module")
def heads() -> tuple[str, str]:
    """(old, new): the public plugin's MLflow's schema head and the image's."""
    old, new = schema_head(OLD_PYTHON), schema_head(MLFLOW_BIN / "python")
    assert old != new
    return old, new


def wait_for_text(path: Path, text: str, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert process.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"{text!r} not in {path}"
        time.sleep(0.2)


def test_fresh_install_onto_a_database_the_public_plugin_created_serves_it(tmp_path, heads):
    """A new release (install, no hook) on a kept database and volume from MLflow 3.3.2."""
    release = render(config(), tmp_path)  # an install: Helm's is_install
    with release.postgres(tmp_path) as postgres:  # stopped after the new server too
        old = MlflowServer(tmp_path / "old", backend_store_uri=postgres.uri, python=str(OLD_PYTHON))
        with old:
            data = json.dumps({"experiments": [EXPERIMENT], "model": MODEL, "runs": RUNS})
            run_ids = json.loads(old_mlflow(seed.SCRIPT, data, MLFLOW_TRACKING_URI=old.url))
        assert revision(postgres) == [heads[0]]
        # The artifact volume the old server wrote is the one the new server mounts.
        shutil.copytree(old.workdir / "artifacts", server_volume(tmp_path, "artifacts"))
        # The pod's init containers alone bring the schema to the new head (MLflow's
        # server would otherwise migrate in each worker, unlocked, or refuse to start).
        for init in release.init_containers(tmp_path, postgres):
            run_to_completion(init, tmp_path, timeout=300)
        assert revision(postgres) == [heads[1]]
        # ...after a backup of the old schema (tests/e2e/test_pre_upgrade_backup.py).
        (backup,) = pre_upgrade_backups(tmp_path)
        assert backup["schema_revision"] == heads[0]
        assert backup["upgrade"] == {"from": heads[0], "to": heads[1]}
        assert backup["counts"]["runs"] == len(RUNS)
        assert backup["counts"]["metrics"] == sum(len(r["loss"]) for r in RUNS)

        with running_deployment(tmp_path, config(), release=release, postgres=postgres) as dep:
            assert revision(postgres) == [heads[1]]
            assert len(pre_upgrade_backups(tmp_path)) == 1  # a current schema gets none
            experiment = dep.api(f"experiments/get-by-name?experiment_name={EXPERIMENT}")
            experiment_id = experiment["experiment"]["experiment_id"]
            found = dep.api("runs/search", {"experiment_ids": [experiment_id], "max_results": 100})
            runs = {r["info"]["run_name"]: r for r in found["runs"]}
            assert sorted(runs) == sorted(r["name"] for r in RUNS)
            for logged in RUNS:
                run = runs[logged["name"]]
                params = {p["key"]: p["value"] for p in run["data"]["params"]}
                tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
                assert params == logged["params"]
                assert tags.items() >= logged["tags"].items()
                run_id = run["info"]["run_id"]
                history = dep.api(f"metrics/get-history?run_id={run_id}&metric_key=loss")["metrics"]
                assert [
                    (m["step"], m["value"]) for m in sorted(history, key=lambda m: m["step"])
                ] == [(step, value) for step, value in enumerate(logged["loss"])]
                assert dep.artifact(run["info"], "notes/note.txt") == logged["note"]
            assert sorted(run["info"]["run_id"] for run in runs.values()) == sorted(run_ids)
            model = dep.api(f"registered-models/get?name={MODEL}")["registered_model"]
            assert model["name"] == MODEL
            version = dep.api(f"model-versions/get?name={MODEL}&version=1")["model_version"]
            assert version["run_id"] == run_ids[0]
            # And the upgraded schema takes new writes.
            dep.api("runs/log-metric", {"run_id": run_ids[0], "key": "after", "value": 2.0,
                                        "timestamp": 0, "step": 0})  # fmt: skip
            after = dep.api(f"runs/get?run_id={run_ids[0]}")["run"]["data"]["metrics"]
            assert {m["key"]: m["value"] for m in after}["after"] == 2.0
            # It ran without auth; now auth is on (the default): everything is visible per
            # default_permission (READ) to every user, changeable by Nebari admins only.
            assert dep.auth_enabled
            seen = dep.api(f"experiments/get?experiment_id={experiment_id}", user="alice")
            assert seen["experiment"]["name"] == EXPERIMENT
            assert dep.api(f"registered-models/get?name={MODEL}", user="alice")["registered_model"]
            with pytest.raises(urllib.error.HTTPError) as refused:
                dep.api("experiments/update", {"experiment_id": experiment_id, "new_name": "x"},
                        user="alice")  # fmt: skip
            assert refused.value.code == 403
            dep.api("experiments/update",
                    {"experiment_id": experiment_id, "new_name": f"{EXPERIMENT}-admin"},
                    user="ada")  # fmt: skip
            renamed = dep.api(f"experiments/get?experiment_id={experiment_id}", user="alice")
            assert renamed["experiment"]["name"] == f"{EXPERIMENT}-admin"


@pytest.fixture
def old_database(tmp_path):
    """Render the release (an upgrade, waiting at most WAIT s) and start its PostgreSQL
    holding the old MLflow's schema and a run: (release, postgres)."""
    release = render(config(waitSeconds=WAIT), tmp_path, is_upgrade=True)
    postgres = release.postgres(tmp_path).__enter__()
    try:
        old_mlflow(CREATE_OLD_SCHEMA, postgres.uri)
        yield release, postgres
    finally:
        postgres.__exit__()


def test_database_down_during_an_upgrade_converges_once_it_is_back(tmp_path, old_database, heads):
    release, postgres = old_database
    postgres.stop()
    init = release.migration(tmp_path, postgres)

    # PostgreSQL down: the init container waits, bounded, then fails with the reason.
    started = time.monotonic()
    first = run_container(init, tmp_path, timeout=WAIT + 120)
    assert first.returncode != 0
    assert time.monotonic() - started >= WAIT
    assert "waiting for the database" in first.stdout
    last_line = first.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"mlflow schema migration failed: waited {WAIT} s for the database")
    assert "Traceback" not in first.stderr
    assert revision_offline(postgres) == [heads[0]]

    # The kubelet re-runs it; PostgreSQL comes back while it waits.
    log = tmp_path / "retry.log"
    retry = launch(init, tmp_path, log)
    try:
        wait_for_text(log, "waiting for the database", retry, timeout=60)
        postgres.start()
        assert retry.wait(timeout=300) == 0, log.read_text()
    finally:
        if retry.poll() is None:
            retry.kill()
    assert f"database schema at {heads[1]} (was {heads[0]})" in log.read_text()

    # The pod converges: the server starts and serves what was there.
    with running_deployment(tmp_path, config(), release=release, postgres=postgres) as dep:
        found = dep.api("experiments/get-by-name?experiment_name=before-upgrade")
        experiment_id = found["experiment"]["experiment_id"]
        runs = dep.api("runs/search", {"experiment_ids": [experiment_id]})["runs"]
        assert [r["info"]["run_name"] for r in runs] == ["kept"]


def revision_offline(postgres) -> list[str]:
    """The schema revision, read with PostgreSQL started just for the look."""
    postgres.start()
    try:
        return revision(postgres)
    finally:
        postgres.stop()


def test_replicas_starting_together_migrate_one_after_the_other(tmp_path, old_database, heads):
    release, postgres = old_database
    pods = [release.migration(tmp_path / f"pod-{i}", postgres) for i in range(2)]
    logs = [tmp_path / f"pod-{i}.log" for i in range(2)]
    procs = [launch(init, tmp_path, log) for init, log in zip(pods, logs, strict=True)]
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs
    # One migrated from the old schema; the other waited for it and found it done.
    migrated = [o for o in outputs if f"at {heads[1]} (was {heads[0]})" in o]
    found_done = [o for o in outputs if f"at {heads[1]} (was {heads[1]})" in o]
    assert len(migrated) == 1 and len(found_done) == 1, outputs
    assert "waiting for the migration lock" in found_done[0], outputs
    assert revision(postgres) == [heads[1]]


def test_with_migration_disabled_an_old_schema_is_refused_not_changed(tmp_path, heads):
    release = render(config(enabled=False, waitSeconds=WAIT), tmp_path, is_upgrade=True)
    with release.postgres(tmp_path) as postgres:
        old_mlflow(CREATE_OLD_SCHEMA, postgres.uri)
        init = release.migration(tmp_path, postgres)
        result = run_container(init, tmp_path, timeout=120)
        assert result.returncode != 0
        message = result.stderr.strip().splitlines()[-1]
        assert heads[0] in message and heads[1] in message and "mlflow db upgrade" in message
        assert "Traceback" not in result.stderr
        assert revision(postgres) == [heads[0]]
