"""A user's journey through the MLflow UI in a real browser (support/browser.py).

A client in the cluster logs runs; then headless Chromium, through nginx as
Traefik with the forward-auth stand-in at https://<domain>, logs in to Nebari
(Keycloak's stand-in) and is signed in to MLflow by the real JupyterHub's OAuth
(an MLflow session cookie; forward-auth's cookie is no credential), browses the
runs, opens a run (metric chart, image artifact), creates and renames an
experiment, registers a model version and deletes a run. Any response with
status >= 400 that the page receives fails the journey. The REST API then
confirms each change really happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import urllib.error
import urllib.parse
from pathlib import Path

import pytest
from support.browser import missing_browser_tools, run_journey, self_signed
from support.deployment import MLFLOW_BIN
from support.forward_auth import DEFAULT_USER
from support.nginx import Nginx
from test_deployment import ARTIFACTS_DIR

from nebari_mlflow_plugin.server import login

# Responses >= 400 the UI asks for and handles by design, with why they are fine
# (method, path under the route prefix, status).
TOLERATED = [
    # The experiment forms check the typed name is free: "not found" is "free".
    ("GET", "ajax-api/2.0/mlflow/experiments/get-by-name", 404),
    # The journey tries to rename another user's experiment: refused, as it must be.
    ("POST", "ajax-api/2.0/mlflow/experiments/update", 403),
]

SEED = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import mlflow, mlflow.sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    experiment_id = mlflow.set_experiment(sys.argv[1]).experiment_id
    with mlflow.start_run(run_name="trained") as trained:
        mlflow.log_params({"C": "0.5", "max_iter": "200"})
        for step in range(12):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        x = np.linspace(0, 1, 64)
        image = (np.outer(x, 1 - x) * 4 * 255).astype(np.uint8)
        mlflow.log_image(np.stack([image, image[::-1], image.T], axis=-1), "plots/heat.png")
        X, y = load_iris(return_X_y=True)
        model = LogisticRegression(max_iter=200).fit(X, y)
        logged = mlflow.sklearn.log_model(model, name="iris-model", input_example=X[:2])
    with mlflow.start_run(run_name="discarded") as discarded:
        mlflow.log_metric("loss", 3.0)
    print(json.dumps({"experimentId": experiment_id, "trainedRunId": trained.info.run_id,
                      "discardedRunId": discarded.info.run_id, "modelId": logged.model_id}))
    """
)


@pytest.fixture(scope="module")
def browser_route(deployment, tmp_path_factory):
    """The deployment's route, also served with TLS on 127.0.0.1:443."""
    reason = missing_browser_tools()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("browser-nginx")
    route = deployment.nginx.route
    tls = self_signed(workdir / "tls", route.host)
    with Nginx(workdir, route, deployment.server_port, deployment.nginx.auth_port, tls=tls,
               hub_port=deployment.hub.port, domain=deployment.config.domain):  # fmt: skip
        yield f"https://{route.host}"


