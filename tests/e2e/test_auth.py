"""Every request is a known Nebari user, and users cannot touch each other's work.

The deployment runs as rendered (auth on, the default) against a real JupyterHub
(tokens, admin flag, groups) and the forward-auth stand-in (browser sessions):
see support/deployment.py. Users: alice and bob (group /developer), dana
(/analyst), ada (a Nebari admin).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import uuid

import pytest
from support import nebari as nb
from support.deployment import MLFLOW_BIN, running_deployment
from support.podrun import process_env
from support.rest import call
from support.signin import signed_in

from nebari_mlflow_plugin.server import login

pytestmark = pytest.mark.slow


def as_user(dep, user: str) -> dict[str, str]:
    return dep.auth_header(user)


def fresh(dep, user: str) -> dict[str, str]:
    """A new token of `user`: verified (and their grants synced) on first use."""
    return {"Authorization": f"Bearer {dep.hub.token(user)[0]}"}


def create_experiment(dep, user: str, name: str | None = None) -> str:
    status, body = call(dep, "experiments/create", {"name": name or f"exp-{uuid.uuid4().hex}"},
                        as_user(dep, user))  # fmt: skip
    assert status == 200, body
    return json.loads(body)["experiment_id"]


def test_without_credentials_every_path_but_the_probes_answers_401(deployment):
    prefix = deployment.config.mlflow.route_path
    for path in [
        "experiments/search?max_results=1",
        f"{prefix}/ajax-api/2.0/mlflow/experiments/search?max_results=1",
        f"{prefix}/",  # the UI
        f"{prefix}/graphql",
        f"{prefix}/api/2.0/mlflow-artifacts/artifacts/0",  # the artifact proxy
        f"{prefix}/v1/traces",  # OTLP ingest
        "/v1/traces",
        f"{prefix}/gateway/x",
    ]:
        status, body = call(deployment, path)
        assert status == 401, (path, status, body[:200])
        assert b"JupyterHub token" in body, path  # says how to authenticate
    status, _ = call(deployment, "runs/create", {"experiment_id": "0"})
    assert status == 401
    # The probe and the version stay open (kubelet, `nebari mlflow status`).
    assert call(deployment, f"{prefix}/health")[0] == 200
    assert call(deployment, f"{prefix}/version")[0] == 200


def test_a_claimed_user_from_a_pod_is_refused(deployment):
    """Direct Service traffic bypasses Traefik: a header or a made-up cookie is nothing."""
    forged = {"X-Forwarded-User": "alice", "X-Forwarded-Email": "alice@example.com"}
    assert call(deployment, "experiments/search?max_results=1", headers=forged)[0] == 401
    cookie = {"Cookie": "_forward_auth=bm90LWEtbWFj|99999999999|alice", **forged}
    assert call(deployment, "experiments/search?max_results=1", headers=cookie)[0] == 401
    # A real session cookie is accepted only for the domain it was made for.
    other = deployment.forward_auth.cookie("alice", "evil.example.com")
    headers = {"Cookie": f"_forward_auth={other}", "Host": deployment.nginx.route.host}
    assert call(deployment, "experiments/search?max_results=1", headers=headers)[0] == 401


def test_a_browser_session_is_its_user_and_forward_auth_alone_is_nobody(deployment):
    """The session MLflow set after the hub's OAuth names its user; Nebari's forward-auth
    cookie, which every user's server receives, names nobody (test_login.py: the
    sign-in itself)."""
    host = deployment.nginx.route.host
    current = f"{deployment.config.mlflow.route_path}/ajax-api/2.0/mlflow/users/current"
    jar = signed_in(deployment, "bob").cookies[host]
    session = f"{login.SESSION_COOKIE}={jar[login.SESSION_COOKIE].value}"
    status, body = call(deployment, current, headers={"Cookie": session, "Host": host})
    assert status == 200, body
    assert json.loads(body)["user"] == {**json.loads(body)["user"], "username": "bob",
                                        "is_admin": False}  # fmt: skip
    keycloak = f"_forward_auth={deployment.forward_auth.cookie('bob', host)}"
    assert call(deployment, current, headers={"Cookie": keycloak, "Host": host})[0] == 401


def test_creator_manages_others_read_admins_manage(deployment):
    experiment_id = create_experiment(deployment, "alice")
    bob = as_user(deployment, "bob")
    # bob reads it (default_permission READ) ...
    status, body = call(deployment, f"experiments/get?experiment_id={experiment_id}", headers=bob)
    assert status == 200, body
    # ... and changes nothing in it.
    refused = [
        ("experiments/update", {"experiment_id": experiment_id, "new_name": "bobs-now"}),
        ("experiments/delete", {"experiment_id": experiment_id}),
        (
            "experiments/set-experiment-tag",
            {"experiment_id": experiment_id, "key": "k", "value": "v"},
        ),
        ("runs/create", {"experiment_id": experiment_id}),
    ]
    for path, body in refused:
        status, answer = call(deployment, path, body, bob)
        assert status == 403, (path, status, answer[:200])
    # alice logs into it; bob cannot touch her run.
    status, body = call(deployment, "runs/create", {"experiment_id": experiment_id},
                        as_user(deployment, "alice"))  # fmt: skip
    run_id = json.loads(body)["run"]["info"]["run_id"]
    status, _ = call(deployment, "runs/log-metric", {"run_id": run_id, "key": "m", "value": 1,
                                                     "timestamp": 0}, bob)  # fmt: skip
    assert status == 403
    # A Nebari admin (JupyterHub admin) manages everything.
    status, body = call(deployment, "experiments/update",
                        {"experiment_id": experiment_id, "new_name": f"renamed-{experiment_id}"},
                        as_user(deployment, "ada"))  # fmt: skip
    assert status == 200, body


def test_users_experiment_is_theirs_alone(deployment):
    alice, bob = as_user(deployment, "alice"), as_user(deployment, "bob")
    name = f"users/bob-{uuid.uuid4().hex[:8]}"  # bob-<x> is not bob: check the exact user
    status, _ = call(deployment, "experiments/create", {"name": "users/bob"}, alice)
    assert status == 403
    status, _ = call(deployment, "experiments/create", {"name": name}, bob)
    assert status == 403
    experiment_id = create_experiment(deployment, "bob", "users/bob")
    assert call(deployment, "runs/create", {"experiment_id": experiment_id}, bob)[0] == 200
    assert call(deployment, "runs/create", {"experiment_id": experiment_id}, alice)[0] == 403
    mine = create_experiment(deployment, "alice", f"mine-{uuid.uuid4().hex}")
    status, _ = call(deployment, "experiments/update",
                     {"experiment_id": mine, "new_name": "users/bob/taken"}, alice)  # fmt: skip
    assert status == 403
    # An experiment an admin made for dana (or one from before auth) is dana's to manage.
    dana_id = create_experiment(deployment, "ada", "users/dana")
    status, body = call(
        deployment, "runs/create", {"experiment_id": dana_id}, fresh(deployment, "dana")
    )
    assert status == 200, body


def test_sharing_with_a_group_grants_its_members(deployment):
    experiment_id = create_experiment(deployment, "alice")
    alice = as_user(deployment, "alice")
    status, _ = call(deployment, "experiments/set-experiment-tag",
                     {"experiment_id": experiment_id, "key": "nebari.share.developer",
                      "value": "EDIT"}, alice)  # fmt: skip
    assert status == 200
    model = f"shared-{uuid.uuid4().hex[:8]}"
    assert call(deployment, "registered-models/create", {"name": model}, alice)[0] == 200
    status, _ = call(
        deployment,
        "registered-models/set-tag",
        {"name": model, "key": "nebari.share./developer", "value": "EDIT"},
        alice,
    )
    assert status == 200
    # Members get the grant when their identity is next verified (within the cache TTL;
    # a new token is verified now).
    bob, dana = fresh(deployment, "bob"), fresh(deployment, "dana")
    assert call(deployment, "runs/create", {"experiment_id": experiment_id}, bob)[0] == 200
    assert call(deployment, "runs/create", {"experiment_id": experiment_id}, dana)[0] == 403
    update = {"name": model, "description": "edited by the group"}
    assert call(deployment, "registered-models/update", update, bob, "PATCH")[0] == 200
    assert call(deployment, "registered-models/update", update, dana, "PATCH")[0] == 403
    # EDIT, not MANAGE: bob cannot delete it.
    status, _ = call(deployment, "experiments/delete", {"experiment_id": experiment_id}, bob)
    assert status == 403


def test_mlflow_user_is_the_authenticated_user(deployment):
    bob = as_user(deployment, "bob")
    experiment_id = create_experiment(deployment, "bob")
    status, body = call(deployment, "runs/create", {
        "experiment_id": experiment_id, "user_id": "alice",
        "tags": [{"key": "mlflow.user", "value": "alice"}, {"key": "other", "value": "x"}],
    }, bob)  # fmt: skip
    assert status == 200, body
    run = json.loads(body)["run"]
    run_id = run["info"]["run_id"]
    assert run["info"]["user_id"] == "bob"
    call(deployment, "runs/set-tag", {"run_id": run_id, "key": "mlflow.user", "value": "ada"}, bob)
    call(deployment, "runs/log-batch",
         {"run_id": run_id, "tags": [{"key": "mlflow.user", "value": "dana"}]}, bob)  # fmt: skip
    tags = {
        t["key"]: t["value"]
        for t in deployment.api(f"runs/get?run_id={run_id}")["run"]["data"]["tags"]
    }
    assert tags["mlflow.user"] == "bob" and tags["other"] == "x"


MACHINE_USER = """
import json, sys
import mlflow
from mlflow.server import get_app_client
name, password = sys.argv[1:3]
# As a Nebari admin in a notebook: the pod's token authenticates (zero setup).
auth = get_app_client("basic-auth", tracking_uri=mlflow.get_tracking_uri())
auth.create_user(username=name, password=password)
print(json.dumps({"created": name}))
"""

MACHINE_RUN = """
import mlflow
mlflow.set_experiment("ci-experiment")
with mlflow.start_run() as run:
    mlflow.log_metric("m", 1.0)
