"""Pieces of the server-side package that need no server (the rest: e2e/test_auth.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nebari_mlflow_plugin.server import attribution, identity
from nebari_mlflow_plugin.server.identity import Identity, IdentityCache

SERVER_DIR = Path(identity.__file__).parent


def test_cache_forgets_after_its_ttl_and_stays_bounded(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(identity.time, "monotonic", lambda: now[0])
    cache = IdentityCache(ttl=60, max_size=3)
    keys = [cache.key("hub", f"token-{i}") for i in range(4)]
    for i, key in enumerate(keys):
        cache.put(key, Identity(f"user-{i}"))
    assert cache.get(keys[0]) is None  # the oldest left when the fourth came
    assert cache.get(keys[3]).name == "user-3"
    now[0] += 59
    assert cache.get(keys[1]).name == "user-1"
    now[0] += 2
    assert cache.get(keys[1]) is None  # verified 61 s ago: ask again


def test_cache_keys_hold_no_credential_and_separate_kinds_and_hosts():
    key = IdentityCache.key("hub", "s3cr3t-token")
    assert "s3cr3t" not in key
    assert len({key, IdentityCache.key("mlflow", "s3cr3t-token"),
                IdentityCache.key("session", "s3cr3t-token", "a.example.com"),
                IdentityCache.key("session", "s3cr3t-token", "b.example.com")}) == 4  # fmt: skip


class FakeRequest:
    def __init__(self, path: str, body: dict, method: str = "POST") -> None:
        self.path, self.method, self.body = path, method, body

    def get_json(self, force: bool = False, silent: bool = False) -> dict:
        return self.body  # Flask returns its cached object: edits persist


@pytest.mark.parametrize("api", ["/mlflow/api/2.0", "/mlflow/ajax-api/2.0"])
def test_run_writes_carry_the_callers_name(api):
    tags = [{"key": "mlflow.user", "value": "alice"}, {"key": "k", "value": "v"}]
    created = FakeRequest(f"{api}/mlflow/runs/create",
                          {"experiment_id": "1", "user_id": "alice", "tags": tags})  # fmt: skip
    attribution.stamp(created, "bob")
    assert created.body["user_id"] == "bob"
    assert created.body["tags"] == [{"key": "mlflow.user", "value": "bob"},
                                    {"key": "k", "value": "v"}]  # fmt: skip
    bare = FakeRequest(f"{api}/mlflow/runs/create", {"experiment_id": "1"})
    attribution.stamp(bare, "bob")
    assert bare.body["tags"] == [{"key": "mlflow.user", "value": "bob"}]
    tagged = FakeRequest(f"{api}/mlflow/runs/set-tag", {"key": "mlflow.user", "value": "x"})
    attribution.stamp(tagged, "bob")
    assert tagged.body["value"] == "bob"
    batch = FakeRequest(
        f"{api}/mlflow/runs/log-batch",
        {"tags": [{"key": "mlflow.user", "value": "x"}], "metrics": []},
    )
    attribution.stamp(batch, "bob")
    assert batch.body["tags"] == [{"key": "mlflow.user", "value": "bob"}]
    other = FakeRequest(f"{api}/mlflow/runs/set-tag", {"key": "note", "value": "x"})
    attribution.stamp(other, "bob")
    assert other.body["value"] == "x"


def test_the_package_imports_only_mlflow_its_deps_and_itself():
    """It runs in the MLflow image as `nebari_mlflow_server`: relative imports only."""
    # prometheus_client: in the image with prometheus-flask-exporter (--expose-prometheus).
    allowed = {"mlflow", "flask", "werkzeug", "prometheus_client"}
    for path in SERVER_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                top = node.module.split(".")[0]
                assert top == "__future__" or top in allowed or _stdlib(top), (path.name, top)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    assert top in allowed or _stdlib(top), (path.name, top)


def _stdlib(name: str) -> bool:
    import sys

    return name in sys.stdlib_module_names


class Decision:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def test_the_gate_allows_on_remembered_grants_and_refuses_only_on_fresh_ones():
    from nebari_mlflow_plugin.server.lookups import Lookups

    lookups = Lookups(ttl=60, max_size=100)
    grants = {"bob": ["READ"]}  # the permission store
    reads = []

    def list_grants(user):
        reads.append(user)
        return list(grants[user])

    remembered = lookups.remembered("grants", list_grants)
    gate = lookups.gated(lambda: None if "EDIT" in remembered("bob") else Decision(403))
    assert remembered("bob") == ["READ"] and reads == ["bob"]  # outside the gate: fresh
    assert gate().status_code == 403  # refused on fresh data (looked up twice)
    assert reads == ["bob"] * 3
    grants["bob"] = ["READ", "EDIT"]  # granted by another replica
    assert gate() is None  # remembered READ refuses, so it looked again
    assert len(reads) == 4
    grants["bob"] = ["READ"]  # withdrawn elsewhere: remembered for the TTL
    assert gate() is None and len(reads) == 4
    lookups.forgetting(lambda: None)()  # a write through this worker
    assert gate().status_code == 403


def test_remembered_lookups_keep_no_absence_and_hand_out_copies():
    from nebari_mlflow_plugin.server import lookups as module

    lookups = module.Lookups(ttl=60, max_size=100)
    calls = []
    users = lookups.remembered("user", lambda name: calls.append(name) or None)
    rows = lookups.remembered(
        "grants", lambda user_id, types: [(user_id, sorted(types))], copy=list
    )
    token = module._mode.set("remember")
    try:
        users("carol"), users("carol")
        assert calls == ["carol", "carol"]  # a missing user is looked up again
        first = rows(1, {"experiment"})
        first.append("extended by a caller")
        assert rows(1, {"experiment"}) == [(1, ["experiment"])]
        known = lookups.remembered("user", lambda name: calls.append(name) or {"name": name})
        known("dana")
        with module.fresh():  # verifying an identity compares against the store itself
            known("dana")
        assert calls[-2:] == ["dana", "dana"]
    finally:
        module._mode.reset(token)
