"""Artifacts through /mlflow at disk speed, with the permission checks of the Flask path.

The deployment runs as rendered (auth on: `--app-name nebari-auth`, server/asgi.py):
artifact uploads and downloads under the static prefix reach MLflow's streaming
routes. Shown by what a user sees: the server's memory does not grow with an upload
(Flask behind the WSGI bridge reads the whole body into memory), and who may read
and write another user's artifacts, at the in-cluster URL and through the route.
Speed itself is measured in benchmarks/artifact_transfer.py.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from support import nebari as nb
from support import transfer
from support.deployment import running_deployment
from support.signin import session_header
from support.transfer import MiB
from test_auth import as_user, call, create_experiment

pytestmark = pytest.mark.slow


def artifact_url(dep, run: dict, name: str, ajax: bool = False) -> str:
    root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    api = "ajax-api" if ajax else "api"
    return f"{dep.config.mlflow.route_path}/{api}/2.0/mlflow-artifacts/artifacts/{root}/{name}"


def in_cluster(dep, method: str, url: str, user: str | None, size: int = 0):
    """(status, body, sha256 of the body) at the Service's address, as `user` (their
    JupyterHub token) or with no credential."""
    headers = as_user(dep, user) if user else {}
    host = f"mlflow.{dep.namespace}.svc:5000"
    if method == "PUT":
        status, body = transfer.put(dep.server_port, url, headers, host, size=size)
        return status, body, sha256(transfer.PATTERN * (size // MiB + 1), size)
    status, body, _, digest = transfer.get(dep.server_port, url, headers, host)
    return status, body, digest


def sha256(data: bytes, size: int) -> str:
    return hashlib.sha256(data[:size]).hexdigest()


def new_run(dep, user: str) -> dict:
    experiment_id = create_experiment(dep, user)
    status, body = call(dep, "runs/create", {"experiment_id": experiment_id}, as_user(dep, user))
    assert status == 200, body
    return json.loads(body)["run"]


def test_an_upload_streams_to_the_store_and_back(deployment):
    """192 MiB up and down at the in-cluster URL: the server's memory does not grow
    by the file's size (no worker reads it whole), and the bytes arrive intact."""
    size = 192 * MiB
    run = new_run(deployment, "alice")
    url = artifact_url(deployment, run, "model/weights.bin")
    pids = transfer.group_processes(deployment.process.pid)
    before = transfer.peak_rss_mib(pids)
    status, body, sent = in_cluster(deployment, "PUT", url, "alice", size)
    assert status == 200, body[:300]
    status, body, _ = in_cluster(deployment, "GET", url, "alice")
    assert status == 200 and len(body) == size
    assert hashlib.sha256(body).hexdigest() == sent
    after = transfer.peak_rss_mib(pids)
    grown = transfer.growth_mib(before, after)
    assert grown < 48, f"a server process's peak memory grew by {grown:.0f} MiB: {after}"


def test_under_read_others_read_artifacts_and_write_none(deployment):
    """bob under READ (the default) reads alice's run's artifacts and writes none;
    without a credential nobody does either."""
    run = new_run(deployment, "alice")
    url = artifact_url(deployment, run, "notes.txt")
    ajax_url = artifact_url(deployment, run, "notes.txt", ajax=True)
    assert in_cluster(deployment, "PUT", url, "alice", 1000)[0] == 200
    for target in (url, ajax_url):
        status, body, _ = in_cluster(deployment, "GET", target, "bob")
        assert status == 200 and body == (bytes(range(256)) * 4)[:1000], (target, status)
        assert in_cluster(deployment, "PUT", target, "bob", 10)[0] == 403
        assert in_cluster(deployment, "GET", target, None)[0] == 401
        assert in_cluster(deployment, "PUT", target, None, 10)[0] == 401
    other = artifact_url(deployment, run, f"bobs-{uuid.uuid4().hex[:6]}.txt")
    assert in_cluster(deployment, "PUT", other, "bob", 10)[0] == 403
    # What bob wrote arrived nowhere; alice's file is as she wrote it.
    assert in_cluster(deployment, "GET", other, "alice")[0] == 404
    status, body, _ = in_cluster(deployment, "GET", url, "alice")
    assert status == 200 and len(body) == 1000


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """A deployment with `auth.default_permission: NO_PERMISSIONS`."""
    config = nb.validate(
        nb.config_dict(
            "local",
            {"workers": 1, "prometheus": False, "auth": {"default_permission": "NO_PERMISSIONS"}},
        )
    )
    with running_deployment(tmp_path_factory.mktemp("private"), config) as dep:
        yield dep


def test_under_no_permissions_others_neither_read_nor_write_artifacts(private):
    run = new_run(private, "alice")
    url = artifact_url(private, run, "notes.txt")
    ajax_url = artifact_url(private, run, "notes.txt", ajax=True)
    assert in_cluster(private, "PUT", url, "alice", 1000)[0] == 200
    for target in (url, ajax_url):
        assert in_cluster(private, "GET", target, "bob")[0] == 403
        assert in_cluster(private, "PUT", target, "bob", 10)[0] == 403
        assert in_cluster(private, "GET", target, "alice")[0] == 200
    status, body, _ = in_cluster(private, "GET", url, "alice")
    assert status == 200 and body == (bytes(range(256)) * 4)[:1000]


def test_through_the_route_a_browser_session_reads_and_writes_its_artifacts(deployment):
    """At https://<domain>/mlflow (nginx as Traefik): alice's browser session
    uploads and downloads; bob's session reads (READ) but cannot write."""
    host = deployment.nginx.route.host
    run = new_run(deployment, "alice")
    url = artifact_url(deployment, run, "data/sample.bin", ajax=True)

    def session(user: str) -> dict[str, str]:
        return session_header(deployment, user, host)

    port, size = deployment.nginx.port, 8 * MiB
    status, body = transfer.put(port, url, session("alice"), host, size=size)
    assert status == 200, body[:300]
    for user in ("alice", "bob"):
        status, _, received, digest = transfer.get(port, url, session(user), host, keep=False)
        assert status == 200 and received == size, user
        assert digest == sha256(transfer.PATTERN * 8, size), user
    assert transfer.put(port, url, session("bob"), host, size=10)[0] == 403


def test_a_group_share_reaches_the_streamed_artifact_routes(private):
    """alice shares her experiment with /developer (EDIT): bob, a member, reads and
    writes its run's artifacts on the streamed routes as on every other route; dana,
    not a member, does neither (default NO_PERMISSIONS)."""
    run = new_run(private, "alice")
    tag = {"experiment_id": run["info"]["experiment_id"], "key": "nebari.share.developer",
           "value": "EDIT"}  # fmt: skip
    status, body = call(private, "experiments/set-experiment-tag", tag, as_user(private, "alice"))
    assert status == 200, body
    url = artifact_url(private, run, "notes.txt")
    assert in_cluster(private, "PUT", url, "alice", 1000)[0] == 200
    for target in (url, artifact_url(private, run, "notes.txt", ajax=True)):
        status, body, _ = in_cluster(private, "GET", target, "bob")
        assert status == 200 and len(body) == 1000, (target, status, body[:200])
        assert in_cluster(private, "GET", target, "dana")[0] == 403
    assert in_cluster(private, "PUT", artifact_url(private, run, "bobs.txt"), "bob", 10)[0] == 200
    assert in_cluster(private, "PUT", artifact_url(private, run, "danas.txt"), "dana", 10)[0] == 403
