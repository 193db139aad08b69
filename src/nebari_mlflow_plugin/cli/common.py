"""What every `nebari mlflow` command shares: loading the config offline, and errors
printed as one line instead of a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer


class CommandError(Exception):
    """An expected failure: printed as one line, exit code 1."""


def _validation_message(exc) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error["loc"]) or "config"
        parts.append(f"{location}: {error['msg']}")
    return "invalid config: " + "; ".join(parts)


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    import pydantic

    from nebari_mlflow_plugin.render.manifests import ChartError

    def fail(message: str) -> typer.Exit:
        typer.secho(f"error: {' '.join(message.split())}", fg="red", err=True)
        return typer.Exit(1)

    try:
        yield
    except pydantic.ValidationError as exc:
        raise fail(_validation_message(exc)) from None
    except (CommandError, ChartError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from None


def load_config(config_path: Path):
    from nebari_mlflow_plugin.cli.offline import read_config

    return read_config(config_path, offline=True)
