"""The gc CronJob's job: `mlflow gc --older-than AGE` on the database of the
environment (MLFLOW_BACKEND_STORE_URI):

    python -m nebari_mlflow_server.gc_runs AGE

MLflow's own command, invoked in-process so the URI (it carries the password) is
never on a command line. Runs' artifacts (mlflow-artifacts:/ URIs) are deleted
through the tracking server (MLFLOW_TRACKING_URI), i.e. in the artifact store the
server itself uses.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable


def parse(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nebari_mlflow_server.gc_runs")
    parser.add_argument("older_than", help="runs deleted longer ago than this, e.g. 30d")
    return parser.parse_args(None if argv is None else list(argv))


def gc_argv(older_than: str, uri: str) -> list[str]:
    return ["--backend-store-uri", uri, "--older-than", older_than]


def main(argv: Iterable[str] | None = None) -> None:
    from mlflow.cli import gc

    args = parse(argv)
    gc.main(gc_argv(args.older_than, os.environ["MLFLOW_BACKEND_STORE_URI"]), prog_name="mlflow gc")


if __name__ == "__main__":
    main()
