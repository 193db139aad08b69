"""One MLflow run shared by Argo workflow steps, each step its own process."""

from __future__ import annotations

import uuid

from test_context import clean_env, python

CLI = "nebari_mlflow_plugin.notebook.workflow"

# A later step: plain MLflow calls; MLFLOW_RUN_ID makes them resume the run.
STEP = (
    "import mlflow\n"
    "mlflow.log_metric({name!r}, {value})\n"
    "mlflow.log_param({name!r} + '_step', {step!r})\n"
)


def test_steps_share_one_run_and_retried_start_reuses_it(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    uid = str(uuid.uuid4())
    argo = {
        "JUPYTERHUB_USER": "alice",
        "NEBARI_NAMESPACE": "dev",
        "ARGO_WORKFLOW_NAME": "train-abc12",
        "ARGO_WORKFLOW_UID": uid,
    }
    env = clean_env(mlflow_server.url, tmp_path, **argo)
    out = tmp_path / "outputs" / "run-id"

    # Step 1, then a retry of step 1 (Argo retryStrategy): same run both times.
    run_id = python(env, "-m", CLI, "start", "--output", str(out), "--tag", "team=ml")
    assert out.read_text() == run_id
    retried = python(env, "-m", CLI, "start", "--output", str(out))
    assert retried == run_id

    # Steps 2 and 3 resume the run through MLFLOW_RUN_ID, as separate pods would.
    for name, value, step in (("loss", "0.5", "2"), ("accuracy", "0.9", "3")):
        step_env = {**env, "MLFLOW_RUN_ID": run_id, "ARGO_NODE_ID": f"node-{step}"}
        python(step_env, STEP.format(name=name, value=value, step=step))

    # Exit handler: no run id given, found by the workflow uid.
    ended = python(env, "-m", CLI, "end", "--status", "Failed")
    assert ended == run_id

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"loss": 0.5, "accuracy": 0.9}
    assert run.data.params == {"loss_step": "2", "accuracy_step": "3"}
    tags = run.data.tags
    assert tags["nebari.argo.workflow.name"] == "train-abc12"
    assert tags["nebari.argo.workflow.uid"] == uid
    assert tags["nebari.argo.workflow.status"] == "Failed"
    assert tags["mlflow.user"] == "alice"
    assert tags["nebari.namespace"] == "dev"
    assert tags["team"] == "ml"
    assert tags["mlflow.runName"] == "train-abc12"


def test_end_with_explicit_run_id_and_success(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    env = clean_env(mlflow_server.url, tmp_path)  # outside Argo and Nebari
    run_id = python(env, "-m", CLI, "start", "--workflow-uid", "local-1", "--run-name", "local")
    assert python(env, "-m", CLI, "start", "--workflow-uid", "local-1") == run_id
    assert python(env, "-m", CLI, "end", "--run-id", run_id, "--status", "Succeeded") == run_id
    run = MlflowClient(mlflow_server.url).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "local"
    assert not [k for k in run.data.tags if k.startswith("nebari.") and "workflow" not in k]


def test_end_without_any_run_fails_cleanly(mlflow_server, tmp_path):
    import subprocess
    import sys

    env = clean_env(mlflow_server.url, tmp_path, ARGO_WORKFLOW_UID=str(uuid.uuid4()))
    proc = subprocess.run(
        [sys.executable, "-m", CLI, "end"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert "no run tagged nebari.argo.workflow.uid=" in proc.stderr
    assert proc.stdout == ""
