"""Pieces of the server-side package that need no server (the rest: e2e/test_auth.py)."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest

from nebari_mlflow_plugin.server import attribution, identity, scopes
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
    # prometheus_client: in the image with prometheus-flask-exporter (--expose-prometheus);
    # sqlalchemy: MLflow's own database layer (shared identities);
    # cryptography: a dependency of mlflow itself (AES-GCM of the browser session);
    # starlette: the ASGI framework of MLflow's server (FastAPI's), for a middleware.
    allowed = {"mlflow", "flask", "werkzeug", "prometheus_client", "sqlalchemy", "cryptography",
               "starlette"}  # fmt: skip
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


# Scopes as /hub/api/user returns them (JupyterHub 5.3, measured in e2e/test_credentials.py).
SERVER_TOKEN = [
    "access:servers!server=alice/",
    "users:activity!user=alice",
    "access:services!service=MLflow",
    "read:users:name!user=alice",
]
VISITOR = [
    "access:servers!server=alice/",
    "read:users:name!user=bob",
    "read:users:groups!user=bob",
]  # bob's OAuth token held by alice's server


@pytest.mark.parametrize(("owner", "granted", "meant"), [
    ("alice", SERVER_TOKEN, True),
    ("alice", ["access:servers!server=alice/"], True),  # a server's token before the role
    ("alice", ["access:servers!server=alice/lab"], True),  # a named server of hers
    ("bob", VISITOR, False),  # the visited server is alice's, the token bob's
    ("bob", ["access:servers!server=bobby/"], False),  # another user's name, same prefix
    ("bob", ["read:users:name!user=bob"], False),
    ("bob", ["access:servers!user=bob"], False),  # access to servers is not to MLflow
    ("bob", ["access:services!service=conda-store"], False),
    ("bob", ["access:services!service=MLflow"], True),
    ("ada", ["access:services"], True),  # admins' tokens
], ids=str)  # fmt: skip
def test_a_token_is_meant_for_mlflow_as_jupyterhub_decides_for_services(owner, granted, meant):
    assert scopes.meant_for_mlflow(granted, owner, "MLflow") is meant


def test_a_session_is_unreadable_unforgeable_and_expires():
    from nebari_mlflow_plugin.server import login

    key, other = b"k" * 32, b"o" * 32
    sealed = login.seal(key, login.SESSION_COOKIE, {"t": "hub-token-123", "e": 9e9})
    raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    assert b"hub-token" not in raw  # encrypted, not only signed
    assert login.unseal(key, login.SESSION_COOKIE, sealed)["t"] == "hub-token-123"
    assert login.unseal(other, login.SESSION_COOKIE, sealed) is None  # another deployment
    assert login.unseal(key, login.STATE_COOKIE, sealed) is None  # not a state cookie
    assert login.unseal(key, login.SESSION_COOKIE, sealed[:-2] + "AA") is None
    expired = login.seal(key, login.SESSION_COOKIE, {"t": "x", "e": 1})
    assert login.unseal(key, login.SESSION_COOKIE, expired) is None


@pytest.mark.parametrize(
    ("target", "back_to"),
    [
        ("/mlflow/#/experiments", "/mlflow/#/experiments"),
        ("/mlflow/?x=1", "/mlflow/?x=1"),
        ("/mlflow", "/mlflow"),
        ("/mlflowfoo/", "/mlflow/"),
        ("https://evil.example.com/mlflow/", "/mlflow/"),
        ("//evil.example.com/mlflow/", "/mlflow/"),
        ("/user/alice/", "/mlflow/"),
    ],
)
def test_after_sign_in_the_browser_returns_only_under_the_route(target, back_to):
    from nebari_mlflow_plugin.server import login

    settings = login.LoginSettings("service-mlflow", "/mlflow/oauth_callback", "/hub/a", "/mlflow",
                                   600, b"k" * 32)  # fmt: skip
    assert login._local_target(settings, target) == back_to
