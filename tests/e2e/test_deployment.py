"""Checks through the running deployment (see conftest.py for how it runs)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest
from support.deployment import (
    MLFLOW_BIN,
    REPO,
    delivered_pythonpath,
    server_container,
    server_deployment,
)
from support.forward_auth import SESSION_COOKIE

from nebari_mlflow_plugin.render.injection import user_env

ARTIFACTS_DIR = REPO / "test-artifacts"


def request(port: int, path: str, *, host: str, method: str = "GET", cookie: str | None = None,
            body: bytes | None = None, origin: str | None = None, auth: dict | None = None,
            ) -> http.client.HTTPResponse:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Host": host, **(auth or {})}
    if origin is not None:
        headers["Origin"] = origin
    if cookie:
        headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def public(deployment, path: str, cookie: bool = False, **kwargs):
    """Through Traefik (nginx), with alice's session when `cookie`."""
    host = deployment.nginx.route.host
    session = deployment.forward_auth.cookie("alice", host) if cookie else None
    return request(deployment.nginx.port, path, host=host, cookie=session, **kwargs)


def test_rendered_probe_paths_answer(deployment):
    container = server_container(server_deployment(deployment.manifests))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        response = request(deployment.server_port, path, host="10.1.2.3:5000")
        assert response.status == 200, (probe, path, response.body[:200])


@pytest.mark.parametrize("path", ["/mlflow/", "/mlflow/api/2.0/mlflow/experiments/search"])
def test_without_a_session_ui_and_api_are_refused(deployment, path):
    response = public(deployment, path)
    assert response.status == 302
    assert urllib.parse.urlsplit(response.getheader("Location")).path == "/_oauth/login"
    assert b"mlflow" not in response.body.lower()


def test_bare_prefix_redirects_to_trailing_slash(deployment):
    response = public(deployment, "/mlflow", cookie=True)
    assert response.status == 301
    assert urllib.parse.urlsplit(response.getheader("Location")).path == "/mlflow/"


def test_other_paths_are_not_routed_to_mlflow(deployment):
    assert public(deployment, "/mlflowfoo", cookie=True).status == 404


def test_with_a_session_the_ui_and_its_static_assets_load(deployment):
    page = public(deployment, "/mlflow/", cookie=True)
    assert page.status == 200
    html = page.body.decode()
    assets = set(re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html))
    assert assets, html[:500]
    for asset in assets:
        url = urllib.parse.urljoin("/mlflow/", asset)
        assert url.startswith("/mlflow/"), url
        response = public(deployment, url, cookie=True)
        assert response.status == 200, url


def test_a_slow_browser_gets_the_whole_ui_bundle(deployment):
    """A browser on a busy machine reads slower than the server sends: the proxy spills
    the response to disk and must still deliver all of it (the UI is blank otherwise)."""
    html = public(deployment, "/mlflow/", cookie=True).body.decode()
    (bundle,) = re.findall(r'src="([^"]*/main\.[0-9a-f]+\.js)"', html)
    path = urllib.parse.urljoin("/mlflow/", bundle)
    size = len(request(deployment.server_port, path, host="mlflow.dev.svc:5000").body)
    assert size > 1_000_000, size  # larger than what the proxy holds in memory
    host = deployment.nginx.route.host
    connection = http.client.HTTPConnection("127.0.0.1", deployment.nginx.port, timeout=30)
    cookie = deployment.forward_auth.cookie("alice", host)
    connection.request("GET", path, headers={"Host": host, "Cookie": f"{SESSION_COOKIE}={cookie}"})
    time.sleep(1.5)  # not reading yet
    response = connection.getresponse()
    assert response.status == 200
    assert len(response.read()) == size == int(response.getheader("Content-Length"))
    connection.close()