print(run.info.run_id)
"""


def test_machines_use_an_mlflow_user_an_admin_created(deployment, tmp_path):
    """CI: MLFLOW_TRACKING_USERNAME/PASSWORD of an MLflow user made by a Nebari admin."""
    name, password = f"ci-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PYTHONPATH"))}
    env.update(deployment.client_env(), MLFLOW_TRACKING_URI=deployment.service_url,
               PATH=f"{MLFLOW_BIN}:{os.environ['PATH']}")  # fmt: skip
    admin = {**env, **deployment.token_env("ada")}
    result = subprocess.run([str(MLFLOW_BIN / "python"), "-c", MACHINE_USER, name, password],
                            env=admin, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    ci = {**env, "MLFLOW_TRACKING_USERNAME": name, "MLFLOW_TRACKING_PASSWORD": password}
    ci.pop("JUPYTERHUB_API_TOKEN")
    result = subprocess.run([str(MLFLOW_BIN / "python"), "-c", MACHINE_RUN], env=ci,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = deployment.api(f"runs/get?run_id={result.stdout.split()[-1]}")["run"]
    assert run["info"]["user_id"] == name
    # A wrong password is refused; people cannot make users (nor sign up).
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{name}:wrong-pass".encode()).decode()}
    assert call(deployment, "experiments/search?max_results=1", headers=wrong)[0] == 401
    made = {"username": f"x-{uuid.uuid4().hex[:6]}", "password": uuid.uuid4().hex}
    assert call(deployment, "users/create", made, as_user(deployment, "alice"))[0] == 403
    prefix = deployment.config.mlflow.route_path
    assert call(deployment, f"{prefix}/signup", headers=as_user(deployment, "alice"))[0] == 403


def test_the_hub_service_token_reads_users_and_nothing_more(deployment):
    """Least privilege: the role the plugin gives the MLflow service in JupyterHub."""
    container_env = deployment.server.env
    token = container_env["NEBARI_MLFLOW_HUB_TOKEN"]
    alice = deployment.hub.api("GET", "/users/alice", token=token)
    assert alice["groups"] == ["/developer"] and alice["admin"] is False
    assert deployment.hub.api("GET", "/users/ada", token=token)["admin"] is True
    for method, path, body in [("POST", "/users/alice/tokens", {}), ("GET", "/users", None),
                               ("DELETE", "/users/bob", None)]:  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            deployment.hub.api(method, path, body, token=token)
        assert refused.value.code in (403, 404), (method, path)


# Failure modes need a short cache; one worker keeps the remembered lookups in one place.
CACHE_SECONDS = 5


@pytest.fixture(scope="module")
def short_cache(tmp_path_factory):
    config = nb.validate(
        nb.config_dict("local", {"workers": 1, "auth": {"cache_seconds": CACHE_SECONDS}})
    )
    with running_deployment(tmp_path_factory.mktemp("auth-cache"), config) as dep:
        yield dep


def test_revoked_token_stops_working_within_the_cache_time(short_cache):
    token, token_id = short_cache.hub.token("alice", note="to revoke")
    headers = {"Authorization": f"Bearer {token}"}
    assert call(short_cache, "experiments/search?max_results=1", headers=headers)[0] == 200
    short_cache.hub.revoke("alice", token_id)
    time.sleep(CACHE_SECONDS + 0.5)
    status, body = call(short_cache, "experiments/search?max_results=1", headers=headers)
    assert status == 401, body


def test_hub_down_keeps_verified_callers_for_the_cache_time_then_refuses(short_cache):
    """Never "allow": past cache_seconds, 424 with the reason (a status MLflow's client
    does not retry for five minutes; test_credentials.py has the client's view)."""
    alice = as_user(short_cache, "alice")
    never_seen = fresh(short_cache, "bob")
    assert call(short_cache, "experiments/search?max_results=1", headers=alice)[0] == 200
    verified = time.monotonic()
    short_cache.hub.stop()
    try:
        assert call(short_cache, "experiments/search?max_results=1", headers=alice)[0] == 200
        status, body = call(short_cache, "experiments/search?max_results=1", headers=never_seen)
        assert status == 424 and b"cannot verify who you are" in body, body
        time.sleep(max(0.0, verified + CACHE_SECONDS + 0.5 - time.monotonic()))
        status, body = call(short_cache, "experiments/search?max_results=1", headers=alice)
        assert status == 424, body
    finally:
        short_cache.hub.start()
    assert call(short_cache, "experiments/search?max_results=1", headers=alice)[0] == 200


# Another replica of the server (or another worker) writing to the same permission
# store: what this server's worker did not see happen. It starts once (importing MLflow
# takes seconds on a busy machine) and then writes at once, line by line.
ANOTHER_REPLICA = """
import os, sys
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
store = SqlAlchemyStore()
store.init_db(os.environ["MLFLOW_BACKEND_STORE_URI"])
print("ready", flush=True)
for line in sys.stdin:
    action, experiment_id, user, *level = line.split()
    if action == "grant":
        store.grant_user_permission(user, "experiment", experiment_id, level[0])
    else:
        store.revoke_user_resource_permission(user, "experiment", experiment_id)
    print("done", flush=True)
"""


@pytest.fixture(scope="module")
def another_replica(short_cache):
    env = {**process_env(short_cache.server), "PATH": f"{MLFLOW_BIN}:{os.environ['PATH']}"}
    process = subprocess.Popen([str(MLFLOW_BIN / "python"), "-c", ANOTHER_REPLICA], env=env,
                               cwd=short_cache.workdir, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip

    def write(*args: str) -> None:
        process.stdin.write(" ".join(args) + "\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "done"

    try:
        assert process.stdout.readline().strip() == "ready"
        yield write
    finally:
        process.kill()
        process.wait(timeout=30)


def permission(dep, action: str, experiment_id: str, user: str, level: str = "") -> None:
    """An admin grants or revokes through this server's permission API."""
    body = {"username": user, "resource_type": "experiment", "resource_id": experiment_id}
    if level:
        body["permission"] = level
    prefix = dep.config.mlflow.route_path
    status, answer = call(dep, f"{prefix}/api/3.0/mlflow/users/permissions/{action}", body,
                          dep.auth_header())  # fmt: skip
    assert status == 200, answer


def bob_creates_a_run(dep, experiment_id: str) -> int:
    return call(dep, "runs/create", {"experiment_id": experiment_id}, as_user(dep, "bob"))[0]


def test_a_grant_made_elsewhere_applies_at_once(short_cache, another_replica):
    """The server remembers permission lookups, but never refuses on what it remembers:
    a new grant from another replica works on the next request."""
    experiment_id = create_experiment(short_cache, "alice")
    assert bob_creates_a_run(short_cache, experiment_id) == 403  # READ: bob's grants known
    status, _ = call(short_cache, f"experiments/get?experiment_id={experiment_id}",
                     headers=as_user(short_cache, "bob"))  # fmt: skip
    assert status == 200
    another_replica("grant", experiment_id, "bob", "EDIT")
    assert bob_creates_a_run(short_cache, experiment_id) == 200


def test_a_withdrawn_grant_stops_allowing_within_the_cache_time(short_cache, another_replica):
    experiment_id = create_experiment(short_cache, "alice")
    # Withdrawn through this server: refused at once.
    permission(short_cache, "grant", experiment_id, "bob", "EDIT")
    assert bob_creates_a_run(short_cache, experiment_id) == 200
    permission(short_cache, "revoke", experiment_id, "bob")
    assert bob_creates_a_run(short_cache, experiment_id) == 403
    # Withdrawn by another replica: this one still remembers the grant, for at most
    # cache_seconds after it last looked.
    permission(short_cache, "grant", experiment_id, "bob", "EDIT")
    assert bob_creates_a_run(short_cache, experiment_id) == 200
    looked = time.monotonic()
    another_replica("revoke", experiment_id, "bob")
    assert bob_creates_a_run(short_cache, experiment_id) == 200  # remembered
    time.sleep(max(0.0, looked + CACHE_SECONDS + 0.5 - time.monotonic()))
    assert bob_creates_a_run(short_cache, experiment_id) == 403


def test_a_nebari_admin_demoted_in_the_hub_stops_being_admin_within_the_cache_time(short_cache):
    short_cache.hub.add_users("eve")
    # A developer (her group's role gives MLflow's scope), made an admin.
    short_cache.hub.api("POST", "/groups/%2Fdeveloper/users", {"users": ["eve"]})
    short_cache.hub.api("PATCH", "/users/eve", {"admin": True})
    experiment_id = create_experiment(short_cache, "alice")
    eve = fresh(short_cache, "eve")
    rename = {"experiment_id": experiment_id, "new_name": f"eve-was-here-{experiment_id}"}
    assert call(short_cache, "experiments/update", rename, eve)[0] == 200
    demoted = time.monotonic()
    short_cache.hub.api("PATCH", "/users/eve", {"admin": False})
    time.sleep(max(0.0, demoted + CACHE_SECONDS + 0.5 - time.monotonic()))
    rename["new_name"] += "-again"
    assert call(short_cache, "experiments/update", rename, eve)[0] == 403


def test_logging_out_of_nebari_ends_the_mlflow_session_within_the_cache_time(short_cache):
    """The hub's logout deletes the OAuth tokens of its session: the MLflow session
    holding one stops working when it is next verified."""
    prefix = short_cache.config.mlflow.route_path
    browser = signed_in(short_cache, "alice")
    current = f"{prefix}/ajax-api/2.0/mlflow/users/current"
    accept = {"Accept": "application/json"}
    assert browser.request("GET", current, accept).status == 200
    browser.get("/hub/logout")
    time.sleep(CACHE_SECONDS + 0.5)
    assert browser.request("GET", current, accept).status == 401