def seed(deployment, experiment: str) -> dict:
    """Log runs as alice's pod would: the in-cluster tracking URI and her token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(deployment.client_env(), **deployment.token_env("alice"),
               MLFLOW_TRACKING_URI=deployment.service_url)  # fmt: skip
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", SEED, experiment],
        env=env, cwd=deployment.workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def journey_plan(deployment, origin: str, seeded: dict, suffix: str) -> dict:
    """What the user does, with the names they type."""
    prefix = deployment.config.mlflow.route_path
    return {
        "origin": origin,
        "prefix": prefix,
        "sessionCookie": login.SESSION_COOKIE,
        "user": DEFAULT_USER,  # who the login stand-in signs in
        "screenshots": str(ARTIFACTS_DIR),
        **seeded,
        "trainedRun": "trained",
        "discardedRun": "discarded",
        "metric": "loss",
        "metricSteps": 12,
        "imageArtifact": "plots/heat.png",
        "loggedModel": "iris-model",
        "registeredModel": f"iris-from-ui-{suffix}",
        "newExperiment": f"made-in-ui-{suffix}",
        "renamedExperiment": f"renamed-in-ui-{suffix}",
        "tolerated": [(m, f"{prefix}/{p}", s) for m, p, s in TOLERATED],
    }


def server_side_account(deployment, origin: str) -> str:
    """The TLS proxy's error log and the server's worker restarts: where a request the
    browser saw cut off (net::ERR_CONTENT_LENGTH_MISMATCH) was cut."""
    lines = [f"proxy ({origin}) errors:"]
    for log in sorted(Path(deployment.workdir).parent.glob("browser-nginx*/error.log")):
        lines += log.read_text().splitlines()[-20:]
    server = Path(deployment.log).read_text(errors="replace").splitlines()
    lines.append("server worker restarts:")
    lines += [line for line in server if "died" in line or "Child process" in line][-10:]
    return "\n".join(lines)


@pytest.mark.timeout(600)  # alone, it also starts (and stops) the deployment
def test_browser_journey_through_the_ui(deployment, browser_route):
    """Every UI action a user takes succeeds, and really changes the server's state."""
    seeded = seed(deployment, "browser-journey")
    # Another user's experiment with a run (REST, as bob).
    bobs_id = deployment.api("experiments/create", {"name": "browser-journey-bob"}, user="bob")[
        "experiment_id"
    ]
    deployment.api("runs/create", {"experiment_id": bobs_id, "run_name": "bobs-run"}, user="bob")
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    for stale in [
        *ARTIFACTS_DIR.glob("journey-failed-*.png"),
        *ARTIFACTS_DIR.glob("mlflow-run*.png"),
    ]:
        stale.unlink()
    plan = journey_plan(deployment, browser_route, seeded, "journey")
    plan.update(othersExperimentId=bobs_id, othersRun="bobs-run")

    result = run_journey(plan)

    failure = result.failure()
    if failure:
        pytest.fail(f"{failure}\n{server_side_account(deployment, browser_route)}", pytrace=False)
    assert result.steps() == [
        "login", "signed-in-as", "runs-table", "run-page-metric-chart", "run-page-image-artifact",
        "register-model-version", "create-experiment", "rename-experiment",
        "others-experiment-is-read-only", "delete-run",
    ]  # fmt: skip
    for name in ("mlflow-runs-table.png", "mlflow-run-page.png", "mlflow-run-artifact.png"):
        assert (ARTIFACTS_DIR / name).stat().st_size > 10_000, name  # a rendered page

    api = deployment.api
    renamed = api(f"experiments/get-by-name?experiment_name={plan['renamedExperiment']}")
    assert renamed["experiment"]["lifecycle_stage"] == "active"
    created = api(f"experiments/get?experiment_id={renamed['experiment']['experiment_id']}")
    assert created["experiment"]["name"] == plan["renamedExperiment"]
    with pytest.raises(urllib.error.HTTPError) as old_name:
        api(f"experiments/get-by-name?experiment_name={plan['newExperiment']}")
    assert old_name.value.code == 404

    versions = api(
        "model-versions/search?filter=" + urllib.parse.quote(f"name='{plan['registeredModel']}'")
    )["model_versions"]
    assert [v["version"] for v in versions] == ["1"]
    assert versions[0]["run_id"] == seeded["trainedRunId"]
    assert versions[0]["source"] == f"models:/{seeded['modelId']}"

    discarded = api(f"runs/get?run_id={seeded['discardedRunId']}")["run"]["info"]
    assert discarded["lifecycle_stage"] == "deleted"
    bobs_experiment = api(f"experiments/get?experiment_id={bobs_id}")
    assert bobs_experiment["experiment"]["name"] == "browser-journey-bob"  # not renamed
    trained = api(f"runs/get?run_id={seeded['trainedRunId']}")["run"]["info"]
    assert trained["lifecycle_stage"] == "active"
