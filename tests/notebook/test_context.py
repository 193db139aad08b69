"""NebariRunContextProvider against a real MLflow server.

Runs are started in fresh interpreters so MLflow discovers the provider
through its own `mlflow.run_context_provider` entry point, as in a user pod.
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import timeit
import uuid
from pathlib import Path

import mlflow  # noqa: F401  (before the provider's module, as in any program: see below)
import pytest

# Imported after mlflow: importing it first would make MLflow's entry-point loader
# meet it half-initialised (it imports mlflow) and skip the provider.
from nebari_mlflow_plugin.notebook import context

# Variables the provider reads: removed so the developer's own env cannot leak in.
CONTEXT_VARS = (
    "JUPYTERHUB_USER", "PREFERRED_USERNAME", "NEBARI_PROJECT", "NEBARI_NAMESPACE",
    "POD_NAMESPACE", "KUBERNETES_NAMESPACE", "JUPYTERHUB_SERVER_NAME", "CONDA_PREFIX",
    "ARGO_POD_NAME", "POD_NAME", "JPY_SESSION_NAME", "ARGO_WORKFLOW_NAME",
    "ARGO_WORKFLOW_UID", "ARGO_NODE_ID", "ARGO_TEMPLATE", "NEBARI_JOB_ID",
    "NEBARI_MLFLOW_CONTEXT", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_USERNAME",
)  # fmt: skip


def clean_env(tracking_uri: str, tmp_path: Path, **extra: str) -> dict:
    """Environment of a process outside Nebari, logging to `tracking_uri`."""
    env = {k: v for k, v in os.environ.items() if k not in CONTEXT_VARS}
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        MLFLOW_EXPERIMENT_NAME=f"test-{uuid.uuid4().hex[:8]}",
        MLFLOW_DISABLE_TELEMETRY="true",
        HOSTNAME="",
    )
    env.update(extra)
    return env


def python(env: dict, code: str, *args: str, cwd: Path | None = None) -> str:
    """Run `code` (or `-m ...` when code is "-m") in a new interpreter; return stdout."""
    argv = [sys.executable, "-m", *args] if code == "-m" else [sys.executable, "-c", code]
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


START_RUN = (
    "import mlflow\nwith mlflow.start_run() as run:\n    print('RUN_ID=' + run.info.run_id)\n"
)


def run_tags(tracking_uri: str, output: str) -> dict[str, str]:
    """Tags of the run whose id `output` printed as RUN_ID=..., read from the server."""
    from mlflow.tracking import MlflowClient

    (run_id,) = [line[7:] for line in output.splitlines() if line.startswith("RUN_ID=")]
    return MlflowClient(tracking_uri).get_run(run_id).data.tags


NEBARI_ENV = {
    "JUPYTERHUB_USER": "alice@example.com",
    "NEBARI_PROJECT": "demo",
    "NEBARI_NAMESPACE": "dev",
    "JUPYTERHUB_SERVER_NAME": "gpu",
    "CONDA_PREFIX": "/home/conda/analyst/envs/analyst-dask-gpu",
    "HOSTNAME": "jupyter-alice-40example-2ecom--gpu",
    "JPY_SESSION_NAME": "/home/alice@example.com/projects/train.ipynb",
}


def test_start_run_in_nebari_carries_user_and_context(mlflow_server, tmp_path):
    env = clean_env(mlflow_server.url, tmp_path, **NEBARI_ENV)
    tags = run_tags(mlflow_server.url, python(env, START_RUN))
    assert tags["mlflow.user"] == "alice@example.com"
    assert tags["nebari.project"] == "demo"
    assert tags["nebari.namespace"] == "dev"
    assert tags["nebari.jupyterhub.server_name"] == "gpu"
    assert tags["nebari.conda.env_path"] == "/home/conda/analyst/envs/analyst-dask-gpu"
    assert tags["nebari.conda.env"] == "analyst/dask-gpu"
    assert tags["nebari.pod"] == "jupyter-alice-40example-2ecom--gpu"
    assert tags["nebari.notebook.path"] == "/home/alice@example.com/projects/train.ipynb"
    assert not any(k.startswith("nebari.argo.") or k.startswith("nebari.job.") for k in tags)


def test_start_run_in_scheduled_job_carries_workflow_and_job(mlflow_server, tmp_path):
    job_id = str(uuid.uuid4())
    env = clean_env(
        mlflow_server.url, tmp_path,
        PREFERRED_USERNAME="bob", POD_NAMESPACE="dev", CONDA_PREFIX="/opt/conda/envs/default",
        ARGO_WORKFLOW_NAME=f"job-{job_id}", ARGO_WORKFLOW_UID="0b6c0f0e-uid",
        ARGO_NODE_ID=f"job-{job_id}-123", ARGO_POD_NAME=f"job-{job_id}-main-123",
        ARGO_TEMPLATE=json.dumps({"name": "main", "container": {"image": "x"}}),
    )  # fmt: skip
    # PREFERRED_USERNAME alone does not mean Nebari; NEBARI_NAMESPACE does.
    env["NEBARI_NAMESPACE"] = "dev"
    tags = run_tags(mlflow_server.url, python(env, START_RUN))
    assert tags["mlflow.user"] == "bob"
    assert tags["nebari.namespace"] == "dev"
    assert tags["nebari.argo.workflow.name"] == f"job-{job_id}"
    assert tags["nebari.argo.workflow.uid"] == "0b6c0f0e-uid"
    assert tags["nebari.argo.node_id"] == f"job-{job_id}-123"
    assert tags["nebari.argo.template"] == "main"
    assert tags["nebari.pod"] == f"job-{job_id}-main-123"
    assert tags["nebari.job.id"] == job_id
    assert tags["nebari.conda.env_path"] == "/opt/conda/envs/default"
    assert "nebari.conda.env" not in tags  # not a conda-store env


def test_cron_job_definition_id_from_workflow_name(mlflow_server, tmp_path):
    definition = str(uuid.uuid4())
    env = clean_env(
        mlflow_server.url, tmp_path,
        JUPYTERHUB_USER="carol", ARGO_WORKFLOW_NAME=f"job-def-{definition}-1764000000",
    )  # fmt: skip
    tags = run_tags(mlflow_server.url, python(env, START_RUN))
    assert tags["nebari.job.definition_id"] == definition
    assert "nebari.job.id" not in tags


@pytest.mark.parametrize("disable", [None, "0"], ids=["no-nebari-env", "disabled"])
def test_outside_nebari_nothing_changes(mlflow_server, tmp_path, disable):
    extra = {} if disable is None else {**NEBARI_ENV, "NEBARI_MLFLOW_CONTEXT": disable}
    # A bare Argo pod outside Nebari is not Nebari either.
    extra.update(ARGO_WORKFLOW_NAME="wf", ARGO_WORKFLOW_UID="u")
    env = clean_env(mlflow_server.url, tmp_path, **extra)
    tags = run_tags(mlflow_server.url, python(env, START_RUN))
    assert not [k for k in tags if k.startswith("nebari.")]
    expected_user = getpass.getuser() if disable is None else tags["mlflow.user"]
    assert tags["mlflow.user"] == expected_user != "alice@example.com"


BROKEN = {
    "empty": {k: "" for k in NEBARI_ENV} | {"NEBARI_PROJECT": "p"},
    "blank": {"JUPYTERHUB_USER": "   ", "NEBARI_NAMESPACE": " \t", "NEBARI_PROJECT": "p"},
    "unicode": {"JUPYTERHUB_USER": "zoë-数据-🚀", "NEBARI_PROJECT": "prøject"},
    "undecodable-bytes": {"JUPYTERHUB_USER": "dave\udcff\udcfe", "NEBARI_PROJECT": "p"},
    "very-long": {"JUPYTERHUB_USER": "u" * 20000, "JPY_SESSION_NAME": "/" + "n" * 9000},
    "conda-prefix-nowhere": {"JUPYTERHUB_USER": "erin", "CONDA_PREFIX": "/does/not/exist"},
    "odd-argo": {
        "JUPYTERHUB_USER": "frank", "ARGO_TEMPLATE": "{not json", "ARGO_WORKFLOW_NAME": "job-",
    },
    "argo-template-not-object": {"JUPYTERHUB_USER": "gina", "ARGO_TEMPLATE": "[1, 2]"},
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_environment_never_breaks_start_run(mlflow_server, tmp_path, case):
    env = clean_env(mlflow_server.url, tmp_path, **BROKEN[case])
    tags = run_tags(mlflow_server.url, python(env, START_RUN))
    assert all(len(v) <= 5000 for v in tags.values())
    assert all(v for k, v in tags.items() if k.startswith("nebari."))  # no empty tags
    if case == "unicode":
        assert tags["mlflow.user"] == "zoë-数据-🚀"
        assert tags["nebari.project"] == "prøject"
    if case == "undecodable-bytes":
        assert tags["mlflow.user"] == "dave\ufffd\ufffd"
    if case == "very-long":
        assert len(tags["mlflow.user"]) == 5000 and tags["mlflow.user"].endswith("...")
        assert len(tags["nebari.notebook.path"]) == 5000
    if case == "conda-prefix-nowhere":
        assert tags["nebari.conda.env_path"] == "/does/not/exist"
    if case == "empty":
        assert tags["mlflow.user"] == getpass.getuser()  # empty user is no user


def test_mlflow_registry_resolves_our_tags(mlflow_server, tmp_path):
    """MLflow's own registry (entry point) yields the tags, not just our class."""
    code = (
        "import json\n"
        "from mlflow.tracking.context import registry\n"
        "names = [type(p).__name__ for p in registry._run_context_provider_registry]\n"
        "print(json.dumps([names, registry.resolve_tags({'nebari.project': 'mine'})]))\n"
    )
    env = clean_env(mlflow_server.url, tmp_path, **NEBARI_ENV)
    names, tags = json.loads(python(env, code).splitlines()[-1])
    assert "NebariRunContextProvider" in names
    assert tags["mlflow.user"] == "alice@example.com"
    assert tags["nebari.conda.env"] == "analyst/dask-gpu"
    assert tags["nebari.project"] == "mine"  # explicit tags still win


