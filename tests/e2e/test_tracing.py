"""GenAI tracing through the deployment: MLflow 3 traces from a user pod, and an
OpenTelemetry OTLP/HTTP export to the in-cluster URL, both land in the server.

The OTLP receiver is `<route_path>/v1/traces` (MLflow 3.17 mounts its OTel router
under `--static-prefix`), reached by the Service's DNS name (so with the Host
header the server's `--allowed-hosts` check sees from pods), experiment chosen
with the `x-mlflow-experiment-id` header.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

import pytest
from support import nebari as nb
from support.deployment import MLFLOW_BIN
from support.release import render_release
from support.userpod import POD_VENV, build_user_pod, process_env

from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage

POD_PYTHON = POD_VENV / "bin" / "python"

# Read back the way a user would, with MLflow's client, in the server's environment.
SEARCH = """
import json, sys, mlflow
traces = mlflow.search_traces(locations=[sys.argv[1]], return_type="list")
print(json.dumps([{"id": t.info.trace_id, "spans": sorted(s.name for s in t.data.spans),
                   "attributes": {s.name: s.attributes for s in t.data.spans}}
                  for t in traces], default=str))
"""


def mlflow_python(deployment, script: str, *args: str) -> str:
    env = {**os.environ, **deployment.client_env(), **deployment.token_env(),
           "MLFLOW_TRACKING_URI": deployment.service_url}  # fmt: skip
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", script, *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def traces_in(deployment, experiment_id: str) -> list[dict]:
    return json.loads(mlflow_python(deployment, SEARCH, experiment_id))


def new_experiment(deployment, name: str) -> str:
    body = {"name": f"{name}-{time.time_ns()}"}
    return deployment.api("experiments/create", body, user="alice")["experiment_id"]


@pytest.fixture(scope="module")
def user_pod(deployment, tmp_path_factory):
    if not POD_PYTHON.exists():
        pytest.skip(f"user-environment virtualenv missing at {POD_VENV} (run `make install`)")
    workdir = tmp_path_factory.mktemp("stage")
    # The release and the notebook package's ConfigMaps (the mlflow-notebook-client stage).
    manifests = render_release(nb.stage_for(deployment.config, workdir), nb.STAGE_OUTPUTS)
    manifests += NotebookClientStage(workdir, deployment.config).config_map_manifests()
    return build_user_pod(deployment.config, manifests, tmp_path_factory.mktemp("pod"),
                          user="alice")  # fmt: skip


def test_a_traced_function_in_a_user_pod_lands_in_the_server(deployment, user_pod, tmp_path):
    experiment_id = new_experiment(deployment, "genai")
    script = textwrap.dedent(
        """
        import sys, mlflow
        mlflow.set_experiment(experiment_id=sys.argv[1])

        @mlflow.trace(span_type="RETRIEVER")
        def retrieve(question):
            return ["doc-1", "doc-2"]

        @mlflow.trace
        def answer(question):
            with mlflow.start_span("generate") as span:
                span.set_inputs({"docs": retrieve(question)})
                span.set_outputs("forty-two")
            return "forty-two"

        answer("what is the answer?")
        mlflow.flush_trace_async_logging()
        print(mlflow.get_last_active_trace_id())
        """
    )
    env = process_env(user_pod, deployment.client_env(), {"HOME": str(tmp_path)}, base=os.environ)
    result = subprocess.run(
        [str(POD_PYTHON), "-c", script, experiment_id],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trace_id = result.stdout.strip().splitlines()[-1]

    (trace,) = traces_in(deployment, experiment_id)
    assert trace["id"] == trace_id
    assert trace["spans"] == ["answer", "generate", "retrieve"]


OTLP_EXPORT = """
import os, sys
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
endpoint, experiment_id = sys.argv[1:3]
# In a user pod, the pod's JupyterHub token authenticates the export (docs/data-scientists.md).
token = os.environ["JUPYTERHUB_API_TOKEN"]
exporter = OTLPSpanExporter(endpoint=endpoint, headers={"x-mlflow-experiment-id": experiment_id,
                                                        "Authorization": f"Bearer {token}"})
provider = TracerProvider(resource=Resource.create({"service.name": "otel-app"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("otel-app")
with tracer.start_as_current_span("otel-request") as root:
    root.set_attribute("app.user", "alice")
    with tracer.start_as_current_span("otel-llm-call"):
        pass
provider.shutdown()
print("exported")
"""


def test_an_otlp_export_to_the_in_cluster_url_lands_in_the_server(deployment):
    experiment_id = new_experiment(deployment, "otlp")
    endpoint = f"{deployment.service_url}/v1/traces"  # the URL docs/data-scientists.md documents
    env = {**os.environ, **deployment.client_env()}
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", OTLP_EXPORT, endpoint, experiment_id],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and "exported" in result.stdout, result.stderr[-3000:]
    # The exporter logs (does not raise) a failed export: check no failure was logged.
    assert "Failed to export" not in result.stderr, result.stderr[-3000:]

    (trace,) = traces_in(deployment, experiment_id)
    assert trace["spans"] == ["otel-llm-call", "otel-request"]
    assert "alice" in json.dumps(trace["attributes"]["otel-request"])
