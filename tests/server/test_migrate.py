"""server/migrate.py: arguments, the lock per dialect, the bounded wait, and the
migration itself on a real (SQLite) database."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy

from nebari_mlflow_plugin.server import job_support, migrate


def test_arguments_are_a_mode_and_the_seconds_to_wait():
    args = migrate.parse(["check", "60"])
    assert (args.mode, args.wait) == ("check", 60)
    for wrong in (["migrate", "60"], ["upgrade", "soon"], ["upgrade"]):
        with pytest.raises(SystemExit) as exited:
            migrate.parse(wrong)
        assert exited.value.code == 2, wrong


@pytest.mark.parametrize(
    ("backend", "locks"),
    [("postgresql", "pg_try_advisory_lock"), ("mysql", "GET_LOCK"), ("sqlite", None),
     ("mssql", None)],
)  # fmt: skip
def test_replicas_take_turns_only_where_the_database_has_a_lock(backend, locks):
    statement = migrate.lock_statement(backend)
    assert statement is None if locks is None else locks in statement


def test_the_wait_is_bounded_and_says_what_it_waited_for(monkeypatch, capsys):
    now = [0.0]
    monkeypatch.setattr(job_support.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(job_support.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    attempts = []

    def refused():
        attempts.append(now[0])
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused\nmore"))

    with pytest.raises(SystemExit, match=r"waited 5 s for the database: connection refused \("):
        job_support.until(refused, "the database", 5, migrate.fail)
    assert attempts == [0, 2, 4, 6]  # every 2 s until the deadline
    assert "waiting for the database: connection refused" in capsys.readouterr().out
    ready = iter([None, "connection"])
    assert job_support.until(lambda: next(ready), "x", 5, migrate.fail) == "connection"


def test_a_uri_that_is_not_a_url_is_refused_without_showing_it(monkeypatch):
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", "s3cr3t-not-a-url")
    with pytest.raises(SystemExit) as exited:
        migrate.main(["upgrade", "1"])
    assert "is not a database URL" in str(exited.value) and "s3cr3t" not in str(exited.value)
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI")
    with pytest.raises(SystemExit, match="MLFLOW_BACKEND_STORE_URI is not set"):
        migrate.main(["upgrade", "1"])


def test_upgrade_creates_the_schema_and_check_refuses_another(tmp_path, monkeypatch, capsys):
    database = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", f"sqlite:///{database}")
    migrate.main(["check", "1"])  # an empty database is left to the server
    migrate.main(["upgrade", "1"])
    with sqlite3.connect(database) as db:
        (head,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)  # the tables exist
    assert f"database schema at {head} (was None)" in capsys.readouterr().out
    migrate.main(["check", "1"])  # at this MLflow's head
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = 'older'")
    with pytest.raises(SystemExit) as exited:
        migrate.main(["check", "1"])
    message = str(exited.value)
    assert message.startswith("mlflow schema migration failed: schema at older")
    assert f"this MLflow needs {head}" in message and "(the kubelet re-runs" in message
