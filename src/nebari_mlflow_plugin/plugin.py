"""nebari's entry point: the hook implementations.

Kept out of the package `__init__` because user pods import
`nebari_mlflow_plugin.notebook` (through MLflow's entry points) where nebari is
not installed. nebari imports this module on every command, so it only
registers hooks; the stage and the CLI load when nebari calls them.
"""

from nebari.hookspecs import hookimpl


@hookimpl
def nebari_stage():
    from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage
    from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

    return [NotebookClientStage, MlflowStage]


@hookimpl
def nebari_subcommand(cli):
    from nebari_mlflow_plugin.cli.app import nebari_subcommand as add_mlflow_commands

    add_mlflow_commands(cli)
