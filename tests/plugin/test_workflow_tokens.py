"""Workflow tokens kept without the user asking (notebook/keeper.py): when a JupyterLab
server's process or a workflow step makes a new one, how often it may try, and that
nothing else mints.
(That the hub makes it and a workflow step logs with it after the server stopped is in
tests/e2e/test_credentials.py.)"""

from __future__ import annotations

import http.server
import json
import logging
import re
import threading
import time

import pytest
from support.http_answer import answer

from nebari_mlflow_plugin.notebook import keeper, tokens
from nebari_mlflow_plugin.notebook.tags import WORKFLOW_STEP_ENV

HOUR = 3600.0
LIFETIME = 36 * HOUR


def record(user: str, expires_in: float, now: float = 0.0) -> str:
    return json.dumps({"token": "t", "expires_at": now + expires_in, "user": user})


RULE_CASES = "missing not-json empty no-expiry foreign half-life expired near fresh longer old"


@pytest.mark.parametrize(
    ("text", "renew"),
    [
        (None, "there is none"),
        ("not json", "the file is unreadable"),
        ("", "the file is unreadable"),
        ('{"token": "t"}', "the file is unreadable"),
        (record("bob", LIFETIME), "the file holds a token of 'bob'"),
        (record("alice", LIFETIME / 2 - 1), "it expires in 18.0 h"),
        (record("alice", -HOUR), "it expires in 0.0 h"),
        (record("alice", LIFETIME / 2 + 1), None),
        (record("alice", LIFETIME), None),
        # A longer token the user made is kept while more than half a lifetime is left.
        (record("alice", 72 * HOUR), None),
        # Written before files named their user (old): the home's owner's.
        (json.dumps({"token": "t", "expires_at": LIFETIME}), None),
    ],
    ids=RULE_CASES.split(),
)
def test_the_refresh_rule(text, renew):
    within = keeper.renew_within(keeper.LAB, LIFETIME)
    assert keeper.refresh_reason(text, "alice", within, now=0.0) == renew


@pytest.mark.parametrize(
    ("text", "renew"),
    [
        (None, "there is none"),
        ("not json", "the file is unreadable"),
        (record("bob", LIFETIME), "the file holds a token of 'bob'"),
        (record("alice", -HOUR), "it expires in 0.0 h"),
        (record("alice", keeper.STEP_RENEW_SECONDS - 1), "it expires in 0.2 h"),
        # Usable: a step leaves renewing to JupyterLab, however little of it is left.
        (record("alice", keeper.STEP_RENEW_SECONDS + 1), None),
        (record("alice", LIFETIME / 2 - 1), None),
    ],
    ids=[
        "missing",
        "not-json",
        "foreign",
        "expired",
        "nearly-expired",
        "usable",
        "below-half-life",
    ],
)
def test_a_step_replaces_only_a_token_it_cannot_use(text, renew):
    within = keeper.renew_within(keeper.STEP, LIFETIME)
    assert keeper.refresh_reason(text, "alice", within, now=0.0) == renew


HUB = {"JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api", "JUPYTERHUB_USER": "alice",
       "JUPYTERHUB_API_TOKEN": "server-token"}  # fmt: skip


