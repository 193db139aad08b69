"""A kedro project with kedro-mlflow logs to MLflow with only the injected env.

The project is written here (no `kedro new`, no template download); its
`mlflow.yml` comes from `kedro mlflow init`, which is offline and leaves
`server.mlflow_tracking_uri: null`, so kedro-mlflow reads MLFLOW_TRACKING_URI
(kedro_mlflow/config/kedro_mlflow_config.py: `os.environ.get(
"MLFLOW_TRACKING_URI", "mlruns")`). `kedro run` gets nothing but PATH, HOME and
what the plugin and JupyterHub put in a Nebari user pod. Without
MLFLOW_TRACKING_URI kedro-mlflow would fall back to ./mlruns, which MLflow 3.17
refuses (file store in maintenance mode): the injected variable is required.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

KEDRO = Path(sys.executable).parent / "kedro"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def make_project(root: Path, package: str) -> None:
    write(
        root / "pyproject.toml",
        f"""
        [project]
        name = "{package}"
        version = "0.1.0"

        [tool.kedro]
        package_name = "{package}"
        project_name = "{package}"
        kedro_init_version = "1.7.0"
        source_dir = "src"
        """,
    )
    pkg = root / "src" / package
    write(pkg / "__init__.py", "")
    write(pkg / "settings.py", '"""Kedro defaults: OmegaConfigLoader, conf/base + conf/local."""\n')
    write(
        pkg / "pipeline_registry.py",
        f"""
        from kedro.pipeline import Pipeline

        from {package}.pipeline import create_pipeline


        def register_pipelines() -> dict[str, Pipeline]:
            return {{"__default__": create_pipeline()}}
        """,
    )
    write(
        pkg / "pipeline.py",
        """
        from kedro.pipeline import Pipeline, node


        def score(alpha: float) -> float:
            return alpha * 2


        def create_pipeline() -> Pipeline:
            return Pipeline([node(score, "params:alpha", "score", name="score")])
        """,
    )
    write(
        root / "conf" / "base" / "catalog.yml",
        """
        score:
          type: kedro_mlflow.io.metrics.MlflowMetricDataset
        """,
    )
    write(root / "conf" / "base" / "parameters.yml", "alpha: 0.25\n")
    (root / "conf" / "local").mkdir(parents=True)
    # kedro-telemetry (a kedro dependency) sends usage data unless told no;
    # the project-level opt-out keeps the process env as in a user pod.
    write(root / ".telemetry", "consent: false\n")


def kedro(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(KEDRO), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"kedro {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


def test_kedro_mlflow_logs_with_injected_env_only(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    suffix = uuid.uuid4().hex[:8]
    package = f"kedro_demo_{suffix}"
    project = tmp_path / "project"
    make_project(project, package)
    home = tmp_path / "home"
    home.mkdir()
    injected = {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "NEBARI_PROJECT": f"proj-{suffix}",
        "NEBARI_NAMESPACE": "dev",
        "MLFLOW_EXPERIMENT_NAME": f"injected-{suffix}",
        "JUPYTERHUB_USER": f"kedro-user-{suffix}",
    }
    env = {"PATH": os.environ["PATH"], "HOME": str(home), **injected}

    kedro(["mlflow", "init", "--env", "base"], project, env)
    mlflow_yml = (project / "conf" / "base" / "mlflow.yml").read_text()
    assert "mlflow_tracking_uri: null" in mlflow_yml
    assert f"name: {package}" in mlflow_yml  # the template's experiment: the package name

    kedro(["run"], project, env)

    client = MlflowClient(mlflow_server.url)
    # kedro-mlflow calls mlflow.set_experiment(<mlflow.yml name>): the injected
    # MLFLOW_EXPERIMENT_NAME is overridden and never even created.
    assert client.get_experiment_by_name(injected["MLFLOW_EXPERIMENT_NAME"]) is None
    experiment = client.get_experiment_by_name(package)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "0.25"
    assert run.data.metrics["score"] == 0.5
    tags = run.data.tags
    assert tags["mlflow.user"] == injected["JUPYTERHUB_USER"]
    assert tags["nebari.project"] == injected["NEBARI_PROJECT"]
    assert tags["nebari.namespace"] == injected["NEBARI_NAMESPACE"]
    assert tags["kedro_command"].startswith("kedro run")
    # Nothing fell back to a local file store.
    assert not (project / "mlruns").exists()