def test_entry_point_loads_without_nebari(mlflow_server, tmp_path):
    """The mlflow env (like a user pod) has no nebari: the entry point must still load."""
    env = clean_env(mlflow_server.url, tmp_path, **NEBARI_ENV)
    assert python(env, "import importlib.util; print(importlib.util.find_spec('nebari'))") == "None"
    code = (
        "import warnings\nwarnings.simplefilter('error')\n"
        "from mlflow.tracking.context import registry\n"
        "print([type(p).__name__ for p in registry._run_context_provider_registry])\n"
    )
    assert "NebariRunContextProvider" in python(env, code)


def test_tags_is_fast_and_networkless(monkeypatch):
    for key in CONTEXT_VARS:
        monkeypatch.delenv(key, raising=False)
    for key, value in NEBARI_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ARGO_TEMPLATE", json.dumps({"name": "main", "script": "x" * 2000}))
    provider = context.NebariRunContextProvider()
    assert provider.in_context()

    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("tags() touched the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    number = 2000
    per_call = timeit.timeit(provider.tags, number=number) / number
    print(f"NebariRunContextProvider.tags(): {per_call * 1e6:.1f} us/call")
    assert provider.tags()["nebari.argo.template"] == "main"
    assert per_call < 1e-3


def test_tags_never_raise(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(context, "nebari_tags", boom)
    assert context.NebariRunContextProvider().tags() == {}
    monkeypatch.setattr(context, "in_nebari", boom)
    assert context.NebariRunContextProvider().in_context() is False


def test_the_exit_flush_sends_what_is_queued_and_builds_no_store_of_its_own(
    mlflow_server, tmp_path
):
    """A kernel shut down with a run open: the queued points arrive; a process with no
    tracking URI (a test, a script outside Nebari) gets no `mlflow.db` from the flush."""
    install = "from nebari_mlflow_plugin.notebook import flush\nassert flush.install()\n"
    unnamed = clean_env(mlflow_server.url, tmp_path)
    del unnamed["MLFLOW_TRACKING_URI"]
    python(unnamed, install, cwd=tmp_path)
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists()

    points = 500
    code = install + (
        "import mlflow\nrun = mlflow.start_run()\nprint('RUN_ID=' + run.info.run_id)\n"
        f"for step in range({points}):\n"
        "    mlflow.log_metric('loss', 1 / (step + 1), step=step, synchronous=False)\n"
    )  # the process ends with the run open and the queue full
    named = clean_env(mlflow_server.url, tmp_path, MLFLOW_ENABLE_ASYNC_LOGGING="true")
    output = python(named, code, cwd=tmp_path)
    from mlflow.tracking import MlflowClient

    (run_id,) = [line[7:] for line in output.splitlines() if line.startswith("RUN_ID=")]
    history = MlflowClient(mlflow_server.url).get_metric_history(run_id, "loss")
    assert len(history) == points
    assert not (tmp_path / "mlflow.db").exists()
