"""A training loop in a user pod's kernel does not wait for the server, and loses
nothing when the kernel shuts down with points still queued.

The pod as rendered (support/userpod.py: injected env, delivered package, alice's
token) runs a kernel as Jupyter starts it; `mlflow.notebook.async_logging` is on by
default. The per-step cost is measured in benchmarks/async_logging.py.
"""

from __future__ import annotations

import pytest
import test_user_pod
from test_user_pod import run_notebook

# The user pod of test_user_pod.py (its fixtures, used here by name).
pod_release = test_user_pod.pod_release
user_pod = test_user_pod.user_pod

pytestmark = pytest.mark.slow

STEPS = 2000

CELLS = [
    "import mlflow\nrun = mlflow.start_run()\nprint(run.info.run_id)",
    # Asynchronous: each call hands back the operation to wait on, not None.
    f"ops = [mlflow.log_metric('loss', 1 / (s + 1), step=s) for s in range({STEPS})]\n"
    "print(type(ops[-1]).__name__)",
    # The model registry (named in the pod's env, see render/injection.py) is the same
    # server: a model registered from the kernel is there.
    "client = mlflow.MlflowClient()\nclient.create_registered_model('pod-model')\n"
    "print(client.create_model_version('pod-model', run.info.artifact_uri,\n"
    "                                  run.info.run_id).version)",
    # No end_run: the user closes the notebook (the kernel is shut down).
]


def test_points_queued_when_the_kernel_shuts_down_all_arrive(deployment, user_pod, tmp_path):
    outputs = run_notebook(user_pod, deployment, tmp_path, CELLS)
    assert all(out["output_type"] == "stream" for cell in outputs for out in cell), outputs
    run_id = outputs[0][0]["text"].strip()
    assert outputs[1][0]["text"].strip() == "RunOperations"  # logged asynchronously
    # The driver returned after the kernel shut down: what it queued is on the server.
    history = deployment.api(
        f"metrics/get-history?run_id={run_id}&metric_key=loss&max_results={STEPS * 2}"
    )
    assert sorted(m["step"] for m in history["metrics"]) == list(range(STEPS))
    (number,) = [out["text"].strip() for out in outputs[2] if out.get("name") == "stdout"]
    version = deployment.api(f"model-versions/get?name=pod-model&version={number}")
    assert version["model_version"]["run_id"] == run_id
