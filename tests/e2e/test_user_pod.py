"""The notebook package reaches user pods with nothing installed (support/userpod.py).

A fresh virtualenv with only MLflow and ipykernel (`.venv-pod`, nothing of this
project) plays the user's conda environment. It gets the files and environment
exactly as rendered: the ConfigMaps of the mlflow-notebook-client stage, mounted
where Nebari's profile code mounts `custom.extra-mounts`, and the injected `singleuser.extraEnv`,
expanded for the user. It talks to the running deployment at the in-cluster URL.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from support import nebari as nb
from support.deployment import MLFLOW_BIN
from support.release import render_release
from support.userpod import POD_VENV, build_user_pod, nebari_mount_paths, process_env

from nebari_mlflow_plugin.__about__ import __version__
from nebari_mlflow_plugin.render import notebook_delivery
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage

POD_PYTHON = POD_VENV / "bin" / "python"
MLFLOW_CONFIG = {
    "workers": 2,
    "user_experiment": "users/{username}",
    "notebook": {
        "capture_cells": True,
        "capture_experiment": "users/{username}/cells",
        "capture_redact": [r"sk-[a-z]{20,}"],  # braces KubeSpawner must leave alone
    },
}


@pytest.fixture(scope="module")
def pod_release(deployment, tmp_path_factory):
    """Config and manifests of a deployment with cell capture on (same namespace and
    route as the running one, whose server answers the pod)."""
    if not POD_PYTHON.exists():
        pytest.skip(f"user-environment virtualenv missing at {POD_VENV} (run `make install`)")
    config = nb.validate(nb.config_dict("local", MLFLOW_CONFIG))
    workdir = tmp_path_factory.mktemp("pod-stage")
    stage = nb.stage_for(config, workdir)
    client = NotebookClientStage(workdir, config)
    return config, render_release(stage, nb.STAGE_OUTPUTS) + client.config_map_manifests()


@pytest.fixture
def user_pod(pod_release, tmp_path):
    config, manifests = pod_release
    return build_user_pod(config, manifests, tmp_path / "pod-root", user="alice")


def pod_run(pod, deployment, argv: list[str], cwd: Path, **extra: str):
    env = process_env(pod, deployment.client_env(), dict(extra, HOME=str(cwd)), base=os.environ)
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_mounts_fit_next_to_nebaris_own(pod_release, user_pod):
    """Every ConfigMap the mounts name is rendered, and no path shadows Nebari's."""
    config, _ = pod_release
    ours = set(notebook_delivery.extra_mounts(config.mlflow, config.namespace))
    assert set(user_pod.mounts) == ours
    for path in ours:
        for nebari_path in nebari_mount_paths():
            assert not (path + "/").startswith(nebari_path + "/"), (path, nebari_path)
            assert not (nebari_path + "/").startswith(path + "/"), (path, nebari_path)


