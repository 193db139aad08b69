"""Nebari plugin that deploys MLflow.

nebari imports every plugin on every command, so this module only registers
hooks; the stage (and with it Terraform/Kubernetes helpers) loads when nebari
asks for stages.
"""

from nebari.hookspecs import hookimpl

from nebari_mlflow_plugin.__about__ import __version__

__all__ = ["__version__", "nebari_stage", "nebari_subcommand"]


@hookimpl
def nebari_stage():
    from nebari_mlflow_plugin.stage import MlflowStage

    return [MlflowStage]


@hookimpl
def nebari_subcommand(cli):
    from nebari_mlflow_plugin.cli import nebari_subcommand as add_mlflow_commands

    add_mlflow_commands(cli)
