"""The restore default and retention, on manifests as the backup pod writes them (the
journey through real pods: tests/e2e/test_destroy_backup.py)."""

from __future__ import annotations

from nebari_mlflow_plugin.server import backup_policy as policy

EMPTY = {"experiments": 1, "runs": 0, "metrics": 0, "params": 0, "tags": 0,
         "registered_models": 0, "model_versions": 0}  # fmt: skip
SEEDED = {**EMPTY, "experiments": 2, "runs": 3, "metrics": 12, "params": 3, "tags": 9,
          "registered_models": 1, "model_versions": 1}  # fmt: skip


def manifest(name: str, kind: str, counts: dict) -> dict:
    return {"name": name, "kind": kind, "counts": counts, "complete": True}


def test_an_empty_database_holds_no_data_a_default_experiment_and_one_run_do():
    assert not policy.holds_data(EMPTY)
    assert policy.holds_data({**EMPTY, "runs": 1})
    assert policy.holds_data({**EMPTY, "experiments": 2})  # an experiment without runs


def test_the_default_restore_skips_backups_of_an_empty_database():
    """destroy -> deploy -> the scheduled backup of the empty database is the newest."""
    newest_first = [
        manifest("20261205T023000Z-scheduled", "scheduled", EMPTY),
        manifest("20261204T180000Z-pre-destroy", "pre-destroy", SEEDED),
        manifest("20261204T023000Z-scheduled", "scheduled", {**SEEDED, "runs": 2}),
    ]
    chosen = policy.default_restore(newest_first, current=EMPTY)
    assert chosen["name"] == "20261204T180000Z-pre-destroy"
    # A database that already holds all of it: nothing to bring back by default.
    assert policy.default_restore(newest_first, current=SEEDED) is None
    incomplete = [{**newest_first[1], "complete": False}, newest_first[2]]
    assert policy.default_restore(incomplete, current=EMPTY)["name"].endswith("Z-scheduled")


def test_into_a_database_without_tables_the_default_is_never_a_backup_of_an_empty_one():
    """MLflow has not made its tables yet (every count 0): an empty database's backup
    holds one row more (the Default experiment) but no data; the older one with runs is
    the default, and with only empty backups there is none."""
    no_tables = dict.fromkeys(EMPTY, 0)
    newest_first = [manifest("20261205T023000Z-scheduled", "scheduled", EMPTY),
                    manifest("20261204T023000Z-scheduled", "scheduled", SEEDED)]  # fmt: skip
    assert policy.default_restore(newest_first, no_tables)["name"] == "20261204T023000Z-scheduled"
    assert policy.default_restore(newest_first[:1], no_tables) is None


def test_retention_keeps_the_newest_backup_with_data_whatever_its_kind_or_age():
    """Ten scheduled backups of an empty database after the last one with runs."""
    with_data = ("20261120T023000Z-scheduled", manifest("", "scheduled", SEEDED))
    empties = [(f"202612{d:02d}T023000Z-scheduled", manifest("", "scheduled", EMPTY))
               for d in range(10, 0, -1)]  # fmt: skip
    newest_first = [*empties, with_data]
    deleted = policy.expired(newest_first, "scheduled", keep=7)
    assert with_data[0] not in deleted
    assert deleted == [name for name, _ in empties[7:]]
    # Of another kind, it still stays.
    pre_destroy = ("20261120T023000Z-pre-destroy", manifest("", "pre-destroy", SEEDED))
    older = [(f"202611{d:02d}T000000Z-pre-destroy", manifest("", "pre-destroy", EMPTY))
             for d in (19, 18)]  # fmt: skip
    assert policy.expired([*empties, pre_destroy, *older], "pre-destroy", keep=1) == [
        older[0][0], older[1][0]]  # fmt: skip
    # Incomplete backups (no manifest) are never counted or deleted here.
    assert policy.expired([("x-scheduled", None), *empties], "scheduled", keep=9) == [
        empties[9][0]]  # fmt: skip