def test_fresh_environment_has_nothing_of_ours(tmp_path):
    result = subprocess.run(
        [str(POD_PYTHON), "-c", "import nebari_mlflow_plugin"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


def test_runs_in_a_fresh_environment_carry_user_and_nebari_tags(deployment, user_pod, tmp_path):
    script = textwrap.dedent(
        """
        import importlib.metadata, json, mlflow
        with mlflow.start_run() as run:
            mlflow.log_param("delivered", "yes")
        print(json.dumps({
            "run_id": run.info.run_id,
            "distribution": importlib.metadata.version("nebari-mlflow-notebook"),
        }))
        """
    )
    result = pod_run(user_pod, deployment, [str(POD_PYTHON), "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run_context_provider" not in result.stderr  # MLflow warns when a plugin fails
    assert "request auth provider" not in result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["distribution"] == __version__
    assert run_user(deployment, printed["run_id"]) == "alice"  # the server's, from the token

    run = deployment.api(f"runs/get?run_id={printed['run_id']}")["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.user"] == "alice"
    assert tags["nebari.project"] == "demo" and tags["nebari.namespace"] == "dev"
    assert tags["nebari.pod"] == "jupyter-alice"
    assert tags["nebari.conda.env_path"] == str(POD_VENV)
    experiment = deployment.api(f"experiments/get?experiment_id={run['info']['experiment_id']}")
    assert experiment["experiment"]["name"] == "users/alice"  # per-user experiment


def run_user(deployment, run_id: str) -> str:
    return deployment.api(f"runs/get?run_id={run_id}")["run"]["info"]["user_id"]


def test_without_the_pods_token_the_server_refuses(deployment, user_pod, tmp_path):
    """What authenticates the pod is its JupyterHub token, sent by the delivered package."""
    script = "import mlflow; mlflow.search_experiments(max_results=1)"
    result = pod_run(user_pod, deployment, [str(POD_PYTHON), "-c", script], tmp_path,
                     JUPYTERHUB_API_TOKEN="")  # fmt: skip
    assert result.returncode != 0 and "401" in result.stderr, result.stderr[-2000:]


def test_workflow_helper_runs_from_the_mounted_package(deployment, user_pod, tmp_path):
    run_id_file = tmp_path / "run_id"
    argo = {"ARGO_WORKFLOW_NAME": "train-x1", "ARGO_WORKFLOW_UID": "0f0e-delivered"}
    result = pod_run(
        user_pod, deployment,
        [str(POD_PYTHON), "-m", "nebari_mlflow_plugin.notebook.workflow", "start",
         "--output", str(run_id_file)],
        tmp_path, **argo,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    run = deployment.api(f"runs/get?run_id={run_id_file.read_text().strip()}")["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["nebari.argo.workflow.uid"] == "0f0e-delivered"
    assert tags["mlflow.user"] == "alice"


NOTEBOOK_DRIVER = """
import json, os, sys, nbformat
from nbclient import NotebookClient
cells = [nbformat.v4.new_code_cell(code) for code in json.loads(sys.argv[1])]
nb = nbformat.v4.new_notebook(cells=cells)
NotebookClient(nb, timeout=120, kernel_name="pod", allow_errors=True).execute()
print(json.dumps([cell.outputs for cell in nb.cells]))
"""


def run_notebook(user_pod, deployment, tmp_path: Path, cells: list[str]) -> list[list[dict]]:
    """Execute `cells` as a notebook on a kernel of the pod's environment, started as
    Jupyter starts it (kernel spec "pod"); each cell's outputs, once the kernel is shut
    down."""
    kernels = tmp_path / "jupyter" / "kernels" / "pod"
    kernels.mkdir(parents=True)
    spec = {"argv": user_pod.kernel_argv(POD_PYTHON), "display_name": "pod", "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", NOTEBOOK_DRIVER, json.dumps(cells)],
        env=process_env(
            user_pod, deployment.client_env(),
            {"HOME": str(tmp_path), "JUPYTER_PATH": str(tmp_path / "jupyter")},
            base=os.environ,
        ),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_kernel_records_cells_when_capture_is_on(deployment, user_pod, tmp_path):
    """A kernel of the pod's environment, started as Jupyter starts it, loads the
    capture extension from the delivered IPython config; its cells become runs."""
    cells = ["print('hello from alice')", "x = 6 * 7\nx", "1 / 0", "key = 'sk-' + 'q' * 24\nkey"]
    outputs = run_notebook(user_pod, deployment, tmp_path, cells)
    assert outputs[0][0]["text"] == "hello from alice\n"
    assert outputs[2][0]["ename"] == "ZeroDivisionError"  # the user sees the error as usual

    def cell_runs() -> list[dict] | None:
        found = deployment.api("experiments/get-by-name?experiment_name=users/alice/cells")
        runs = deployment.api(
            "runs/search",
            {"experiment_ids": [found["experiment"]["experiment_id"]], "max_results": 100},
        ).get("runs", [])
        parents = [r for r in runs if not _tag(r, "mlflow.parentRunId")]
        done = len(runs) == len(cells) + 1 and parents and parents[0]["info"]["status"] != "RUNNING"
        return runs if done else None

    runs = _wait(cell_runs, 120)
    by_count = {_tag(r, "nebari.cell.execution_count"): r for r in runs}
    assert set(by_count) == {None, "1", "2", "3", "4"}
    assert by_count["3"]["info"]["status"] == "FAILED"
    assert by_count["1"]["info"]["status"] == "FINISHED"
    # The admin's redaction pattern reached the kernel intact: the output is masked.
    outputs_4 = json.dumps(outputs[3])
    assert "sk-qqqq" in outputs_4  # the user still sees it
    shown = deployment.artifact(by_count["4"]["info"], "outputs/output-01.txt")
    assert "sk-qqqq" not in shown and "********" in shown
    for run in runs:
        assert _tag(run, "mlflow.user") == "alice"
        assert _tag(run, "nebari.project") == "demo"
        assert _tag(run, "nebari.conda.env_path") == str(POD_VENV)


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["data"].get("tags", []) if t["key"] == key), None)


def _wait(probe, timeout: float):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except OSError as exc:  # experiment not created yet
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    raise AssertionError(f"cell runs not delivered in {timeout}s: {last!r}")
