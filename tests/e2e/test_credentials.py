"""Only credentials meant for MLflow act for their user, as the user and the attacker stand.

The deployment runs as rendered (auth on) against a real JupyterHub 5.3 configured from
the plugin's `jupyterhub.overrides` (`Spawner.server_token_scopes` included) with
Nebari's role mechanism: the Keycloak client role the stage's Terraform declares is
applied to its groups as Nebari's authenticator applies it (support/jupyterhub.py).
Users' servers are real processes the hub spawns, OAuth clients of the hub as
JupyterLab is. 4 workers: what one worker verified, every worker knows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from support import nebari as nb
from support.deployment import (
    MLFLOW_BIN,
    delivered_pythonpath,
    launch,
    running_deployment,
    wait_http,
)
from support.mlflow_server import free_port
from support.replica import second_replica

from nebari_mlflow_plugin.notebook import keeper, tokens
from nebari_mlflow_plugin.render.injection import user_env

pytestmark = pytest.mark.slow

CACHE_SECONDS = 10
SEARCH = "experiments/search?max_results=1"


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    from support.deployment import missing_tools

    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(
        nb.config_dict("local", {"workers": 4, "auth": {"cache_seconds": CACHE_SECONDS}})
    )
    with running_deployment(tmp_path_factory.mktemp("credentials"), config) as running:
        yield running


@pytest.fixture(scope="module")
def replica(dep):
    """Port of a second replica (same database, its own 4 workers), as HA runs it: it
    has verified nobody itself."""
    port = free_port()
    process = launch(second_replica(dep, port), dep.workdir, dep.workdir / "replica-1.log")
    try:
        wait_http(dep.probe_url().replace(str(dep.server_port), str(port)), timeout=180,
                  process=process, log=dep.workdir / "replica-1.log")  # fmt: skip
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def call(dep, path: str, token: str | None = None, headers: dict | None = None,
         port: int | None = None):  # fmt: skip
    """GET `<prefix>/api/2.0/mlflow/<path>` (or `path` from /) at the in-cluster URL
    (the deployment's server, or the replica on `port`)."""
    prefix = dep.config.mlflow.route_path
    url = path if path.startswith("/") else f"{prefix}/api/2.0/mlflow/{path}"
    bearer = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port or dep.server_port}{url}",
        headers={"Host": f"mlflow.{dep.namespace}.svc:5000", **bearer, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def whoami(dep, token: str) -> str:
    prefix = dep.config.mlflow.route_path
    status, body = call(dep, f"{prefix}/ajax-api/2.0/mlflow/users/current", token)
    assert status == 200, body
    return json.loads(body)["user"]["username"]


def test_a_token_that_only_names_its_user_is_refused(dep):
    token, _ = dep.hub.token("bob", scopes=["read:users:name!user=bob"])
    assert dep.hub.api("GET", "/user", token=token)["name"] == "bob"  # the hub knows it
    status, body = call(dep, SEARCH, token)
    assert status == 401, body
    assert b"access:services!service=MLflow" in body  # names what is missing


def test_a_servers_own_token_acts_for_its_user(dep):
    token = dep.hub.start_server("bob")
    try:
        # As rendered, the hub gives the server MLflow's scope (bob's group holds it).
        assert (
            "access:services!service=MLflow" in dep.hub.api("GET", "/user", token=token)["scopes"]
        )
        assert whoami(dep, token) == "bob"
    finally:
        dep.hub.stop_server("bob")


def test_the_token_a_visitor_hands_another_users_server_is_refused(dep):
    """bob opens alice's server (shared with him): JupyterHub's OAuth flow gives alice's
    server a token for bob. Replayed to MLflow, it must not act as bob."""
    dep.hub.start_server("alice")
    try:
        hub_host = urllib.parse.urlsplit(dep.hub.public_url).netloc
        held = dep.hub.visitor_token("alice", "bob", dep.forward_auth.cookie("bob", hub_host))
        assert held["name"] == "bob"
        status, body = call(dep, SEARCH, held["token"])
    finally:
        dep.hub.stop_server("alice")  # (stopping it also revokes the tokens it holds)
    assert status == 401, body
    assert b"access:services!service=MLflow" in body


def test_a_stopped_servers_token_is_refused_with_what_to_do(dep):
    token = dep.hub.start_server("dana")
    assert whoami(dep, token) == "dana"
    dep.hub.stop_server("dana")  # as Nebari's culler does after 30 idle minutes
    time.sleep(CACHE_SECONDS + 0.5)
    status, body = call(dep, SEARCH, token)
    assert status == 401, body
    assert b"server of 'dana'" in body and b"has stopped" in body, body
    # What is true now: the server keeps a workflow token once MLflow is used there.
    assert b"use MLflow there once" in body and b"--hours" in body, body


CLIENT = """
import mlflow
print(mlflow.MlflowClient().search_experiments(max_results=1)[0].name)
"""


def pod_process_env(dep, tmp_path, **extra: str) -> dict[str, str]:
    """A process of a user pod (or an Argo step with its env): the injected env, the
    delivered package, the cluster's DNS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "JUPYTERHUB_"))}
    env.update(user_env(dep.config))
    env.update(dep.client_env(), PATH=f"{MLFLOW_BIN}:{os.environ['PATH']}")
    env["PYTHONPATH"] = f"{delivered_pythonpath(tmp_path / 'python')}:{env['PYTHONPATH']}"
    env.update(extra)
    return env


def run(env: dict, argv: list[str], tmp_path, timeout: float = 120):
    return subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


# What Argo sets in a workflow step (the user's pod env copied by jupyterflow-override).
ARGO_STEP = {
    "ARGO_WORKFLOW_NAME": "train-x7k2p",
    "ARGO_WORKFLOW_UID": "3f1c9a52-5d0e-4c1b-9a7e-2b6f0c8d4e11",
    "ARGO_NODE_ID": "train-x7k2p-1234",
    "ARGO_POD_NAME": "train-x7k2p-fit-1234",
}


def lab_env(dep, tmp_path, user: str, server_token: str, **extra: str) -> dict[str, str]:
    """A process of `user`'s JupyterLab server: the pod's env as rendered, the hub's
    variables KubeSpawner sets (the server's own token), a home of its own."""
    env = pod_process_env(dep, tmp_path, JUPYTERHUB_API_URL=dep.hub.api_url,
                          JUPYTERHUB_USER=user, JUPYTERHUB_API_TOKEN=server_token,
                          HOME=str(tmp_path / "home"), **extra)  # fmt: skip
    env.pop(tokens.FILE_ENV, None)  # the default place, under $HOME
    return env


def kept_tokens(dep, user: str) -> list[dict]:
    """The tokens JupyterLab made for `user`, as the hub lists them."""
    listed = dep.hub.api("GET", f"/users/{user}/tokens")["api_tokens"]
    return [t for t in listed if t.get("note") == keeper.NOTE]


def test_jupyterlab_keeps_a_workflow_token_that_outlives_the_server(dep, tmp_path):
    """Nothing to set up: alice submits a workflow without having used MLflow in
    JupyterLab, and its first step, run while her server is up, makes the token; later
    steps make none while it is usable. Using MLflow in JupyterLab keeps one too. A step
    (the same env and home, Argo's variables) keeps logging after her server stopped,
    until the token expires (its lifetime shortened through the pod's variable); then
    the 401 says what to do and the step's warning why it could make no other."""
    server_token = dep.hub.start_server("alice")
    lifetime = 25
    lab = lab_env(dep, tmp_path, "alice", server_token,
                  NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS=str(lifetime))  # fmt: skip
    step = {**lab, **ARGO_STEP}
    token_file = tmp_path / "home" / ".config" / "nebari-mlflow" / "workflow-token.json"
    python = str(MLFLOW_BIN / "python")
    before = len(kept_tokens(dep, "alice"))

    first = run(step, [python, "-c", CLIENT], tmp_path)  # the server's token
    assert first.returncode == 0, first.stderr[-2000:]
    assert token_file.exists(), first.stderr[-2000:]
    made_by_step = json.loads(token_file.read_text())
    assert made_by_step["user"] == "alice" and len(kept_tokens(dep, "alice")) == before + 1
    assert whoami(dep, made_by_step["token"]) == "alice"
    assert run(step, [python, "-c", CLIENT], tmp_path).returncode == 0
    assert json.loads(token_file.read_text()) == made_by_step  # usable: left alone
    assert len(kept_tokens(dep, "alice")) == before + 1

    token_file.unlink()  # JupyterLab keeps one as well
    made_at = time.monotonic()
    used = run(lab, [python, "-c", CLIENT], tmp_path)
    assert used.returncode == 0, used.stderr[-2000:]
    assert token_file.exists(), used.stderr[-2000:]
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    kept = json.loads(token_file.read_text())
    assert kept["user"] == "alice" and len(kept_tokens(dep, "alice")) == before + 2
    scopes = dep.hub.api("GET", "/user", token=kept["token"])["scopes"]
    assert "access:services!service=MLflow" in scopes and "tokens!user=alice" not in scopes
    dep.hub.stop_server("alice")  # as Nebari's culler does after 30 idle minutes

    logged = run(step, [python, "-c", CLIENT], tmp_path)
    assert logged.returncode == 0, logged.stderr[-2000:]
    # Past its expiry (and the server's cache), the step has nothing left: the 401 says
    # what to do.
    time.sleep(max(0.0, made_at + lifetime + CACHE_SECONDS + 1 - time.monotonic()))
    assert call(dep, SEARCH, kept["token"])[0] == 401
    late = run(step, [python, "-c", CLIENT], tmp_path)
    assert late.returncode != 0
    assert "that server has stopped" in late.stderr and "use MLflow there once" in late.stderr
    assert "JupyterHub no longer knows this process's token" in late.stderr, late.stderr[-3000:]
    assert json.loads(token_file.read_text()) == kept


def test_the_token_commands_say_where_the_token_went_and_it_works(dep, tmp_path):
    """`... notebook.tokens --hours 1` and the workflow helper's `token --hours 2`, run in
    JupyterLab: each says where the token went and for how long, and MLflow takes it."""
    server_token = dep.hub.start_server("dana")
    try:
        lab = lab_env(dep, tmp_path, "dana", server_token)
        token_file = tmp_path / "home" / ".config" / "nebari-mlflow" / "workflow-token.json"
        python = str(MLFLOW_BIN / "python")
        seen = set()
        for module, hours in (("tokens", 1), ("workflow token", 2)):
            argv = [python, "-m", f"nebari_mlflow_plugin.notebook.{module}", "--hours", str(hours)]
            started = time.time()
            made = run(lab, " ".join(argv).split(), tmp_path)
            assert made.returncode == 0, made.stderr[-2000:]
            assert f"kept in {token_file} (valid {hours} h)" in made.stderr, made.stderr
            kept = json.loads(token_file.read_text())
            assert kept["token"] not in seen and kept["user"] == "dana"
            assert started + hours * 3600 <= kept["expires_at"] <= time.time() + hours * 3600
            assert whoami(dep, kept["token"]) == "dana"
            seen.add(kept["token"])
    finally:
        dep.hub.stop_server("dana")


def test_a_user_the_hub_does_not_know_gets_nothing(dep):
    """A Keycloak user outside JupyterHub's allowed groups has a Nebari session but no
    JupyterHub user: no access at all (before: READ on everything). Her Nebari session
    is no MLflow credential; MLflow's own sessions come from the hub alone."""
    host = dep.nginx.route.host
    cookie = dep.forward_auth.cookie("mallory", host)
    status, body = call(dep, SEARCH, headers={"Cookie": f"_forward_auth={cookie}", "Host": host})
    assert status == 401, body
    assert b"mallory" not in body


def test_hub_paused_verified_users_keep_working_others_fail_fast(dep, replica, tmp_path):
    """JupyterHub frozen (SIGSTOP): a user verified just before keeps working on every
    worker of every replica (the other replica never saw them); a user not yet verified
    gets the server's reason within seconds, not after MLflow's five-minute retry loop."""
    alice, _ = dep.hub.token("alice")
    bob, _ = dep.hub.token("bob")
    assert call(dep, SEARCH, alice)[0] == 200  # verified by one worker of one replica
    verified = time.monotonic()
    pod = pod_process_env(dep, tmp_path, MLFLOW_TRACKING_TOKEN=bob)
    os.killpg(dep.hub.proc.pid, signal.SIGSTOP)
    try:
        statuses = [call(dep, SEARCH, alice, port=port)[0]
                    for _ in range(10) for port in (replica, dep.server_port)]  # fmt: skip
        assert time.monotonic() - verified < CACHE_SECONDS
        started = time.monotonic()
        result = run(pod, [str(MLFLOW_BIN / "python"), "-c", CLIENT], tmp_path, timeout=90)
        took = time.monotonic() - started
    finally:
        os.killpg(dep.hub.proc.pid, signal.SIGCONT)
    assert statuses == [200] * 20, statuses
    assert result.returncode != 0
    assert "cannot verify who you are" in result.stderr, result.stderr[-2000:]
    assert took < 20, took  # the server's 5 s wait for the hub, once, and Python's start


def test_the_shared_identities_reveal_no_token_and_a_forged_row_is_ignored(dep, replica):
    """What every worker shares sits in MLflow's database: someone who can read it learns
    no token; someone who can write it cannot make a row say another user."""
    bob, _ = dep.hub.token("bob")
    assert call(dep, SEARCH, bob)[0] == 200  # one worker verified bob and shared it
    rows = dep.postgres.query("SELECT credential || ' ' || name FROM nebari_mlflow_identities")
    assert bob not in rows and "bob" in rows
    dep.postgres.query(
        "UPDATE nebari_mlflow_identities SET name = 'ada', admin = true WHERE name = 'bob'"
    )
    os.killpg(dep.hub.proc.pid, signal.SIGSTOP)  # the other replica can only read the row
    try:
        prefix = dep.config.mlflow.route_path
        status, body = call(dep, f"{prefix}/ajax-api/2.0/mlflow/users/current", bob, port=replica)
    finally:
        os.killpg(dep.hub.proc.pid, signal.SIGCONT)
    assert status == 424, body  # not ada: the forged row is ignored, the hub is asked
