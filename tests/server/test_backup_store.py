"""server/backup_store.py: its arguments, retention and restore selection, the manifest,
and upload -> list -> fetch on a real store (a directory, as on the artifact volume,
through MLflow's own artifact repository). Against PostgreSQL and the cloud stores'
emulators: tests/e2e/test_backups.py and test_pre_upgrade_backup.py."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import stat
import time

import pytest

from nebari_mlflow_plugin.server import backup_store
from nebari_mlflow_plugin.server.backup_store import Failure, Settings

COUNTED = backup_store.COUNTED


def test_actions_and_their_arguments():
    assert backup_store.parse(["plan", "300"]).wait == 300
    fetch = backup_store.parse(["fetch", ""])  # as the restore CronJob renders it
    assert (fetch.action, fetch.name) == ("fetch", "")
    assert backup_store.parse(["fetch"]).name == ""
    verify = backup_store.parse(["verify", "20260101T000000Z-scheduled", "--exact"])
    assert (verify.name, verify.exact) == ("20260101T000000Z-scheduled", True)
    assert backup_store.parse(["verify", ""]).exact is False
    for wrong in (["plan"], ["plan", "soon"], ["restore"], []):
        with pytest.raises(SystemExit) as exited:
            backup_store.parse(wrong)
        assert exited.value.code == 2, wrong


def entry(name: str, kind: str | None) -> tuple[str, dict | None]:
    return name, (None if kind is None else {"name": name, "kind": kind})


def test_retention_keeps_the_newest_complete_of_its_kind_only():
    entries = [entry("5-scheduled", "scheduled"), entry("4-scheduled", None),
               entry("3-pre-upgrade", "pre-upgrade"), entry("2-scheduled", "scheduled"),
               entry("1-scheduled", "scheduled")]  # fmt: skip
    assert backup_store.beyond_retention(entries, "scheduled", 1) == ["2-scheduled", "1-scheduled"]
    assert backup_store.beyond_retention(entries, "scheduled", 3) == []
    assert backup_store.beyond_retention(entries, "pre-upgrade", 0) == ["3-pre-upgrade"]


def test_a_restore_picks_the_newest_complete_or_names_what_is_there():
    entries = [entry("3-scheduled", None), entry("2-scheduled", "scheduled"),
               entry("1-pre-upgrade", "pre-upgrade")]  # fmt: skip
    assert backup_store.select(entries, "", "s3://b/x")[0] == "2-scheduled"
    assert backup_store.select(entries, "1-pre-upgrade", "s3://b/x")[0] == "1-pre-upgrade"
    with pytest.raises(Failure, match=r"no backup named '9' in s3://b/x \(newest: 2-scheduled, 1-"):
        backup_store.select(entries, "9", "s3://b/x")
    with pytest.raises(Failure, match=r"backup '3-scheduled' in s3://b/x has no manifest\.json"):
        backup_store.select(entries, "3-scheduled", "s3://b/x")
    with pytest.raises(Failure, match="no complete backup in s3://b/x"):
        backup_store.select(entries[:1], "", "s3://b/x")


def test_verification_is_exact_after_the_restore_and_a_floor_afterwards():
    expected = dict.fromkeys(COUNTED, 3)
    grown = {**expected, "runs": 5}
    assert backup_store.mismatches(expected, grown, exact=False) == {}
    assert backup_store.mismatches(expected, grown, exact=True) == {"runs": (3, 5)}
    shrunk = {**expected, "metrics": 1}
    assert backup_store.mismatches(expected, shrunk, exact=False) == {"metrics": (3, 1)}


def test_the_manifest_records_the_dump_s_contents_and_the_upgrade():
    revision, rows = backup_store.parse_contents(
        "experiments 2\nruns 5\nalembic_version 1\nschema_revision abc123"
    )
    assert (revision, rows) == ("abc123", {"experiments": 2, "runs": 5, "alembic_version": 1})
    now = datetime.datetime(2026, 3, 1, 2, 30, 5, tzinfo=datetime.timezone.utc)
    name = backup_store.backup_name(now, "pre-upgrade")
    assert name == "20260301T023005Z-pre-upgrade"  # sorts by time
    manifest = backup_store.build_manifest(
        name, "pre-upgrade", now, (revision, rows), {"file": "mlflow.dump"}, "3.17.2", "old new\n"
    )
    assert manifest["counts"] == {t: rows.get(t, 0) for t in COUNTED}  # every counted table
    assert manifest["rows"] == rows and manifest["schema_revision"] == "abc123"
    assert manifest["upgrade"] == {"from": "old", "to": "new"}
    assert manifest["created"] == "2026-03-01T02:30:05+00:00"
    plain = backup_store.build_manifest(name, "scheduled", now, (None, {}), {}, "3.17.2")
    assert "upgrade" not in plain


def test_failures_in_the_server_pod_say_the_upgrade_waits():
    settings = Settings("/r", backup_store.Path("/w"), "pre-upgrade", 7)
    assert settings.failure("upload", "boom") == (
        "mlflow backup upload failed: boom; the schema upgrade waits for this backup "
        "(the kubelet re-runs this container)"
    )
    scheduled = Settings("/r", backup_store.Path("/w"), "scheduled", 7)
    assert scheduled.failure("upload", "boom") == "mlflow backup upload failed: boom"


def test_the_restore_reaches_postgres_through_a_private_service_file(tmp_path):
    path = tmp_path / "pg_service.conf"
    uri = "postgresql+psycopg2://mlflow:s3cr3t@db.dev.svc:5433/mlflow?sslmode=require"
    backup_store.libpq_service(uri, path)
    assert path.read_text() == (
        "[mlflow]\nhost=db.dev.svc\nport=5433\ndbname=mlflow\nuser=mlflow\npassword=s3cr3t\n"
        "sslmode=require\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(Failure, match="restore needs a PostgreSQL database, not sqlite"):
        backup_store.libpq_service("sqlite:///x.db", tmp_path / "other.conf")


def run(monkeypatch, capsys, work, root, kind, *argv, keep=1):
    uri = "postgresql://u:p@db/mlflow"
    for name, value in {"MLFLOW_BACKUP_WORK": str(work), "MLFLOW_BACKUP_ROOT": str(root),
                        "MLFLOW_BACKUP_KIND": kind, "MLFLOW_BACKUP_KEEP": str(keep),
                        "MLFLOW_BACKEND_STORE_URI": uri}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    backup_store.main(list(argv))
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def dumped(work, content: bytes) -> None:
    """What the dump container leaves in the work volume."""
    work.mkdir(exist_ok=True)
    (work / "mlflow.dump").write_bytes(content)
    (work / "contents.txt").write_text("runs 2\nexperiments 1\nschema_revision r1\n")


def test_upload_list_fetch_and_retention_on_a_volume(tmp_path, monkeypatch, capsys):
    root, work = tmp_path / "volume" / "_backups", tmp_path / "work"
    made = []
    for i, content in enumerate((b"first dump", b"second dump")):
        dumped(work, content)
        made.append(run(monkeypatch, capsys, work, root, "scheduled", "upload"))
        assert not (work / "mlflow.dump").exists()  # the node's disk is freed
        if i == 0:
            time.sleep(1)  # names have one-second resolution
    first, second = made
    manifest = json.loads((root / second["backup"] / "manifest.json").read_text())
    assert manifest == second["manifest"]
    assert manifest["dump"] == {"file": "mlflow.dump", "bytes": len(b"second dump"),
                                "sha256": hashlib.sha256(b"second dump").hexdigest()}  # fmt: skip
    assert manifest["counts"]["runs"] == 2 and manifest["schema_revision"] == "r1"
    # Retention (keep 1 scheduled) removed the first; an incomplete one stays.
    assert sorted(p.name for p in root.iterdir()) == [second["backup"]]
    (root / "29990101T000000Z-scheduled").mkdir()
    listed = run(monkeypatch, capsys, work, root, "scheduled", "list")
    assert [(b["name"], b["complete"]) for b in listed["backups"]] == [
        ("29990101T000000Z-scheduled", False), (second["backup"], True)]  # fmt: skip
    for scratch in ("restore", "again"):  # the pod's work volume
        (tmp_path / scratch).mkdir()
    fetched = run(monkeypatch, capsys, tmp_path / "restore", root, "restore", "fetch", "")
    assert fetched["backup"] == second["backup"]  # the newest complete one
    assert (tmp_path / "restore" / "mlflow.dump").read_bytes() == b"second dump"
    assert "password=p" in (tmp_path / "restore" / "pg_service.conf").read_text()
    (root / second["backup"] / "mlflow.dump").write_bytes(b"tampered")
    with pytest.raises(SystemExit) as exited:
        run(monkeypatch, capsys, tmp_path / "again", root, "restore", "fetch", second["backup"])
    assert str(exited.value) == (
        f"mlflow backup fetch failed: {root}/{second['backup']}/mlflow.dump does not match "
        "its manifest's sha256: not restoring it"
    )
    assert first["backup"] < second["backup"]


def test_a_pre_upgrade_upload_without_a_plan_does_nothing(tmp_path, monkeypatch, capsys):
    root, work = tmp_path / "_backups", tmp_path / "work"
    dumped(work, b"dump")
    for name, value in {"MLFLOW_BACKUP_WORK": str(work), "MLFLOW_BACKUP_ROOT": str(root),
                        "MLFLOW_BACKUP_KIND": "pre-upgrade"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    backup_store.main(["upload"])
    assert capsys.readouterr().out == "pre-upgrade backup: not needed\n"
    assert not root.exists()
    (work / "mlflow.dump").unlink()
    (work / "plan").write_text("a b\n")
    with pytest.raises(SystemExit) as exited:
        backup_store.main(["upload"])
    assert str(exited.value).startswith(f"mlflow backup upload failed: no {work}/mlflow.dump")
    assert str(exited.value).endswith("(the kubelet re-runs this container)")


def counted(manifest_counts: dict[str, int]) -> dict:
    return {"kind": "scheduled", "counts": manifest_counts}


def test_retention_never_deletes_the_newest_backup_holding_data():
    """A week of scheduled backups of an empty (re-created) database does not push the
    last one with runs out of retention; older ones with data still go."""
    empty, runs = {"experiments": 1}, {"experiments": 2, "runs": 5}
    entries = [("7-scheduled", counted(empty)), ("6-scheduled", counted(empty)),
               ("5-scheduled", counted(empty)), ("4-scheduled", counted(runs)),
               ("3-scheduled", counted(runs))]  # fmt: skip
    assert backup_store.beyond_retention(entries, "scheduled", 2) == ["5-scheduled", "3-scheduled"]
    # Of another kind it is kept too; it does not count towards KEEP.
    entries[3] = ("4-pre-destroy", {**counted(runs), "kind": "pre-destroy"})
    assert backup_store.beyond_retention(entries, "scheduled", 1) == [
        "6-scheduled", "5-scheduled", "3-scheduled"]  # fmt: skip


def upload_with(monkeypatch, capsys, work, root, contents: str) -> str:
    work.mkdir(exist_ok=True)
    (work / "mlflow.dump").write_bytes(contents.encode())
    (work / "contents.txt").write_text(contents)
    made = run(monkeypatch, capsys, work, root, "scheduled", "upload", keep=1)
    time.sleep(1)  # names have one-second resolution
    return made["backup"]


def test_scheduled_backups_of_an_empty_database_keep_the_one_with_runs(
    tmp_path, monkeypatch, capsys
):
    root, work = tmp_path / "volume" / "_backups", tmp_path / "work"
    with_runs = upload_with(monkeypatch, capsys, work, root, "experiments 2\nruns 4\n")
    empties = [upload_with(monkeypatch, capsys, work, root, "experiments 1\n") for _ in "ab"]
    # keep 1: the first empty one went, the newest (KEEP) and the one with runs stay.
    assert sorted(p.name for p in root.iterdir()) == [with_runs, empties[1]]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A real PostgreSQL (what the restore pod's URI points at), one per module."""
    from support.postgres import Postgres, postgres_bin_dir

    if postgres_bin_dir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    with Postgres(tmp_path_factory.mktemp("pg"), password="plan-password") as pg:
        yield pg