def test_login_flow_sets_session_and_returns(deployment):
    first = urllib.parse.urlsplit(public(deployment, "/mlflow/").getheader("Location"))
    login = public(deployment, f"{first.path}?{first.query}")
    assert login.status == 302 and login.getheader("Location") == "/mlflow/"
    assert SESSION_COOKIE in login.getheader("Set-Cookie")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("mlflow.dev.svc:5000", True),
        ("mlflow.dev.svc.cluster.local:5000", True),
        ("nebari.example.com", True),
        ("evil.example.com", False),
        ("nebari.example.com.evil.net", False),
    ],
)
def test_host_header_check(deployment, host, allowed):
    response = request(
        deployment.server_port, "/mlflow/api/2.0/mlflow/experiments/search?max_results=1",
        host=host, auth=deployment.auth_header("alice"),
    )  # fmt: skip
    assert (response.status == 200) is allowed, (host, response.status, response.body[:200])
    if not allowed:
        assert response.status == 403


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://nebari.example.com", True),  # the UI's own origin: browsers send it on POST
        ("https://evil.example.com", False),
        ("http://nebari.example.com", False),  # Nebari serves https only
    ],
)
def test_ui_posts_from_its_public_origin_are_accepted(deployment, origin, allowed):
    """What the runs table sends: a same-origin POST through Traefik carries Origin."""
    body = json.dumps({"experiment_ids": ["0"], "max_results": 1}).encode()
    response = public(
        deployment, "/mlflow/ajax-api/2.0/mlflow/runs/search", method="POST", cookie=True,
        body=body, origin=origin,
    )  # fmt: skip
    assert (response.status == 200) is allowed, (origin, response.status, response.body[:200])
    if not allowed:
        assert response.status == 403


NOTEBOOK = """
import mlflow, mlflow.sklearn, os
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
assert os.environ["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")
mlflow.set_experiment("e2e-notebook")
mlflow.sklearn.autolog(log_models=False)
X, y = load_iris(return_X_y=True)
with mlflow.start_run(run_name="iris") as run:
    model = LogisticRegression(max_iter=300).fit(X, y)
    mlflow.log_param("dataset", "iris")
    mlflow.log_metric("train_accuracy_manual", float(model.score(X, y)))
    with open("notes.txt", "w") as f:
        f.write("trained in a notebook")
    mlflow.log_artifact("notes.txt")
    info = mlflow.sklearn.log_model(model, name="model", registered_model_name="iris-e2e")
print("RUN_ID", run.info.run_id)
"""


def test_notebook_in_a_user_pod_logs_everything(deployment, tmp_path):
    """A real kernel with exactly the env the JupyterHub injection adds runs a notebook."""
    env = {**user_env(deployment.config), **deployment.client_env()}
    assert env["MLFLOW_TRACKING_URI"] == deployment.service_url
    runner = textwrap.dedent(
        """
        import json, sys, nbformat
        from nbclient import NotebookClient
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(sys.argv[1])])
        NotebookClient(nb, timeout=300, kernel_name="python3").execute()
        print(json.dumps(nb.cells[0].outputs))
        """
    )
    import os

    process_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process_env.update(env, PATH=f"{MLFLOW_BIN}:{os.environ['PATH']}")
    # The package as delivered, besides the cluster DNS (client_env's PYTHONPATH).
    delivered = delivered_pythonpath(tmp_path / "python")
    process_env["PYTHONPATH"] = f"{delivered}:{deployment.client_env()['PYTHONPATH']}"
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", runner, NOTEBOOK],
        env=process_env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    run_id = re.search(r"RUN_ID (\w+)", text).group(1)

    api = deployment.api
    run = api(f"runs/get?run_id={run_id}")["run"]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert params["dataset"] == "iris"
    assert params["max_iter"] == "300"  # autologged
    assert any(key.startswith("training_") for key in metrics), metrics  # autologged
    assert metrics["train_accuracy_manual"] > 0.9
    versions = api("registered-models/get?name=iris-e2e")["registered_model"]["latest_versions"]
    assert versions and versions[0]["run_id"] == run_id
    listing = api(f"artifacts/list?run_id={run_id}")
    assert "notes.txt" in {f["path"] for f in listing.get("files", [])}
    # The artifact comes back through the mlflow-artifacts proxy, bytes intact.
    assert deployment.artifact(run["info"], "notes.txt") == "trained in a notebook"
    # And it sits on the artifact volume the chart mounts.
    stored = list(Path(deployment.workdir / "server").rglob("notes.txt"))
    assert stored and stored[0].read_bytes() == b"trained in a notebook"
