"""The gc CronJob's container, run exactly as rendered against the running deployment
(PostgreSQL + the artifact volume behind the server's artifact proxy).

A run deleted longer ago than `older_than` is purged with its artifacts; a run
deleted recently and an active run stay, artifacts included.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

from support import nebari as nb
from support.deployment import MLFLOW_BIN, project_config_maps, relocate, service_addresses
from support.podrun import local_container, process_env
from support.release import find, render_release

OLDER_THAN_DAYS = 1

MAKE_RUNS = textwrap.dedent(
    """
    import json, sys, time, mlflow
    from mlflow import MlflowClient
    client = MlflowClient()
    experiment_id = client.create_experiment(f"gc-{time.time_ns()}")
    runs = {}
    for name in ("old", "recent", "active"):
        with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
            mlflow.log_text(f"artifact of {name}", "notes/readme.txt")
        runs[name] = run.info.run_id
    client.delete_run(runs["old"])
    client.delete_run(runs["recent"])
    print(json.dumps({"experiment_id": experiment_id, "runs": runs}))
    """
)


def client_python(deployment, script: str) -> dict:
    env = {**os.environ, **deployment.client_env(), **deployment.token_env(),
           "MLFLOW_TRACKING_URI": deployment.service_url}  # fmt: skip
    result = subprocess.run([str(MLFLOW_BIN / "python"), "-c", script], env=env,
                            capture_output=True, text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def gc_container(deployment, tmp_path):
    """The CronJob's container of a release with gc on (same namespace and route as the
    running deployment), resolved as the kubelet would, the database Service relocated."""
    config = nb.validate(nb.config_dict("local", {"workers": 2, "gc": {
        "enabled": True, "older_than": f"{OLDER_THAN_DAYS}d"}}))  # fmt: skip
    manifests = render_release(nb.stage_for(config, tmp_path / "stage"), nb.STAGE_OUTPUTS)
    (cronjob,) = find(manifests, "CronJob", "mlflow-gc")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    pg_service = next(s for s in find(manifests, "Service") if "5432" in str(s["spec"]["ports"]))
    local_ports = {pg_service["metadata"]["name"]: deployment.postgres.port}
    addresses = service_addresses(manifests, config.namespace, local_ports)
    # The Secrets of the running deployment (database password, the auth Secret whose
    # built-in admin the job authenticates as).
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    project_config_maps(manifests, pod, tmp_path / "gc" / "volumes")  # the server package
    local = local_container(container, workdir=tmp_path / "gc", executables={},
                            secrets=deployment.secret_values)  # fmt: skip
    return relocate(local, addresses)


def artifact_file(deployment, experiment_id: str, run_id: str):
    volume = deployment.server.mounts["/mlartifacts"]
    return volume / experiment_id / run_id / "artifacts" / "notes" / "readme.txt"


def run_exists(deployment, run_id: str) -> bool:
    return (
        deployment.postgres.query(f"SELECT count(*) FROM runs WHERE run_uuid = '{run_id}'") == "1"
    )


def test_gc_purges_only_runs_deleted_long_ago_with_their_artifacts(deployment, tmp_path):
    made = client_python(deployment, MAKE_RUNS)
    experiment_id, runs = made["experiment_id"], made["runs"]
    for run_id in runs.values():
        assert artifact_file(deployment, experiment_id, run_id).is_file()
    # "old" was deleted two days ago (MLflow records deleted_time in milliseconds).
    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    deployment.postgres.query(
        f"UPDATE runs SET deleted_time = {two_days_ago} WHERE run_uuid = '{runs['old']}'"
    )

    container = gc_container(deployment, tmp_path)
    env = process_env(container, base=deployment.client_env())
    env["PATH"] = f"{MLFLOW_BIN}:{os.environ['PATH']}"
    result = subprocess.run(container.argv, env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    assert not run_exists(deployment, runs["old"])
    assert not artifact_file(deployment, experiment_id, runs["old"]).exists()
    for name in ("recent", "active"):
        assert run_exists(deployment, runs[name]), name
        assert artifact_file(deployment, experiment_id, runs[name]).is_file(), name
    # Nothing of the URI reached the command line.
    assert not any(deployment.postgres.password in arg for arg in container.argv)
