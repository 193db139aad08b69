"""Faults under load: the server is killed and restarted, PostgreSQL restarts.

Clients keep logging with MLflow's own retry settings. Every metric point the
server acknowledged must be in the database afterwards, and the server must serve
again without anyone touching it once its process and its database are back (as
the kubelet restarts a killed container). Refused connections, 5xx answers and
resets before a response are retried by MLflow's client; the one failure it
cannot retry is a response the SIGKILL cuts after its headers (urllib3 retries
requests, not a broken body), so a client may see that once per kill, and that
batch may or may not have been stored.
"""

from __future__ import annotations

import signal
import time

from support.load import client_env, collect, start_clients

CLIENTS = 4
SECONDS = 25.0
BATCH = 50
# What MLflow's client raises when the server dies between a response's headers and body.
CUT_RESPONSE = "IncompleteRead"
# MLflow's client retry settings as a user pod would set them for a restartable server.
RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # an integer in MLflow 3.17
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def stored_points(deployment, run_ids: list[str]) -> int:
    quoted = ",".join(f"'{run_id}'" for run_id in run_ids)  # hex ids the server made
    return int(
        deployment.postgres.query(f"SELECT count(*) FROM metrics WHERE run_uuid IN ({quoted})")
    )


def test_no_acknowledged_metric_is_lost_across_server_and_database_restarts(deployment, tmp_path):
    env = client_env({**deployment.client_env(), **deployment.token_env()}, **RETRIES)
    procs, outputs, _ = start_clients(
        deployment.service_url, env, clients=CLIENTS, seconds=SECONDS, batch=BATCH,
        workdir=tmp_path,
    )  # fmt: skip
    time.sleep(6)
    deployment.stop_server(signal.SIGKILL)  # the container dies mid-request
    time.sleep(2)
    deployment.start_server()  # the kubelet's restart: same command, same env
    time.sleep(4)
    deployment.postgres.restart()  # the database pod restarts under the server
    result = collect(procs, outputs, SECONDS, timeout=SECONDS + 240)

    # At most one request per client, cut mid-response by the one kill.
    assert result["errors"] <= CLIENTS, result
    assert all(CUT_RESPONSE in message for message in result["error_messages"]), result
    assert result["acked_points"] > 0
    stored = stored_points(deployment, result["run_ids"])
    assert result["acked_points"] <= stored <= result["acked_points"] + BATCH * result["errors"]
    # And it serves without a manual step: the probe path answers.
    status = deployment.probe_status()
    assert status == 200