@pytest.fixture
def lab(monkeypatch, tmp_path):
    """A process of alice's JupyterLab server: the pod's env as rendered (the hub's
    variables, the deployment's lifetime) and her home's token file."""
    for name in (*keeper.HUB_ENV, *WORKFLOW_STEP_ENV, keeper.MODE_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in HUB.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS", str(int(LIFETIME)))
    # Nebari's user pods carry these for the argo CLI: they do not make a workflow step.
    monkeypatch.setenv("ARGO_SERVER", "nebari.example.com:443")
    monkeypatch.setenv("ARGO_TOKEN", "Bearer x")
    path = tmp_path / "home" / ".config" / "nebari-mlflow" / "workflow-token.json"
    monkeypatch.setenv(tokens.FILE_ENV, str(path))
    return path


def test_who_keeps_tokens(lab, monkeypatch):
    """JupyterLab's processes renew; steps and scheduled jobs (the pod's env copied) make
    one when they have none; nothing is kept without the hub's variables or in manual."""
    assert keeper.role() == keeper.LAB
    for name in ("ARGO_WORKFLOW_NAME", "ARGO_POD_NAME", "NEBARI_JOB_ID"):
        with monkeypatch.context() as step:
            step.setenv(name, "x")  # an Argo step or scheduled job, with the pod's env copied
            assert keeper.role() == keeper.STEP, name
            step.setenv(keeper.MODE_ENV, "manual")
            assert keeper.role() is None
    with monkeypatch.context() as manual:
        manual.setenv(keeper.MODE_ENV, "manual")  # mlflow.auth.workflow_tokens: manual
        assert keeper.role() is None
    monkeypatch.delenv("JUPYTERHUB_API_URL")
    assert keeper.role() is None


class Counting(keeper.Keeper):
    """A keeper whose checks are counted, not run (they would ask the hub)."""

    def __init__(self, clock) -> None:
        super().__init__(clock=clock, interval=600)
        self.checks = 0

    def check(self) -> bool:
        self.checks += 1
        return False


def test_at_most_one_check_per_process_per_interval(lab):
    now = [1000.0]
    keeping = Counting(lambda: now[0])
    for _ in range(50):  # every request of a busy kernel
        keeping.poke()
    keeping.done.wait(5)
    assert keeping.checks == 1
    now[0] += 599
    keeping.poke()
    keeping.done.wait(5)
    assert keeping.checks == 1
    now[0] += 2
    keeping.poke()
    keeping.done.wait(5)
    assert keeping.checks == 2


def test_nothing_is_checked_where_nothing_is_kept(lab, monkeypatch):
    monkeypatch.setenv(keeper.MODE_ENV, "manual")
    keeping = Counting(time.monotonic)
    keeping.poke()
    assert keeping.done is None and keeping.checks == 0
    assert keeping.next_check == float("inf")  # nor looks again


def test_a_step_with_a_usable_token_leaves_it_and_asks_nobody(lab, monkeypatch, caplog):
    """Below half its lifetime, which JupyterLab would renew: a step does not try (its
    server may be gone; the hub at port 9 would answer nothing and a warning say so)."""
    monkeypatch.setenv("ARGO_WORKFLOW_NAME", "train-x7")
    lab.parent.mkdir(parents=True)
    lab.write_text(record("alice", 5 * HOUR, now=time.time()))
    before = lab.read_text()
    keeping = keeper.Keeper()
    keeping.poke()
    keeping.done.wait(10)
    assert keeping.role == keeper.STEP
    with caplog.at_level(logging.DEBUG, logger=keeper.__name__):
        assert keeping.check() is False
    assert lab.read_text() == before and not keeping.warned, caplog.text


def test_a_step_without_a_token_tries_and_says_what_it_sends_instead(lab, monkeypatch, caplog):
    monkeypatch.setenv("ARGO_WORKFLOW_NAME", "train-x7")
    keeping = keeper.Keeper()
    with caplog.at_level(logging.WARNING, logger=keeper.__name__):
        assert keeping.check() is False
    [warning] = [r.getMessage() for r in caplog.records]
    assert "JupyterHub did not answer at http://127.0.0.1:9/hub/api" in warning
    assert "this step sends its copy of the JupyterLab server's token" in warning
    assert not lab.exists()


def test_a_failure_is_told_once_with_the_reason(lab, caplog):
    """The hub does not answer (port 9 on loopback): a warning naming the reason and the
    command, once per process; the file is left alone."""
    keeping = keeper.Keeper()
    with caplog.at_level(logging.DEBUG, logger=keeper.__name__):
        assert keeping.check() is False
        assert keeping.check() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    message = warnings[0].getMessage()
    assert "JupyterHub did not answer at http://127.0.0.1:9/hub/api" in message
    assert "python -m nebari_mlflow_plugin.notebook.tokens" in message
    assert not lab.exists()


def test_a_fresh_file_is_left_alone_and_checks_take_turns(lab):
    lab.parent.mkdir(parents=True)
    lab.write_text(record("alice", LIFETIME, now=time.time()))
    before = lab.read_text()
    assert keeper.Keeper().check() is False  # fresh: no request to the (absent) hub
    assert lab.read_text() == before
    lab.unlink()
    with keeper._turn(lab) as mine:  # another kernel of alice is minting
        assert mine
        with keeper._turn(lab) as theirs:
            assert not theirs
        keeping = keeper.Keeper()
        assert keeping.check() is False and not keeping.warned  # it did not even try


def test_saved_tokens_of_someone_else_are_never_sent(lab):
    lab.parent.mkdir(parents=True)
    lab.write_text(record("bob", HOUR, now=time.time()))
    assert tokens.saved_token() is None
    lab.write_text(record("alice", HOUR, now=time.time()) + " ")
    assert tokens.saved_token() == "t"


def test_concurrent_writers_never_leave_a_torn_file(lab):
    """Kernels of one user renewing at once: each write succeeds and every read sees a
    whole token file."""
    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(50):
                tokens._save(tokens.Saved(f"token-{n}-{i}" * 200, time.time() + HOUR, "alice"))
        except OSError as exc:  # e.g. another writer moved "its" partial file away
            errors.append(exc)

    def read() -> None:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(w.is_alive() for w in writers):
            try:
                tokens.parse(lab.read_text())
            except FileNotFoundError:
                pass
            except ValueError as exc:
                errors.append(exc)

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    reader = threading.Thread(target=read)
    for thread in (*writers, reader):
        thread.start()
    for thread in (*writers, reader):
        thread.join(30)
    assert errors == []
    assert oct(lab.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in lab.parent.iterdir()] == [lab.name]  # no partial file left


class StandInHub(http.server.BaseHTTPRequestHandler):
    """Answers token requests as JupyterHub 5.3 does (a bare 403 both to a token it does
    not know and to one that may not make tokens); records what it was asked."""

    post_status = 403
    knows_token = True
    asked: list[str] = []

    def do_POST(self):
        self.asked.append(f"POST {self.path}")
        self._answer(self.post_status, {"status": self.post_status, "message": "Forbidden"})

    def do_GET(self):
        self.asked.append(f"GET {self.path}")
        known = self.knows_token
        self._answer(200 if known else 403, {"name": "alice"} if known else {"status": 403})

    def _answer(self, status: int, body: dict) -> None:
        answer(self, status, body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(lab, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    StandInHub.asked = []
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{server.server_port}/hub/api")
    yield StandInHub
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("knows_token", "says"),
    [
        (False, "JupyterHub no longer knows this process's token: the JupyterLab server"),
        (True, "this server's token may not make tokens (it lacks `tokens!user`)"),
    ],
    ids=["server-stopped", "token-lacks-tokens-scope"],
)
def test_a_refused_mint_says_whether_the_server_stopped(hub, monkeypatch, knows_token, says):
    monkeypatch.setattr(hub, "knows_token", knows_token)
    with pytest.raises(tokens.TokenError, match=re.escape(says)):
        tokens.mint_workflow_token()
    assert hub.asked == ["POST /hub/api/users/alice/tokens", "GET /hub/api/user"]


def test_a_mint_the_hub_fails_otherwise_asks_nothing_more(hub, monkeypatch):
    monkeypatch.setattr(hub, "post_status", 500)
    with pytest.raises(tokens.TokenError, match=r"refused to make the token \(500\)"):
        tokens.mint_workflow_token()
    assert hub.asked == ["POST /hub/api/users/alice/tokens"]
