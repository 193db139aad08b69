"""Two replicas as rendered (same database, same ReadWriteMany artifact volume, own
emptyDirs) behind the Traefik stand-in with both as endpoints; one is SIGKILLed
under load.

What the cluster does around a killed pod is replayed: for a moment the dead
endpoint still gets its share (Traefik 2 neither retries nor marks endpoints
without a retry middleware, which Nebari's route has not), then it leaves the
Endpoints, the kubelet restarts the container and it rejoins once ready. Clients
keep MLflow's own retry policy (502s and refused connections are retried). No
request may fail beyond what test_faults.py explains (a response cut by the kill
after its headers), and every acknowledged metric point is stored.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import pytest
from support import nebari as nb
from support.deployment import (
    FORWARD_AUTH,
    launch,
    missing_tools,
    running_deployment,
    wait_http,
)
from support.load import client_env, collect, start_clients
from support.mlflow_server import free_port
from support.replica import second_replica

CLIENTS = 4
SECONDS = 25.0
BATCH = 50
ENDPOINTS_LAG = 2.0  # kubelet -> NotReady -> Endpoints -> Traefik, roughly
CUT_RESPONSE = "IncompleteRead"
RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
CONFIG = {"replicas": 2, "workers": 1, "artifacts": {"access_mode": "ReadWriteMany"}}


def batch_lines(dep) -> list[str]:
    """nginx's access log lines of log_batch requests: `"request" status upstream=addr`."""
    log = (dep.nginx.workdir / "access.log").read_text()
    return [line for line in log.splitlines() if "log-batch" in line]


def wait_until_both_serve(dep, ports: list[int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = batch_lines(dep)
        if all(any(f" 200 upstream=127.0.0.1:{p}" in line for line in lines) for p in ports):
            return
        time.sleep(0.2)
    raise AssertionError(f"not every replica answered log_batch: {lines[-10:]}")


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict("local", CONFIG))
    with running_deployment(tmp_path_factory.mktemp("ha"), config) as dep:
        yield dep


# A whole deployment, a second replica and a restart under load, on a shared machine.
@pytest.mark.timeout(900)
def test_killing_one_replica_loses_no_request_and_no_point(replicated, tmp_path):
    dep = replicated
    port = free_port()
    log = dep.workdir / "replica-1.log"
    other = launch(second_replica(dep, port), dep.workdir, log)
    try:
        wait_http(f"http://127.0.0.1:{port}{dep.probe_url().split(str(dep.server_port), 1)[1]}",
                  timeout=180, process=other, log=log)  # fmt: skip
        # Clients come through the public route; the login is not what this is about
        # (test_deployment.py covers it), so this route admits them without a session.
        assert dep.nginx.route.forward_auth, FORWARD_AUTH
        dep.nginx.route = dataclasses.replace(dep.nginx.route, forward_auth=False)
        both = [dep.server_port, port]
        dep.nginx.set_upstreams(both)

        uri = f"{dep.public_base}{dep.config.mlflow.route_path}"
        env = client_env(dep.token_env(), **RETRIES)
        procs, outputs, _ = start_clients(uri, env, clients=CLIENTS, seconds=SECONDS,
                                          batch=BATCH, workdir=tmp_path)  # fmt: skip
        wait_until_both_serve(dep, both)  # the load is under way on both
        before_kill = len(batch_lines(dep))
        dep.stop_server(signal.SIGKILL)  # replica 0 dies mid-request
        time.sleep(ENDPOINTS_LAG)
        dep.nginx.set_upstreams([port])  # it leaves the Endpoints
        dep.start_server()  # the kubelet restarts it; ready again...
        dep.nginx.set_upstreams(both)  # ...it rejoins
        result = collect(procs, outputs, SECONDS, timeout=SECONDS + 240)
    finally:
        # The whole pod: `mlflow server` and the uvicorn it started (its own session).
        os.killpg(other.pid, signal.SIGKILL)
        other.wait(timeout=30)

    assert result["errors"] <= CLIENTS, result
    assert all(CUT_RESPONSE in message for message in result["error_messages"]), result
    assert result["acked_points"] > 0
    quoted = ",".join(f"'{run_id}'" for run_id in result["run_ids"])
    stored = int(dep.postgres.query(f"SELECT count(*) FROM metrics WHERE run_uuid IN ({quoted})"))
    if result["errors"] == 0:
        assert stored == result["acked_points"]
    else:
        assert result["acked_points"] <= stored <= result["acked_points"] + BATCH * result["errors"]
    # While replica 0 was away the survivor answered; the only refusals came from the
    # killed one (502s its clients retried).
    after_kill = batch_lines(dep)[before_kill:]
    assert any(f" 200 upstream=127.0.0.1:{port}" in line for line in after_kill)
    failed = [line for line in after_kill if " 200 " not in line]
    assert all(f"upstream=127.0.0.1:{dep.server_port}" in line for line in failed), failed
