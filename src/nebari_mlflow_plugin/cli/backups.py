"""`nebari mlflow backup | backups | restore`: Jobs from the chart's templates
(lifecycle/backup_jobs.py runs them). Restore plans in the cluster (what comes back,
what is replaced), stops the server (scale to 0), writes a pre-restore backup,
restores, starts it (its init container runs `mlflow db upgrade`) and verifies the row
counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nebari_mlflow_plugin.lifecycle.backup_jobs import (  # noqa: F401 (the commands' API)
    BACKUP_TEMPLATE,
    RESTORE_STATES,
    RESTORE_TEMPLATE,
    BackupError,
    Backups,
    Cluster,
    JobFailed,
    Runner,
    cluster_message,
    describe,
    last_json,
    with_action,
    without_affinity,
)

# --- the commands (registered in cli.py) ---------------------------------------------


def _open(config_path, kubeconfig, context, timeout: float) -> tuple[Any, Backups]:
    from nebari_mlflow_plugin.cli.common import load_config
    from nebari_mlflow_plugin.lifecycle.kube_target import kube_target

    config = load_config(config_path)
    target = kube_target(config, kubeconfig=kubeconfig, context=context)
    cluster = Cluster(config.namespace, target.kubeconfig, target.context)
    return config, Backups(Runner(cluster, timeout=timeout), config)


def _table(title: str, rows: list[dict[str, str]]):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title))
    for column in rows[0] if rows else ["name"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(str(v)) for v in row.values()))  # cluster answers, literally
    return table


def _counts(result: dict) -> list[dict[str, str]]:
    expected, found = result.get("expected") or {}, result.get("found") or {}
    return [{"table": t, "backup": str(expected[t]), "database": str(found.get(t, "?"))}
            for t in expected]  # fmt: skip


def run_command(action: Callable[[], None]) -> None:
    """`action` with the CLI's one-line errors; an unreachable cluster is one line too."""
    from nebari_mlflow_plugin.cli.common import CommandError, one_line_errors

    with one_line_errors():
        try:
            action()
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        except Exception as exc:
            message = cluster_message(exc)
            if message:
                raise CommandError(message) from None
            raise


def backup_command(config_path, kubeconfig, context, list_only: bool, timeout: float) -> None:
    from rich import print as rprint
    from rich.text import Text

    def action() -> None:
        _, backups = _open(config_path, kubeconfig, context, timeout)
        if list_only:
            listing = backups.list()
            rows = [describe(b) for b in listing["backups"]]
            rprint(_table(f"MLflow backups in {listing['root']} (newest first)", rows))
            if not rows:
                rprint(Text("no backups yet"))
            return
        made = backups.backup()
        manifest = made["manifest"]
        rprint(Text(f"backup {made['backup']} written to {made['location']}"))
        counts = manifest["counts"]
        rprint(
            _table("rows in the backup", [{"table": t, "rows": str(n)} for t, n in counts.items()])
        )

    run_command(action)


def restore_sides(plan: dict) -> list[dict[str, str]]:
    """Rows of what a restore brings back (the backup) and what it replaces (the
    database now), per counted table."""
    chosen, current = plan["chosen"].get("counts") or {}, plan.get("current") or {}
    return [{"table": t, "brought back (backup)": str(chosen.get(t, "?")),
             "replaced (database now)": str(current.get(t, "?"))}
            for t in chosen or current]  # fmt: skip


def nothing_to_restore(plan: dict) -> str:
    """Why the default restore brings nothing back, and the flag that restores anyway."""
    runs = (plan.get("current") or {}).get("runs", "?")
    listed = plan.get("backups") or []
    if not listed:
        return f"no backup in {plan['root']}: nothing to restore"
    return (
        f"nothing to bring back: no backup in {plan['root']} holds data the database lacks "
        f"(it holds {runs} runs; a backup of an empty database is never the default). To "
        f"restore one anyway, name it: --from {listed[0]['name']} (the newest; `nebari "
        "mlflow backups` lists them all)"
    )


def restore_command(config_path, kubeconfig, context, name: str | None, yes: bool,
                    timeout: float, without_undo: bool = False) -> None:  # fmt: skip
    import typer
    from rich import print as rprint
    from rich.text import Text

    def action() -> None:
        config, backups = _open(config_path, kubeconfig, context, timeout)
        backups.check_undo(without_undo)
        plan = backups.plan_restore(name)
        chosen = plan.get("chosen")
        if chosen is None:
            raise BackupError(nothing_to_restore(plan))
        shown = describe(chosen)
        rprint(Text(f"backup {chosen['name']} ({shown['kind']}, {shown['created']}) "
                    f"from {plan['root']}"))  # fmt: skip
        rprint(_table("what the restore brings back and what it replaces", restore_sides(plan)))
        undo = ("no pre-restore backup (external database: your snapshot is the undo)"
                if backups.external() else "the database backed up (pre-restore)")  # fmt: skip
        if not yes and not typer.confirm(
            f"Replace everything MLflow holds in namespace {config.namespace} with this "
            f"backup? The server is stopped, {undo}, then restored",
            default=False,
        ):
            raise BackupError("nothing changed: restore not confirmed")
        result = backups.restore({**chosen, "root": plan["root"]}, wait_server=timeout)
        rprint(_table(f"restored {chosen['name']}: rows", _counts(result)))
        rprint(Text(f"MLflow serves backup {chosen['name']} again (schema upgraded by the server)"))
        if backups.pre_restored:
            undo = backups.pre_restored["backup"]
            rprint(Text(f"what it replaced is backup {undo}: `nebari mlflow restore -c "
                        f"<config> --from {undo}` undoes this restore"))  # fmt: skip
        else:
            rprint(Text("external database: no pre-restore backup was written; the snapshot "
                        "you took is the undo"))  # fmt: skip

    run_command(action)


def preview_line(config: Any, manifests: list[dict]) -> str:
    """What `nebari mlflow render` says about backups, read from the rendered objects."""
    mlflow = config.mlflow
    restore = next((m for m in manifests if m["metadata"]["name"] == RESTORE_TEMPLATE), None)
    if restore is None:
        return "not rendered"
    pod = restore["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    root = next(e["value"] for e in fetch["env"] if e["name"] == "MLFLOW_BACKUP_ROOT")
    if "://" not in root:
        mount = next(m for m in fetch["volumeMounts"] if root.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        claim = volume["persistentVolumeClaim"]["claimName"]
        root = (
            f"directory {root[len(mount['mountPath']) + 1 :]} of the artifact volume "
            f"(claim {claim}; nebari destroy deletes it with the namespace)"
        )
    if getattr(mlflow.database.type, "value", mlflow.database.type) == "external":
        return f"the external database's provider's; `nebari mlflow restore` reads {root}"
    if not mlflow.backup.enabled:
        return f"off (mlflow.backup.enabled: false); `nebari mlflow restore` reads {root}"
    return (
        f"{mlflow.backup.schedule} (UTC) and before every schema upgrade, newest "
        f"{mlflow.backup.keep} of each kind kept, to {root}"
    )
