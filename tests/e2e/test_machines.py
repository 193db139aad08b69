"""CI outside the cluster, as the admin guide's recipe says, through Traefik with TLS.

The recipe's code blocks are read from docs/admin/auth.md and run as written: the admin's
block in a Nebari admin's pod environment, the CI block with bash from "outside"
(only `https://nebari.example.com/mlflow`, reached through nginx as Traefik with a
TLS listener; the name resolves to it and its certificate is trusted, as a real
CI's would be; nothing of the cluster's in its environment).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from support import cluster_dns
from support.browser import self_signed
from support.deployment import MLFLOW_BIN, REPO
from support.mlflow_server import free_port
from support.nginx import Nginx, Tls
from support.signin import signed_in

pytestmark = pytest.mark.slow

GUIDE = REPO / "docs" / "admin" / "auth.md"


def recipe(name: str) -> str:
    """The guide's code block marked `<!-- recipe: name -->`."""
    found = re.search(rf"<!-- recipe: {name} -->\n```\w+\n(.*?)```", GUIDE.read_text(), re.S)
    assert found, f"{GUIDE} has no recipe {name!r}"
    return found.group(1)


@pytest.fixture(scope="module")
def outside(deployment, tmp_path_factory):
    """Env of a machine outside the cluster: the public URL resolves to the TLS proxy."""
    workdir = tmp_path_factory.mktemp("ci-outside")
    route = deployment.nginx.route
    tls = self_signed(workdir / "tls", route.host)
    tls = Tls(tls.cert, tls.key, port=free_port())
    with Nginx(workdir / "nginx", route, deployment.server_port, deployment.nginx.auth_port,
               tls=tls, hub_port=deployment.hub.port, domain=deployment.config.domain):  # fmt: skip
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MLFLOW_", "JUPYTERHUB_", "PYTHONPATH"))}  # fmt: skip
        env.update(cluster_dns.client_env(workdir, {f"{route.host}:443": tls.port}))
        # A real CI trusts the domain's certificate; this one is the test's own.
        env.update(MLFLOW_TRACKING_SERVER_CERT_PATH=str(tls.cert),
                   PATH=f"{MLFLOW_BIN}:{os.environ['PATH']}")  # fmt: skip
        yield env, workdir


def run_ci(env: dict, workdir, **secrets: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", recipe("ci")], env={**env, **secrets}, cwd=workdir,
                          capture_output=True, text=True, timeout=180)  # fmt: skip


def ci_runs(deployment) -> list[dict]:
    (experiment,) = [deployment.api("experiments/get-by-name?experiment_name=ci")["experiment"]]
    body = {"experiment_ids": [experiment["experiment_id"]], "max_results": 100}
    return deployment.api("runs/search", body).get("runs", [])


def test_the_guides_recipe_for_ci_outside_the_cluster(deployment, outside, tmp_path):
    env, workdir = outside
    # A Nebari admin, in a notebook: the pod's env and token.
    admin = {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONPATH"))},
             **deployment.client_env(), **deployment.token_env("ada"),
             "MLFLOW_TRACKING_URI": deployment.service_url}  # fmt: skip
    made = subprocess.run([str(MLFLOW_BIN / "python"), "-c", recipe("machine-user")], env=admin,
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    password = made.stdout.strip().splitlines()[-1]

    # CI with the MLflow user's password.
    ci = run_ci(env, workdir, MLFLOW_TRACKING_USERNAME="svc-ci", MLFLOW_TRACKING_PASSWORD=password)
    assert ci.returncode == 0, ci.stderr[-3000:]
    assert [run["info"]["user_id"] for run in ci_runs(deployment)] == ["svc-ci"]

    # CI with a JupyterHub token made for MLflow (alice, who may write to "ci").
    signed_in(deployment, "alice")  # her roles, from her Nebari login, are known to the hub
    experiment_id = ci_runs(deployment)[0]["info"]["experiment_id"]
    grant = {"username": "alice", "resource_type": "experiment", "resource_id": experiment_id,
             "permission": "EDIT"}  # fmt: skip
    deployment._call("api/3.0/mlflow/users/permissions/grant", json.dumps(grant).encode())
    made = deployment.hub.api(
        "POST",
        "/users/alice/tokens",
        {"scopes": ["access:services!service=MLflow"], "expires_in": 3600, "note": "ci"},
    )
    ci = run_ci(env, workdir, MLFLOW_TRACKING_TOKEN=made["token"])
    assert ci.returncode == 0, ci.stderr[-3000:]
    assert sorted(run["info"]["user_id"] for run in ci_runs(deployment)) == ["alice", "svc-ci"]
    # (Without a credential the request takes the browsers' route: test_login.py.)