@pytest.fixture
def database(postgres, request):
    """A new, empty database of its own: no MLflow tables until a client makes them."""
    name = request.node.name.removeprefix("test_")[:60]
    postgres.query(f'CREATE DATABASE "{name}"')
    own = copy.copy(postgres)
    own.database = name
    return own


def plan_restore(monkeypatch, capsys, root, uri, *name: str) -> dict:
    for key, value in {"MLFLOW_BACKUP_ROOT": str(root), "MLFLOW_BACKUP_KIND": "restore",
                       "MLFLOW_BACKEND_STORE_URI": uri}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    backup_store.main(["plan-restore", *name])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_plan_restore_into_a_database_without_mlflow_tables_picks_the_older_backup_with_runs(
    tmp_path, monkeypatch, capsys, database
):
    """A database MLflow has not made its tables in yet counts 0 everywhere, so it
    lacks even the Default experiment a backup of an empty database holds: that newer
    empty backup is still not the default, the older one with runs is."""
    root, work = tmp_path / "volume" / "_backups", tmp_path / "work"
    with_runs = upload_with(monkeypatch, capsys, work, root, "experiments 2\nruns 4\n")
    empty = upload_with(monkeypatch, capsys, work, root, "experiments 1\n")
    plan = plan_restore(monkeypatch, capsys, root, database.uri)
    assert plan["current"] == dict.fromkeys(COUNTED, 0)
    assert [b["name"] for b in plan["backups"]] == [empty, with_runs]
    assert (plan["chosen"]["name"], plan["chosen"]["counts"]["runs"]) == (with_runs, 4)


