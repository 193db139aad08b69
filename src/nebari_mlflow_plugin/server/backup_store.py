"""The MLflow-image side of backups and restores (the shell side, pg_dump and
pg_restore in the postgres image, is the chart's files/backup-*.sh):

    python -m nebari_mlflow_server.backup_store ACTION [ARG...]

    plan WAIT      (server pod) write <work>/plan when the schema is about to be upgraded
    prepare        (server pod) only create the backup directory on the artifact volume
    upload         send <work>/mlflow.dump + manifest.json to <root>/<name>/, then retention
                   (never deleting the newest backup holding data: backup_policy)
    list           the backups under <root>, newest first
    fetch [NAME]   download a backup (default: the newest complete one) into <work>
    plan-restore [NAME]  the database's row counts and the backup a restore brings back
                   (default: the newest holding rows the database lacks)
    verify NAME [--exact]  the database's row counts against the backup's manifest

It talks to the database and the artifact store directly (never to the MLflow
server's API, which may require credentials), through MLflow's artifact
repositories (boto3, google-cloud-storage, azure-storage-blob, local files). Each
action prints its result as one JSON line last, which `nebari mlflow
backup|backups|restore` reads from the pod log.

From the environment: MLFLOW_BACKUP_ROOT (where backups are: `<store>-backups` or
the artifact volume's `_backups`), MLFLOW_BACKUP_WORK (the pod's scratch volume),
MLFLOW_BACKUP_KIND (scheduled, pre-upgrade, pre-destroy, pre-restore, on-demand,
restore), MLFLOW_BACKUP_KEEP (backups of this kind retention keeps),
MLFLOW_BACKEND_STORE_URI.
Each backup is `<root>/<UTC time>-<kind>/{mlflow.dump,manifest.json}`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .backup_policy import COUNTED, default_restore, expired
from .job_support import reason, until

# What a restore is checked against; every table's rows are recorded in "rows".
DUMP, MANIFEST, CONTENTS, PLAN = "mlflow.dump", "manifest.json", "contents.txt", "plan"

Backups = list[tuple[str, dict[str, Any] | None]]


class Failure(Exception):
    """What went wrong, in one line: the job exits with it."""


def failed(message: str) -> NoReturn:
    raise Failure(message)


@dataclass(frozen=True)
class Settings:
    root: str
    work: Path
    kind: str
    keep: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            root=env["MLFLOW_BACKUP_ROOT"].rstrip("/"),
            work=Path(env.get("MLFLOW_BACKUP_WORK", "/backup")),
            kind=env.get("MLFLOW_BACKUP_KIND", "scheduled"),
            keep=int(env.get("MLFLOW_BACKUP_KEEP", "7")),
        )

    def failure(self, action: str, message: str) -> str:
        """The exit message of `action`."""
        if self.kind == "pre-upgrade":  # in the server pod: nothing may change the schema unsaved
            message += (
                "; the schema upgrade waits for this backup (the kubelet re-runs this container)"
            )
        return f"mlflow backup {action} failed: {message}"


def result(**fields: Any) -> None:
    print(json.dumps(fields, sort_keys=True), flush=True)


def repo(root: str, path: str = "") -> Any:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(f"{root}/{path}".rstrip("/"))


def engine() -> Any:
    import sqlalchemy

    uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    return sqlalchemy.create_engine(
        uri, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": 5}
    )


def backups(root: str) -> Backups:
    """[(name, manifest or None)] under `root`, newest first (names start with UTC time)."""
    found: Backups = []
    scratch = tempfile.mkdtemp()
    for entry in repo(root).list_artifacts():
        if not entry.is_dir:
            continue
        name = entry.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            path = repo(root, name).download_artifacts(MANIFEST, scratch)
            found.append((name, json.loads(Path(path).read_text())))
        except Exception:  # no manifest (yet): an upload in progress or one that died
            found.append((name, None))
    shutil.rmtree(scratch, ignore_errors=True)
    return sorted(found, key=lambda item: item[0], reverse=True)


def mkroot(root: str) -> None:
    if "://" not in root:  # the artifact volume: the directory the server never serves
        Path(root).mkdir(parents=True, exist_ok=True)


def plan(settings: Settings, wait: int) -> None:
    """Decide, at every start of the server pod, whether its migration will change the
    schema: then <work>/plan names the revisions and the dump containers run."""
    import sqlalchemy

    mkroot(settings.root)
    (settings.work / PLAN).unlink(missing_ok=True)  # decided afresh at every start
    db = engine()
    until(lambda: db.connect().close() or True, "the database", wait, failed)
    # As MLflow's _is_empty_database, before importing MLflow (seconds) for its head.
    if all(t.startswith("alembic_") for t in sqlalchemy.inspect(db).get_table_names()):
        print("pre-upgrade backup: new database, nothing to back up", flush=True)
        return
    from mlflow.store.db import utils

    current, head = utils._get_schema_version(db), utils._get_latest_schema_revision()
    if current == head:
        print(f"pre-upgrade backup: schema already at {head}, no backup needed", flush=True)
        return
    (settings.work / PLAN).write_text(f"{current} {head}\n")
    print(
        f"pre-upgrade backup: schema at {current}, this MLflow upgrades it to {head}: "
        "backing it up first",
        flush=True,
    )


def beyond_retention(entries: Backups, kind: str, keep: int) -> list[str]:
    """The complete backups of `kind` past the newest `keep` (entries newest first);
    incomplete ones and other kinds are never chosen, nor the newest backup that holds
    data, whatever its kind or age (backup_policy)."""
    return expired(entries, kind, keep)


def retention(settings: Settings) -> None:
    """Delete complete backups of this kind beyond the newest KEEP; others stay, and so
    does the newest backup holding data."""
    for name in beyond_retention(backups(settings.root), settings.kind, settings.keep):
        repo(settings.root).delete_artifacts(name)
        print(
            f"retention (keep {settings.keep} {settings.kind}): deleted {settings.root}/{name}",
            flush=True,
        )


def parse_contents(text: str) -> tuple[str | None, dict[str, int]]:
    """(schema revision, rows per table) from the dump container's contents.txt: one
    `<table> <rows>` line each, and `schema_revision <revision>`."""
    contents = dict(line.split(" ", 1) for line in text.splitlines())
    revision = contents.pop("schema_revision", None)
    return revision, {table: int(count) for table, count in contents.items()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backup_name(now: datetime.datetime, kind: str) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}"


def build_manifest(
    name: str,
    kind: str,
    now: datetime.datetime,
    contents: tuple[str | None, dict[str, int]],
    dump: dict[str, Any],
    mlflow_version: str,
    upgrade: str | None = None,
) -> dict[str, Any]:
    """What manifest.json records of a backup; `upgrade`: the plan's "<from> <to>"."""
    revision, rows = contents
    manifest = {
        "name": name,
        "kind": kind,
        "created": now.isoformat(timespec="seconds"),
        "schema_revision": revision,
        "counts": {t: rows.get(t, 0) for t in COUNTED},
        "rows": rows,
        "mlflow_version": mlflow_version,
        "format": "pg_dump --format=custom",
        "dump": dump,
    }
    if upgrade is not None:
        manifest["upgrade"] = dict(zip(("from", "to"), upgrade.split(), strict=False))
    return manifest


