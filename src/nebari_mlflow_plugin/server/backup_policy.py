"""Which backup a restore brings back by default, and which ones retention may delete.

Stdlib only: the backup and restore pods run it (`nebari_mlflow_server.backup_policy`),
and so can anything that reads manifests. A backup is judged by its manifest's row
counts (the dump's own, read back when it was written):

- after `nebari destroy` + `nebari deploy`, the scheduled backup of the new, empty
  database is the newest; restoring it would bring back nothing. The default is the
  newest complete backup holding data, and rows the current database lacks (a
  database without MLflow's tables lacks even an empty one's Default experiment);
- a week of such empty backups must not push the last one with runs out of
  retention: the newest backup that holds data is never deleted, whatever its kind
  or age.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# What a restore is checked against (manifest "counts"); the order is the report's.
COUNTED = ("experiments", "runs", "metrics", "params", "tags", "registered_models",
           "model_versions")  # fmt: skip
# A new MLflow database holds one row: the "Default" experiment.
EMPTY = {"experiments": 1}


def holds_data(counts: Mapping[str, int]) -> bool:
    """Whether a database with these row counts holds anything a user made."""
    return any(int(counts.get(t) or 0) > EMPTY.get(t, 0) for t in COUNTED)


def missing_from(backup: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """{table: rows the backup holds beyond the current database}, where it holds more."""
    extra = {t: int(backup.get(t) or 0) - int(current.get(t) or 0) for t in COUNTED}
    return {t: n for t, n in extra.items() if n > 0}


def default_restore(
    backups: Sequence[Mapping[str, Any]], current: Mapping[str, int]
) -> Mapping[str, Any] | None:
    """The newest complete backup (`backups` newest first, manifests with "counts")
    that holds data (holds_data) and rows the current database lacks; None when none
    does. A backup of an empty database is never the default, not even over a
    database without MLflow's tables (all counts 0), which lacks its one row."""
    for backup in backups:
        counts = backup.get("counts") or {}
        if backup.get("complete", True) and holds_data(counts) and missing_from(counts, current):
            return backup
    return None


def newest_with_data(backups: Iterable[tuple[str, Mapping[str, Any] | None]]) -> str | None:
    """Name of the newest complete backup ((name, manifest or None), newest first)
    whose database held anything."""
    for name, manifest in backups:
        if manifest and holds_data(manifest.get("counts") or {}):
            return name
    return None


def expired(
    backups: Sequence[tuple[str, Mapping[str, Any] | None]], kind: str, keep: int
) -> list[str]:
    """Backups retention deletes after a backup of `kind` was written: complete ones of
    that kind beyond the newest `keep`, except the newest backup holding data."""
    protected = newest_with_data(backups)
    mine = [name for name, manifest in backups if manifest and manifest.get("kind") == kind]
    return [name for name in mine[keep:] if name != protected]