def test_plan_restore_picks_the_newest_backup_with_runs_over_a_newer_empty_one(
    tmp_path, monkeypatch, capsys, database
):
    """After destroy + deploy the newest backup is of the new, empty database (its
    Default experiment only): the default is the newest one holding what the database
    lacks; named, even the empty one is what is restored."""
    root, work = tmp_path / "volume" / "_backups", tmp_path / "work"
    upload_with(monkeypatch, capsys, work, root, "experiments 2\nruns 3\n")
    with_runs = upload_with(monkeypatch, capsys, work, root, "experiments 2\nruns 4\n")
    empty = upload_with(monkeypatch, capsys, work, root, "experiments 1\n")
    from mlflow import MlflowClient

    MlflowClient(database.uri).search_experiments()  # the schema and the Default experiment
    plan = plan_restore(monkeypatch, capsys, root, database.uri)
    assert plan["current"] == {**dict.fromkeys(COUNTED, 0), "experiments": 1}
    assert (plan["chosen"]["name"], plan["chosen"]["counts"]["runs"]) == (with_runs, 4)
    # (Retention, keep 1, deleted the older one with runs, not the newest with runs.)
    assert [b["name"] for b in plan["backups"]] == [empty, with_runs]
    assert plan_restore(monkeypatch, capsys, root, database.uri, empty)["chosen"]["name"] == empty


def test_plan_restore_chooses_nothing_when_no_backup_holds_data_the_database_lacks(
    tmp_path, monkeypatch, capsys, database
):
    """Backups of an empty database only: nothing is chosen, whether MLflow has made
    its tables or not (the CLI then refuses and names the newest for --from). Nor when
    the database holds at least what the one backup with runs holds."""
    root, work = tmp_path / "volume" / "_backups", tmp_path / "work"
    upload_with(monkeypatch, capsys, work, root, "experiments 1\n")
    assert plan_restore(monkeypatch, capsys, root, database.uri)["chosen"] is None
    from mlflow import MlflowClient

    client = MlflowClient(database.uri)
    assert plan_restore(monkeypatch, capsys, root, database.uri)["chosen"] is None
    upload_with(monkeypatch, capsys, work, root, "experiments 2\nruns 4\n")
    experiment = client.create_experiment("e")
    for _ in range(4):
        client.create_run(experiment)
    plan = plan_restore(monkeypatch, capsys, root, database.uri)
    assert (plan["chosen"], plan["current"]["runs"]) == (None, 4)
