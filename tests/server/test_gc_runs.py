"""server/gc_runs.py: MLflow's `gc` on the environment's database, on a real (SQLite)
store. Through the tracking server's artifact proxy: tests/e2e/test_gc.py."""

from __future__ import annotations

import time

import pytest

from nebari_mlflow_plugin.server import gc_runs


def test_the_age_is_the_only_argument_and_the_uri_stays_off_argv():
    assert gc_runs.parse(["30d"]).older_than == "30d"
    with pytest.raises(SystemExit):
        gc_runs.parse([])
    argv = gc_runs.gc_argv("7d12h", "postgresql://u:s3cr3t@db/mlflow")
    assert argv == ["--backend-store-uri", "postgresql://u:s3cr3t@db/mlflow",
                    "--older-than", "7d12h"]  # fmt: skip


def test_runs_deleted_longer_ago_than_the_age_are_purged(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("gc", artifact_location=str(tmp_path / "artifacts"))
    old, recent, active = (client.create_run(experiment).info.run_id for _ in range(3))
    for run in (old, recent):
        client.delete_run(run)
    from sqlalchemy import create_engine, text

    two_days_ago = int((time.time() - 2 * 86400) * 1000)
    with create_engine(uri).begin() as db:
        db.execute(text("UPDATE runs SET deleted_time = :t WHERE run_uuid = :r"),
                   {"t": two_days_ago, "r": old})  # fmt: skip
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", uri)
    # (The CronJob's is the server, which deletes proxied artifacts; these are local.)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit) as exited:
        gc_runs.main(["1d"])
    assert exited.value.code == 0
    remaining = {r.info.run_id for r in client.search_runs([experiment], run_view_type=3)}
    assert remaining == {recent, active}
