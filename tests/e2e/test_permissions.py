"""Permissions a team can reason about, tried as a team would: alice creates and
shares with her JupyterHub group /team-a, bob is a member, carol is in /team-c.

The server runs as rendered with 4 workers (a request lands on any of them) and a
5 s `cache_seconds`, against a real JupyterHub (tokens, groups), each attack of
issue #20 a scenario: escalation through the share tag, hijacking by rename, shares
that outlive the tag or the membership, a forged `mlflow.user` (through MLflow's
client, its REST API or OTLP). A second replica on the same database writes a share
the first must apply at once.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.client
import json
import os
import signal
import subprocess
import textwrap
import time
import urllib.parse
import uuid

import pytest
from support import nebari as nb
from support.deployment import MLFLOW_BIN, launch, missing_tools, running_deployment, wait_http
from support.mlflow_server import free_port
from support.release import render_release
from support.replica import second_replica
from support.rest import bearer, call
from support.userpod import POD_VENV, build_user_pod, process_env

from nebari_mlflow_plugin.server import otlp
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage

pytestmark = pytest.mark.slow

CACHE_SECONDS = 5
WORKERS = 4
GROUPS = {"/team-a": ["alice", "bob"], "/team-c": ["carol"]}


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict(
        "local", {"workers": WORKERS, "auth": {"cache_seconds": CACHE_SECONDS}}
    ))  # fmt: skip
    with running_deployment(tmp_path_factory.mktemp("permissions"), config) as dep:
        for group, users in GROUPS.items():
            dep.hub.add_users(*users)
            path = f"/groups/{urllib.parse.quote(group, safe='')}"
            dep.hub.api("POST", path)
            dep.hub.api("POST", f"{path}/users", {"users": users})
        # Like every Nebari user, carol is also in a group holding MLflow's access role.
        dep.hub.api("POST", "/groups/%2Fanalyst/users", {"users": ["carol"]})
        yield dep


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(answer: tuple[int, bytes]) -> dict:
    status, body = answer
    assert status == 200, body[:500]
    return json.loads(body) if body else {}


def refused(answer: tuple[int, bytes], *words: str) -> str:
    status, body = answer
    assert status == 403, (status, body[:500])
    text = body.decode()
    for word in words:
        assert word in text, text
    return text


def shared_experiment(dep, level: str = "EDIT", group: str = "/team-a") -> tuple[str, dict]:
    """alice's new experiment, shared with `group` at `level`; (id, alice's headers)."""
    alice = bearer(dep, "alice")
    experiment_id = ok(call(dep, "experiments/create", {"name": unique("churn")}, alice))[
        "experiment_id"
    ]
    set_share(dep, alice, experiment_id, level, group)
    return experiment_id, alice


def set_share(dep, who: dict, experiment_id: str, level: str, group: str = "/team-a"):
    return call(dep, "experiments/set-experiment-tag", {"experiment_id": experiment_id,
                "key": f"nebari.share.{group}", "value": level}, who)  # fmt: skip


def create_run(dep, who: dict, experiment_id: str) -> int:
    return call(dep, "runs/create", {"experiment_id": experiment_id}, who)[0]


def every_worker(dep, who: dict, experiment_id: str) -> None:
    """Requests enough for every worker to have verified `who` and remembered their
    permissions on the experiment (each request lands on any worker)."""
    for _ in range(4 * WORKERS):
        ok(call(dep, f"experiments/get?experiment_id={experiment_id}", headers=who))


# 1. Sharing needs MANAGE ------------------------------------------------------------


def test_an_edit_member_cannot_raise_or_widen_a_share_of_an_experiment(team):
    experiment_id, alice = shared_experiment(team, "EDIT")
    bob = bearer(team, "bob")
    assert create_run(team, bob, experiment_id) == 200  # EDIT through /team-a
    refused(set_share(team, bob, experiment_id, "MANAGE"), "sharing needs MANAGE", "EDIT")
    refused(set_share(team, bob, experiment_id, "MANAGE", "/analyst"), "sharing needs MANAGE")
    refused(call(team, "experiments/delete-experiment-tag",
                 {"experiment_id": experiment_id, "key": "nebari.share./team-a"}, bob))  # fmt: skip
    # Still EDIT: bob cannot delete it, nor change who has access.
    refused(call(team, "experiments/delete", {"experiment_id": experiment_id}, bob))
    grant = {"username": "bob", "resource_type": "experiment", "resource_id": experiment_id,
             "permission": "MANAGE"}  # fmt: skip
    prefix = team.config.mlflow.route_path
    assert call(team, f"{prefix}/api/3.0/mlflow/users/permissions/grant", grant, bob)[0] == 403
    # Other tags are EDIT's to write; the manager changes the share.
    ok(call(team, "experiments/set-experiment-tag",
            {"experiment_id": experiment_id, "key": "stage", "value": "dev"}, bob))  # fmt: skip
    ok(set_share(team, alice, experiment_id, "READ"))
    # The ajax-api (the UI's) is the same rule.
    refused(call(team, f"{prefix}/ajax-api/2.0/mlflow/experiments/set-experiment-tag",
                 {"experiment_id": experiment_id, "key": "nebari.share./team-a",
                  "value": "MANAGE"}, bob))  # fmt: skip


def test_an_edit_member_cannot_raise_a_share_of_a_registered_model(team):
    alice, bob = bearer(team, "alice"), bearer(team, "bob")
    model = unique("alice-diabetes")
    ok(call(team, "registered-models/create", {"name": model}, alice))
    tag = {"name": model, "key": "nebari.share./team-a", "value": "EDIT"}
    ok(call(team, "registered-models/set-tag", tag, alice))
    ok(call(team, "registered-models/update", {"name": model, "description": "by bob"}, bob,
            "PATCH"))  # fmt: skip
    refused(call(team, "registered-models/set-tag", {**tag, "value": "MANAGE"}, bob),
            "sharing needs MANAGE")  # fmt: skip
    refused(call(team, "registered-models/delete-tag",
                 {"name": model, "key": "nebari.share./team-a"}, bob, "DELETE"))  # fmt: skip
    revoke = {"username": "alice", "resource_type": "registered_model", "resource_id": model}
    prefix = team.config.mlflow.route_path
    refused(call(team, f"{prefix}/api/3.0/mlflow/users/permissions/revoke", revoke, bob))
    refused(call(team, "registered-models/delete", {"name": model}, bob, "DELETE"))
    # alice's model is still hers.
    ok(call(team, f"registered-models/get?name={model}", headers=alice))
    ok(call(team, "registered-models/set-tag", {**tag, "value": "READ"}, alice))


# 2. Shares follow the truth --------------------------------------------------------


def test_a_new_or_raised_share_applies_on_the_members_next_request_on_every_worker(team):
    experiment_id, alice = shared_experiment(team, "READ")
    bob = bearer(team, "bob")
    every_worker(team, bob, experiment_id)
    assert create_run(team, bob, experiment_id) == 403
    ok(set_share(team, alice, experiment_id, "EDIT"))
    assert [create_run(team, bob, experiment_id) for _ in range(2 * WORKERS)] == [200] * (
        2 * WORKERS
    )
    # A new share, of an experiment bob has only read so far.
    created = ok(call(team, "experiments/create", {"name": unique("fresh")}, alice))
    other = created["experiment_id"]
    every_worker(team, bob, other)
    ok(set_share(team, alice, other, "EDIT"))
    assert [create_run(team, bob, other) for _ in range(2 * WORKERS)] == [200] * (2 * WORKERS)


@pytest.fixture(scope="module")
def other_replica(team):
    """A second replica of the server as rendered (the same database, one worker for
    brevity), as `call` reaches it."""
    port = free_port()
    container = second_replica(team, port)
    container.argv[container.argv.index("--workers") + 1] = "1"
    log = team.workdir / "replica-1.log"
    process = launch(container, team.workdir, log)
    try:
        wait_http(team.probe_url().replace(str(team.server_port), str(port)), timeout=180,
                  process=process, log=log)  # fmt: skip
        yield dataclasses.replace(team, server_port=port, process=process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # `mlflow server` and its uvicorn
        process.wait(timeout=30)


def test_a_share_written_through_one_replica_applies_on_the_next_request_to_another(
    team, other_replica
):
    alice, bob = bearer(team, "alice"), bearer(team, "bob")
    experiment_id = ok(call(team, "experiments/create", {"name": unique("replicated")}, alice))[
        "experiment_id"
    ]
    every_worker(team, bob, experiment_id)  # each worker of this replica remembers bob's READ
    assert create_run(team, bob, experiment_id) == 403
    ok(set_share(other_replica, alice, experiment_id, "EDIT"))
    assert [create_run(team, bob, experiment_id) for _ in range(2 * WORKERS)] == [200] * (
        2 * WORKERS
    )


def test_lowering_or_removing_the_share_tag_withdraws_it_within_the_cache_time(team):
    experiment_id, alice = shared_experiment(team, "EDIT")
    bob = bearer(team, "bob")
    assert create_run(team, bob, experiment_id) == 200
    ok(set_share(team, alice, experiment_id, "READ"))
    time.sleep(CACHE_SECONDS + 0.5)
    assert [create_run(team, bob, experiment_id) for _ in range(WORKERS)] == [403] * WORKERS
    ok(set_share(team, alice, experiment_id, "EDIT"))
    assert create_run(team, bob, experiment_id) == 200
    ok(call(team, "experiments/delete-experiment-tag",
            {"experiment_id": experiment_id, "key": "nebari.share./team-a"}, alice))  # fmt: skip
    time.sleep(CACHE_SECONDS + 0.5)
    assert [create_run(team, bob, experiment_id) for _ in range(WORKERS)] == [403] * WORKERS


def test_leaving_the_group_withdraws_the_share_within_the_cache_time(team):
    experiment_id, _ = shared_experiment(team, "EDIT", group="/team-c")
    carol = bearer(team, "carol")
    assert create_run(team, carol, experiment_id) == 200
    team.hub.api("DELETE", "/groups/%2Fteam-c/users", {"users": ["carol"]})
    time.sleep(CACHE_SECONDS + 0.5)
    assert [create_run(team, carol, experiment_id) for _ in range(WORKERS)] == [403] * WORKERS
    status, body = call(team, f"experiments/get?experiment_id={experiment_id}", headers=carol)
    assert status == 200, body  # what everyone has (default_permission READ) stays


# 3. Personal experiments cannot be taken ------------------------------------------


def test_a_shared_experiment_cannot_be_renamed_into_a_personal_one(team):
    bob = bearer(team, "bob")
    own = f"users/bob-{uuid.uuid4().hex[:6]}"  # not bob's name: refused
    refused(call(team, "experiments/create", {"name": own}, bob), "'bob-")
    mine = ok(call(team, "experiments/create", {"name": unique("bob-scratch")}, bob))
    experiment_id, alice = shared_experiment(team, "MANAGE")
    for name in ("users/bob", "Users//Bob/", "  users/bob/churn ", "users/alice"):
        rename = {"experiment_id": experiment_id, "new_name": name}
        refused(call(team, "experiments/update", rename, bob), "Permission denied")
    # alice keeps it, and it keeps its name.
    experiment = ok(call(team, f"experiments/get?experiment_id={experiment_id}", headers=alice))
    assert experiment["experiment"]["name"].startswith("churn-")
    assert create_run(team, alice, experiment_id) == 200
    # What bob created he may move under his own name (and only his).
    name = f"users/bob/scratch-{uuid.uuid4().hex[:6]}"
    ok(call(team, "experiments/update", {"experiment_id": mine["experiment_id"],
                                         "new_name": name}, bob))  # fmt: skip
    # The creator is recorded by the server, and only an admin changes it.
    forged = {"experiment_id": experiment_id, "key": "nebari.creator", "value": "bob"}
    refused(call(team, "experiments/set-experiment-tag", forged, bob), "server only")


def test_reserved_names_are_compared_normalised_and_name_their_owner(team):
    bob = bearer(team, "bob")
    for name in ("users//alice", "Users/alice", " users/alice/ ", "USERS/Alice/x"):
        text = refused(call(team, "experiments/create", {"name": name}, bob))
        assert "the user 'alice'" in text, text
    tagged = {"name": unique("tagged"), "tags": [{"key": "nebari.creator", "value": "alice"}]}
    created = ok(call(team, "experiments/create", tagged, bob))
    experiment = ok(call(team, f"experiments/get?experiment_id={created['experiment_id']}",
                         headers=bob))["experiment"]  # fmt: skip
    assert {t["key"]: t["value"] for t in experiment["tags"]}["nebari.creator"] == "bob"


# 4. Every object carries the authenticated user ------------------------------------

POD_PYTHON = POD_VENV / "bin" / "python"

FORGE = textwrap.dedent(
    """
    import json, sys, mlflow
    from mlflow import MlflowClient
    mlflow.set_experiment(sys.argv[1])
    client = MlflowClient()
    model = mlflow.initialize_logged_model(name="forged", tags={"mlflow.user": "dana"})
    client.set_logged_model_tags(model.model_id, {"mlflow.user": "ada"})

    @mlflow.trace
    def answer(question):
        mlflow.update_current_trace(metadata={"mlflow.user": "dana"}, tags={"team": "a"})
        return "42"

    answer("?")
    mlflow.flush_trace_async_logging()
    trace_id = mlflow.get_last_active_trace_id()
    name = sys.argv[2]
    client.create_registered_model(name, tags={"mlflow.user": "dana"})
    client.set_registered_model_tag(name, "mlflow.user", "ada")
    version = client.create_model_version(name, f"models:/{model.model_id}",
                                          tags={"mlflow.user": "dana"}, model_id=model.model_id)
    client.set_model_version_tag(name, version.version, "mlflow.user", "ada")
    prompt = sys.argv[3]
    mlflow.genai.register_prompt(name=prompt, template="Answer {{q}}", tags={"mlflow.user": "dana"})
    mlflow.genai.set_prompt_tag(prompt, "mlflow.user", "ada")
    mlflow.genai.set_prompt_version_tag(prompt, 1, "mlflow.user", "ada")
    print(json.dumps({"model": model.model_id, "trace": trace_id, "version": version.version}))
    """
)


@pytest.fixture(scope="module")
def pods(team, tmp_path_factory):
    """run(user, script, *args) in `user`'s JupyterLab pod, as rendered: (code, out, err)."""
    if not POD_PYTHON.exists():
        pytest.skip(f"user-environment virtualenv missing at {POD_VENV} (run `make install`)")
    stage = tmp_path_factory.mktemp("stage")
    manifests = render_release(nb.stage_for(team.config, stage), nb.STAGE_OUTPUTS)
    manifests += NotebookClientStage(stage, team.config).config_map_manifests()

    def run(user: str, script: str, *args: str, unset: tuple[str, ...] = ()):
        home = tmp_path_factory.mktemp(f"home-{user}")
        pod = build_user_pod(team.config, manifests, tmp_path_factory.mktemp("pod"), user=user)
        env = process_env(pod, team.client_env(), {
            "HOME": str(home), "USER": "jovyan", "JUPYTERHUB_API_TOKEN": team.tokens[user],
        }, base=os.environ)  # fmt: skip
        for name in unset:
            env.pop(name, None)
        return subprocess.run([str(POD_PYTHON), "-c", script, *args], env=env, cwd=home,
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    return run


def tags_of(entity: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


def test_a_pod_cannot_forge_who_made_a_logged_model_a_trace_a_model_or_a_prompt(team, pods):
    model_name, prompt = unique("forged-model"), unique("forged-prompt")
    result = pods("bob", FORGE, unique("users/bob/forge"), model_name, prompt)
    assert result.returncode == 0, result.stderr[-3000:]
    made = json.loads(result.stdout.strip().splitlines()[-1])

    logged = team.api(f"logged-models/{made['model']}")["model"]
    assert tags_of(logged["info"])["mlflow.user"] == "bob"
    assert who_made(team, made["trace"])[0]["mlflow.user"] == "bob"
    model = team.api(f"registered-models/get?name={model_name}")["registered_model"]
    assert tags_of(model)["mlflow.user"] == "bob"
    version = team.api(f"model-versions/get?name={model_name}&version={made['version']}")
    assert tags_of(version["model_version"])["mlflow.user"] == "bob"
    # A prompt is a registered model, its versions model versions: created and re-tagged.
    prompt_model = team.api(f"registered-models/get?name={prompt}")["registered_model"]
    assert tags_of(prompt_model)["mlflow.user"] == "bob"
    prompt_version = team.api(f"model-versions/get?name={prompt}&version=1")["model_version"]
    assert tags_of(prompt_version)["mlflow.user"] == "bob"
    # MLflow's client will not set a trace's `mlflow.user` tag; its REST API would.
    bob = bearer(team, "bob")
    prefix = team.config.mlflow.route_path
    for api in ("api/2.0", "api/3.0", "ajax-api/2.0"):
        ok(call(team, f"{prefix}/{api}/mlflow/traces/{made['trace']}/tags",
                {"key": "mlflow.user", "value": "alice"}, bob, "PATCH"))  # fmt: skip
        assert who_made(team, made["trace"])[1]["mlflow.user"] == "bob"
    # Nobody but an admin removes it.
    refused(call(team, f"logged-models/{made['model']}/tags/mlflow.user", None, bob,
                 "DELETE"), "server sets it")  # fmt: skip


OTLP_FORGE = """
import sys
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
endpoint, experiment_id, token = sys.argv[1:4]
exporter = OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip, headers={
    "x-mlflow-experiment-id": experiment_id, "Authorization": f"Bearer {token}"})
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))  # one request per span
tracer = provider.get_tracer("forger")
ids = []
claims = {"mlflow.traceTag.mlflow.user": "alice", "mlflow.user": "alice", "user.id": "alice"}
for attributes in (claims, {}):
    with tracer.start_as_current_span("agent", attributes=attributes) as root:
        with tracer.start_as_current_span("llm"):
            pass
    ids.append(f"tr-{root.get_span_context().trace_id:032x}")
provider.shutdown()
print(" ".join(ids))
"""


def otlp_json(dep, who: dict, experiment_id: str, attributes: dict[str, str]) -> tuple[int, str]:
    """One root span as OTLP/HTTP JSON: (status, the MLflow trace id)."""
    trace_id, now = uuid.uuid4().hex, time.time_ns()
    span = {"traceId": trace_id, "spanId": uuid.uuid4().hex[:16], "name": "agent",
            "startTimeUnixNano": str(now - 10**6), "endTimeUnixNano": str(now),
            "attributes": [{"key": k, "value": {"stringValue": v}}
                           for k, v in attributes.items()]}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    status, answer = otlp_post(dep, who, experiment_id, json.dumps(body).encode())
    assert status in (200, 403), answer[:500]
    return status, f"tr-{trace_id}"


def otlp_post(dep, who: dict, experiment_id: str, body: bytes, **headers: str):
    """POST `body` to the OTLP receiver as a pod does: (status, answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", dep.server_port, timeout=30)
    connection.putrequest("POST", f"{dep.config.mlflow.route_path}/v1/traces", skip_host=True)
    headers = {"Host": f"mlflow.{dep.namespace}.svc:5000", "Content-Type": "application/json",
               "Content-Length": str(len(body)), "x-mlflow-experiment-id": experiment_id,
               **who, **headers}  # fmt: skip
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    if len(body) == int(headers["Content-Length"]):
        connection.send(body)
    response = connection.getresponse()
    try:
        return response.status, response.read()
    finally:
        connection.close()


def who_made(dep, trace_id: str) -> tuple[dict, dict]:
    """The stored trace's (metadata, tags), as its experiment's readers see them."""
    info = json.loads(dep._call(f"api/3.0/mlflow/traces/{trace_id}"))["trace"]["trace_info"]
    return info.get("trace_metadata", {}), info.get("tags", {})


def test_an_otlp_trace_records_its_sender_whatever_its_spans_claim(team):
    experiment_id, _ = shared_experiment(team, "EDIT")
    bob = bearer(team, "bob")
    # The OpenTelemetry SDK as an attacker uses it: protobuf, gzip, a span per request.
    env = {**os.environ, **team.client_env()}
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", OTLP_FORGE, f"{team.service_url}/v1/traces",
         experiment_id, bob["Authorization"].split()[1]],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and "Failed to export" not in result.stderr, result.stderr
    forged, plain = result.stdout.split()
    metadata, tags = who_made(team, forged)
    assert (metadata["mlflow.user"], tags["mlflow.user"]) == ("bob", "bob")
    assert metadata["mlflow.trace.user"] == "alice"  # `user.id`: the application's end user
    metadata, tags = who_made(team, plain)
    assert metadata["mlflow.user"] == "bob" and "mlflow.user" not in tags
    # OTLP/JSON, the tag key padded.
    status, trace_id = otlp_json(team, bob, experiment_id, {"mlflow.traceTag.mlflow.user ": "ada"})
    assert status == 200
    metadata, tags = who_made(team, trace_id)
    assert metadata["mlflow.user"] == "bob" and tags["mlflow.user"] == "bob", tags
    assert not any(key.strip() == "mlflow.user" and key != "mlflow.user" for key in tags)
    # Whoever may not write the experiment is still refused.
    carol = bearer(team, "carol")
    assert otlp_json(team, carol, experiment_id, {})[0] == 403
    # What is read before MLflow is bounded, compressed or declared, with the reason.
    bomb = gzip.compress(b"\0" * (otlp.MAX_BODY + 1))
    status, answer = otlp_post(team, bob, experiment_id, bomb, **{
        "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})  # fmt: skip
    assert status == 413 and b"over 20 MiB" in answer, (status, answer)
    status, answer = otlp_post(team, bob, experiment_id, b"",
                               **{"Content-Length": str(otlp.MAX_BODY + 1)})  # fmt: skip
    assert status == 413 and b"over 20 MiB" in answer, (status, answer)


# 5. Visible and explainable ---------------------------------------------------------


def access(dep, who: dict, **query: str) -> tuple[int, bytes]:
    prefix = dep.config.mlflow.route_path
    return call(dep, f"{prefix}/api/2.0/mlflow/nebari/access?{urllib.parse.urlencode(query)}",
                headers=who)  # fmt: skip


def test_a_manager_lists_who_holds_which_permission(team):
    experiment_id, alice = shared_experiment(team, "EDIT")
    prefix = team.config.mlflow.route_path
    grant = {"username": "dana", "resource_type": "experiment", "resource_id": experiment_id,
             "permission": "READ"}  # fmt: skip
    ok(call(team, "experiments/search?max_results=1", headers=bearer(team, "dana")))  # known
    ok(call(team, f"{prefix}/api/3.0/mlflow/users/permissions/grant", grant, alice))
    listed = ok(access(team, alice, experiment_id=experiment_id))
    assert {(u["user"], u["permission"]) for u in listed["users"]} == {
        ("alice", "MANAGE"), ("dana", "READ")}  # fmt: skip
    assert [(g["group"], g["permission"]) for g in listed["groups"]] == [("/team-a", "EDIT")]
    assert listed["everyone"] == "READ"
    # A member with EDIT does not list it; an admin (a Nebari admin, once seen) does.
    refused(access(team, bearer(team, "bob"), experiment_id=experiment_id), "needs MANAGE")
    assert "ada" in ok(access(team, bearer(team, "ada"), experiment_id=experiment_id))["admins"]
    model = unique("listed")
    ok(call(team, "registered-models/create", {"name": model}, alice))
    listed = ok(access(team, alice, registered_model=model))
    assert [(u["user"], u["permission"]) for u in listed["users"]] == [("alice", "MANAGE")]


def test_a_refusal_says_what_was_needed_and_how_to_get_it(team):
    alice, bob = bearer(team, "alice"), bearer(team, "bob")
    experiment_id = ok(call(team, "experiments/create", {"name": unique("private")}, alice))[
        "experiment_id"
    ]
    text = refused(call(team, "runs/create", {"experiment_id": experiment_id}, bob))
    for words in ("needs EDIT", f"experiment '{experiment_id}'", "(alice)",
                  "a group you are in: the tag nebari.share./",  # one of bob's groups
                  f"= EDIT on experiment '{experiment_id}'"):  # fmt: skip
        assert words in text, text
    run_id = ok(call(team, "runs/create", {"experiment_id": experiment_id}, alice))["run"]["info"][
        "run_id"
    ]
    text = refused(call(team, "runs/delete", {"run_id": run_id}, bob))
    assert "needs MANAGE" in text and f"run '{run_id}'" in text, text


def test_what_does_not_exist_answers_404_to_who_could_read_it(team):
    bob = bearer(team, "bob")
    missing = unique("no-such-model")
    for path in (f"runs/get?run_id={uuid.uuid4().hex}", f"registered-models/get?name={missing}",
                 f"registered-models/alias?name={missing}&alias=champion"):  # fmt: skip
        status, body = call(team, path, headers=bob)
        assert status == 404, (path, status, body[:300])
    model = unique("alice-diabetes")
    ok(call(team, "registered-models/create", {"name": model}, bearer(team, "alice")))
    status, body = call(team, f"registered-models/alias?name={model}&alias=champion",
                        headers=bob)  # fmt: skip
    assert status == 404, body[:300]


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    """A deployment where nobody reads what others made (`NO_PERMISSIONS`)."""
    config = nb.validate(nb.config_dict(
        "local", {"workers": 1, "auth": {"default_permission": "NO_PERMISSIONS"}}
    ))  # fmt: skip
    with running_deployment(tmp_path_factory.mktemp("private"), config) as dep:
        yield dep


def test_where_nothing_is_readable_a_refusal_tells_nothing_about_what_exists(private):
    alice, bob = bearer(private, "alice"), bearer(private, "bob")
    experiment_id = ok(call(private, "experiments/create", {"name": unique("secret")}, alice))[
        "experiment_id"
    ]
    run_id = ok(call(private, "runs/create", {"experiment_id": experiment_id}, alice))["run"][
        "info"
    ]["run_id"]
    missing = uuid.uuid4().hex
    existing = refused(call(private, f"runs/get?run_id={run_id}", headers=bob))
    absent = refused(call(private, f"runs/get?run_id={missing}", headers=bob))
    assert existing.replace(run_id, "<id>") == absent.replace(missing, "<id>")
    assert "alice" not in existing and experiment_id not in existing.replace(run_id, "")
    model, nothing = unique("secret-model"), unique("no-model")
    ok(call(private, "registered-models/create", {"name": model}, alice))
    existing = refused(call(private, f"registered-models/get?name={model}", headers=bob))
    absent = refused(call(private, f"registered-models/get?name={nothing}", headers=bob))
    assert existing.replace(model, "<id>") == absent.replace(nothing, "<id>")


START_RUN = """
import mlflow
with mlflow.start_run() as run:
    mlflow.log_metric("m", 1.0)
print(mlflow.get_experiment(run.info.experiment_id).name)
"""


def test_start_run_without_an_experiment_works_in_a_pod_or_says_what_to_set(team, pods):
    result = pods("bob", START_RUN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "users/bob"  # the pod's own experiment
    # A client without the pod's setting meets MLflow's read-only Default experiment.
    result = pods("bob", START_RUN, unset=("MLFLOW_EXPERIMENT_NAME",))
    assert result.returncode != 0
    assert "MLFLOW_EXPERIMENT_NAME=users/bob" in result.stderr, result.stderr[-2000:]


PROMPT = """
import sys, time, mlflow
name = sys.argv[2]
if sys.argv[1] == "register":
    mlflow.genai.register_prompt(name=name, template="Answer {{question}}")
else:
    experiment = mlflow.set_experiment(sys.argv[3])
    print(mlflow.genai.load_prompt(f"prompts:/{name}/1").template)
    time.sleep(3)  # the client links the prompt to the experiment in a thread
    print(experiment.experiment_id)
"""


def test_reading_a_shared_prompt_does_not_warn(team, pods):
    name = unique("qa-prompt")
    result = pods("alice", PROMPT, "register", name)
    assert result.returncode == 0, result.stderr[-2000:]
    share = {"name": name, "key": "nebari.share./team-a", "value": "READ"}
    ok(call(team, "registered-models/set-tag", share, bearer(team, "alice")))
    result = pods("bob", PROMPT, "load", name, f"users/bob/{name}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Answer" in result.stdout
    assert "Failed to tag" not in result.stderr and "WARNING" not in result.stderr, result.stderr
    experiment_id = result.stdout.split()[-1]
    prompt = team.api(f"registered-models/get?name={name}")["registered_model"]
    tags = {t["key"]: t["value"] for t in prompt["tags"]}
    assert experiment_id in tags["_mlflow_experiment_ids"].split(",")
