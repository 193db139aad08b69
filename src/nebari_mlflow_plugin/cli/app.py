"""`nebari mlflow`: offline preview, status of a deployment, pre-flight checks.

Registered through nebari's `nebari_subcommand` hook. Everything heavy (Helm,
kubernetes, cloud SDKs) is imported inside the commands, never at nebari start.
Errors are one line, not tracebacks.
"""

from __future__ import annotations

from pathlib import Path

import typer

from nebari_mlflow_plugin.cli.common import CommandError, load_config, one_line_errors

CONFIG_OPTION = typer.Option(..., "--config", "-c", help="nebari-config.yaml path")


def render(config_path: Path, output: Path) -> None:
    from rich import print as rprint
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from nebari_mlflow_plugin.cli import preview

    with one_line_errors():
        config = load_config(config_path)
        result = preview.build(config, output)
    table = Table(title=Text(f"MLflow on Nebari: {config.project_name} ({config.namespace})"))
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in result.summary().items():
        if isinstance(value, dict):
            value = "\n".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "\n".join(value) or "-"
        table.add_row(Text(key), Text(str(value)))  # config values print literally
    rprint(table)
    for note in result.notes:
        rprint(f"[yellow]note:[/yellow] {escape(note)}")
    rprint(Text(f"wrote {len(result.files)} files under {output}"))


def status(config_path: Path, kubeconfig: Path | None, context: str | None) -> None:
    from rich import print as rprint
    from rich.table import Table
    from rich.text import Text

    from nebari_mlflow_plugin.config import naming
    from nebari_mlflow_plugin.lifecycle.kube_target import kube_target
    from nebari_mlflow_plugin.lifecycle.status import KubernetesSource, collect

    with one_line_errors():
        config = load_config(config_path)
        target = kube_target(config, kubeconfig=kubeconfig, context=context)
        try:
            source = KubernetesSource(config.namespace, target.kubeconfig, target.context)
            report = collect(source, config.namespace, config.mlflow.route_path)
        except Exception as exc:
            if type(exc).__module__.startswith(("kubernetes", "urllib3")):
                raise CommandError(f"no cluster reachable: {exc}".splitlines()[0]) from None
            raise
    table = Table(title=Text(f"MLflow in namespace {config.namespace}"))
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for what, ok, detail in report.rows:
        # Details come from the cluster: printed literally, never as rich markup.
        ok_cell = Text("yes", style="green") if ok else Text("no", style="red")
        table.add_row(Text(what), ok_cell, Text(detail))
    rprint(table)
    if report.version:
        rprint(Text(f"MLflow version: {report.version}"))
    host = config.mlflow.host or config.domain or "<domain>"
    rprint(Text(f"URL: {naming.public_url(host, config.mlflow.route_path)}"))
    if not report.healthy:
        raise typer.Exit(1)


def preflight(config_path: Path) -> None:
    """Run the provider's checks with the cloud's answers and print each one with
    whether it ran: "passed" only when every check ran and passed. Exit 1 when one
    failed, 2 when one could not run."""
    from rich import print as rprint
    from rich.table import Table
    from rich.text import Text

    from nebari_mlflow_plugin.providers import preflight as checks
    from nebari_mlflow_plugin.providers import provider_for

    with one_line_errors():
        config = load_config(config_path)  # offline: nebari's own cloud look-ups are not the point
        provider = provider_for(config.provider)
        name = config.provider.value
        if not config.mlflow.enabled:
            rprint("mlflow.enabled is false: nothing to check")
            return
        if checks.skipped_by_env():
            rprint(Text(f"pre-flight not run: {checks.SKIP_ENV} is set", style="yellow"))
            raise typer.Exit(2)
        results = provider.preflight_checks(config)  # check_config already ran
    if not results:
        rprint(f"nothing to check for provider {name}: the stage creates no cloud resources")
        return
    style = {checks.PASSED: "green", checks.FAILED: "red", checks.NOT_CHECKED: "yellow"}
    table = Table(title=Text(f"pre-flight for provider {name}"))
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for r in results:
        # Details come from the cloud: printed literally, never as rich markup.
        table.add_row(Text(r.name), Text(r.status, style=style.get(r.status, "")), Text(r.detail))
    rprint(table)
    statuses = [r.status for r in results]
    if checks.FAILED in statuses:
        rprint(Text(f"pre-flight failed for provider {name}", style="red"))
        raise typer.Exit(1)
    if checks.NOT_CHECKED in statuses:
        count = statuses.count(checks.NOT_CHECKED)
        rprint(
            Text(f"pre-flight incomplete for provider {name}: {count} check(s) not run", "yellow")
        )
        raise typer.Exit(2)
    rprint(Text(f"pre-flight passed for provider {name}", style="green"))