def upload(settings: Settings) -> None:
    work, root, kind = settings.work, settings.root, settings.kind
    dump = work / DUMP
    if kind == "pre-upgrade" and not (work / PLAN).exists():
        print("pre-upgrade backup: not needed", flush=True)
        return
    if not dump.is_file():
        failed(f"no {dump}: the dump container did not write it")
    now = datetime.datetime.now(datetime.timezone.utc)
    name = backup_name(now, kind)
    import mlflow

    manifest = build_manifest(
        name,
        kind,
        now,
        parse_contents((work / CONTENTS).read_text()),
        {"file": DUMP, "bytes": dump.stat().st_size, "sha256": sha256(dump)},
        mlflow.__version__,
        (work / PLAN).read_text() if (work / PLAN).exists() else None,
    )
    (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    mkroot(root)
    try:
        repo(root).log_artifact(str(dump), name)
        repo(root).log_artifact(str(work / MANIFEST), name)  # last: marks the backup complete
    except Exception as exc:
        failed(f"could not write {root}/{name}: {type(exc).__name__}: {reason(exc)}")
    dump.unlink()  # the pod's scratch space is the node's disk
    print(f"backup {name} written to {root}/{name}", flush=True)
    retention(settings)
    result(backup=name, location=f"{root}/{name}", manifest=manifest)


def select(entries: Backups, name: str, root: str) -> tuple[str, dict[str, Any]]:
    """The backup `name` (empty: the newest complete one) among `entries`, newest first."""
    complete = [(n, m) for n, m in entries if m]
    if not name:
        if not complete:
            failed(f"no complete backup in {root}")
        return complete[0]
    manifest = dict(entries).get(name, False)
    if manifest is False:
        known = ", ".join(n for n, _ in complete[:5]) or "none"
        failed(f"no backup named {name!r} in {root} (newest: {known})")
    if manifest is None:
        failed(f"backup {name!r} in {root} has no {MANIFEST}: it is incomplete")
    return name, manifest


def libpq_service(uri: str, path: Path) -> None:
    """The database of `uri` as a libpq service file, for the postgres image's tools
    (they cannot read SQLAlchemy URIs; a file keeps the password off argv)."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(uri)
    if not url.get_backend_name().startswith("postgres"):
        failed(f"restore needs a PostgreSQL database, not {url.get_backend_name()}")
    options = {"host": url.host, "port": url.port or 5432, "dbname": url.database,
               "user": url.username, "password": url.password, **url.query}  # fmt: skip
    path.write_text("[mlflow]\n" + "".join(f"{k}={v}\n" for k, v in options.items() if v))
    path.chmod(0o600)


def fetch(settings: Settings, name: str) -> None:
    root, work = settings.root, settings.work
    name, manifest = select(backups(root), name, root)
    path = Path(repo(root, name).download_artifacts(DUMP, str(work)))
    if sha256(path) != manifest["dump"]["sha256"]:
        failed(f"{root}/{name}/{DUMP} does not match its manifest's sha256: not restoring it")
    (work / MANIFEST).write_text(json.dumps(manifest))
    libpq_service(os.environ["MLFLOW_BACKEND_STORE_URI"], work / "pg_service.conf")
    result(backup=name, location=f"{root}/{name}", manifest=manifest)


def mismatches(
    expected: dict[str, int], found: dict[str, int], exact: bool
) -> dict[str, tuple[int, int]]:
    """{table: (expected, found)} of the counted tables that differ: exactly, right after
    the restore; fewer rows only, once the server is back (users may add to it)."""
    return {
        t: (expected[t], found[t])
        for t in COUNTED
        if (found[t] != expected[t] if exact else found[t] < expected[t])
    }


def verify(settings: Settings, name: str, exact: bool) -> None:
    from sqlalchemy import text

    name, manifest = select(backups(settings.root), name, settings.root)
    with engine().connect() as connection:
        found = {t: connection.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTED}
    expected = manifest["counts"]
    wrong = mismatches(expected, found, exact)
    result(backup=name, expected=expected, found=found, exact=exact, ok=not wrong)
    if wrong:
        failed(
            "row counts differ from the backup's manifest: "
            + ", ".join(
                f"{t} {e} in the backup, {f} in the database" for t, (e, f) in wrong.items()
            )
        )


def current_counts() -> dict[str, int]:
    """The database's rows of the counted tables (0 for a table not created yet)."""
    import sqlalchemy

    db = engine()
    tables = set(sqlalchemy.inspect(db).get_table_names())
    with db.connect() as connection:
        return {
            t: int(connection.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar())
            if t in tables
            else 0
            for t in COUNTED
        }


def plan_restore(settings: Settings, name: str) -> None:
    """What a restore brings back and replaces: the backup named, else the newest
    complete one holding data the current database lacks (never one of an empty
    database, whatever the database holds); `chosen` null when none does."""
    current, entries = current_counts(), backups(settings.root)
    listed = [{**(m or {}), "name": n, "complete": m is not None} for n, m in entries]
    if name:
        name, manifest = select(entries, name, settings.root)
        chosen = {**manifest, "name": name, "complete": True}
    else:
        chosen = default_restore(listed, current)
    result(root=settings.root, current=current, chosen=chosen, backups=listed[:20])


def listing(settings: Settings) -> None:
    entries = backups(settings.root)
    result(
        root=settings.root,
        backups=[{**(m or {}), "name": n, "complete": m is not None} for n, m in entries],
    )


def parse(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nebari_mlflow_server.backup_store")
    actions = parser.add_subparsers(dest="action", required=True)
    plan_ = actions.add_parser("plan", help="(server pod) decide on a pre-upgrade backup")
    plan_.add_argument("wait", type=int, help="seconds to wait for the database")
    actions.add_parser("prepare", help="(server pod) create the backup directory")
    actions.add_parser("upload", help="store the dump and its manifest, then retention")
    actions.add_parser("list", help="the backups, newest first")
    fetch_ = actions.add_parser("fetch", help="download a backup for the restore")
    fetch_.add_argument("name", nargs="?", default="", help="default: the newest complete")
    plan_restore_ = actions.add_parser(
        "plan-restore", help="the database's rows and the backup a restore brings back"
    )
    plan_restore_.add_argument(
        "name", nargs="?", default="", help="default: the newest holding what the database lacks"
    )
    verify_ = actions.add_parser("verify", help="row counts against a backup's manifest")
    verify_.add_argument("name", nargs="?", default="", help="default: the newest complete")
    verify_.add_argument("--exact", action="store_true", help="equal, not at least")
    return parser.parse_args(None if argv is None else list(argv))


def run(args: argparse.Namespace, settings: Settings) -> None:
    if args.action == "plan":
        plan(settings, args.wait)
    elif args.action == "prepare":
        mkroot(settings.root)
    elif args.action == "upload":
        upload(settings)
    elif args.action == "list":
        listing(settings)
    elif args.action == "fetch":
        fetch(settings, args.name)
    elif args.action == "plan-restore":
        plan_restore(settings, args.name)
    else:
        verify(settings, args.name, args.exact)


def main(argv: Iterable[str] | None = None) -> None:
    args = parse(argv)
    settings = Settings.from_env()
    try:
        run(args, settings)
    except Failure as failure:
        sys.exit(settings.failure(args.action, str(failure)))
    except Exception as exc:
        traceback.print_exc()
        sys.exit(settings.failure(args.action, f"{type(exc).__name__}: {reason(exc)}"))


if __name__ == "__main__":
    main()