def migrate(config_path: Path, finish: bool, state: Path | None, offline: bool,
            delete_volumes: bool, target: dict) -> None:  # fmt: skip
    """Taking over a 2025.10.x deployment: the plan (--check), or its end (--finish)."""
    from rich import print as rprint
    from rich.text import Text

    from nebari_mlflow_plugin.cli import migrate_command

    with one_line_errors():
        config = load_config(config_path)
        try:
            if finish:
                lines, ok = migrate_command.finish(config, delete_volumes, target), True
            else:
                lines, ok = migrate_command.check(config, state, offline, target)
        except Exception as exc:
            if type(exc).__module__.startswith(("kubernetes", "urllib3")):
                raise CommandError(f"cluster: {exc}".splitlines()[0]) from None
            raise
    for line in lines:
        rprint(Text(line))  # names from the cluster and state: never rich markup
    if not ok:
        raise typer.Exit(1)


def nebari_subcommand(cli: typer.Typer) -> None:
    app = typer.Typer(
        help="MLflow on Nebari: offline preview, status and pre-flight checks.",
        no_args_is_help=True,
        add_completion=False,
    )
    cli.add_typer(app, name="mlflow", rich_help_panel="Additional Commands")

    @app.command("render")
    def render_command(
        config: Path = CONFIG_OPTION,
        output: Path = typer.Option(Path("mlflow-preview"), "--output", "-o", help="directory"),
    ) -> None:
        """Preview a deploy offline: Terraform, Helm values and Kubernetes manifests."""
        render(config, output)

    @app.command("status")
    def status_command(
        config: Path = CONFIG_OPTION,
        kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig file"),
        context: str = typer.Option(None, "--context", help="kubeconfig context"),
    ) -> None:
        """Is the deployed MLflow healthy? Exit code 1 when not."""
        status(config, kubeconfig, context)

    @app.command("migrate")
    def migrate_command(
        config: Path = CONFIG_OPTION,
        check: bool = typer.Option(True, "--check", help="print the plan, change nothing"),
        finish: bool = typer.Option(False, "--finish", help="remove the verified old release"),
        state: Path = typer.Option(None, "--state", help="the stage's state (`tofu state pull`)"),
        offline: bool = typer.Option(False, "--offline", help="do not read the cluster"),
        delete_volumes: bool = typer.Option(
            False, "--delete-volumes", help="with --finish: also the old release's volumes"
        ),
        kubeconfig: Path = typer.Option(None, "--kubeconfig", help="kubeconfig file"),
        context: str = typer.Option(None, "--context", help="kubeconfig context"),
    ) -> None:
        """Upgrade from nebari-mlflow-plugin 2025.10.x: what the next deploy does (--check),
        then remove the old release once its data is verified here (--finish)."""
        target = {"kubeconfig": kubeconfig, "context": context}
        migrate(config, finish, state, offline, delete_volumes, target)

    kubeconfig_option = typer.Option(None, "--kubeconfig", help="kubeconfig file")
    context_option = typer.Option(None, "--context", help="kubeconfig context")
    timeout_option = typer.Option(3600.0, "--timeout", help="seconds to wait for each step")

    @app.command("backup")
    def backup_command(
        config: Path = CONFIG_OPTION,
        list_only: bool = typer.Option(False, "--list", help="list the backups instead"),
        kubeconfig: Path = kubeconfig_option,
        context: str = context_option,
        timeout: float = timeout_option,
    ) -> None:
        """Back up the database now (into the artifact store); prints where it went."""
        from nebari_mlflow_plugin.cli import backups

        backups.backup_command(config, kubeconfig, context, list_only, timeout)

    @app.command("backups")
    def backups_command(
        config: Path = CONFIG_OPTION,
        kubeconfig: Path = kubeconfig_option,
        context: str = context_option,
        timeout: float = timeout_option,
    ) -> None:
        """List the backups, newest first."""
        from nebari_mlflow_plugin.cli import backups

        backups.backup_command(config, kubeconfig, context, True, timeout)

    @app.command("restore")
    def restore_command(
        config: Path = CONFIG_OPTION,
        name: str = typer.Option(None, "--from", help="backup name (default: the newest)"),
        yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation"),
        kubeconfig: Path = kubeconfig_option,
        context: str = context_option,
        timeout: float = timeout_option,
        without_undo: bool = typer.Option(
            False,
            "--without-pre-restore-backup",
            help="external database only: restore although the plugin cannot back it up "
            "first (take a snapshot with its provider before)",
        ),
    ) -> None:
        """Restore a backup: stop the server, back up, restore, upgrade, start, verify."""
        from nebari_mlflow_plugin.cli import backups

        backups.restore_command(config, kubeconfig, context, name, yes, timeout, without_undo)

    @app.command("preflight")
    def preflight_command(config: Path = CONFIG_OPTION) -> None:
        """Check credentials, permissions and workload identity before deploying."""
        preflight(config)
