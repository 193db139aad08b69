"""One MLflow run shared by every step of an Argo workflow.

Recipe (what kedro-kubeflow did with `kubeflow_run_id`):

1. A first step runs `python -m nebari_mlflow_plugin.notebook.workflow start
   --output /tmp/mlflow_run_id`; Argo publishes the file as an output
   parameter (`valueFrom.path`). The run is tagged with the workflow name and
   uid; a retried first step finds that run again instead of creating another.
2. Later steps get `MLFLOW_RUN_ID={{steps.<first>.outputs.parameters.run-id}}`
   in their env; `mlflow.start_run()` / `mlflow.log_metric()` resume that run.
3. An exit handler runs `... workflow end --status {{workflow.status}}`; with
   no run id it finds the run by `ARGO_WORKFLOW_UID` and ends it with the
   workflow's status (Succeeded -> FINISHED, Failed/Error -> FAILED, else KILLED).

Every step must use the same experiment (`MLFLOW_EXPERIMENT_NAME`/`_ID`, or
`--experiment-name`), since the run is looked up inside it.

Steps copy the server's JUPYTERHUB_API_TOKEN, which JupyterHub deletes when the server
stops; they send the workflow token the user's JupyterLab server keeps (keeper.py)
instead while it is valid (a step that finds none while the server runs makes it), so
a workflow outlives its server. For a job running longer
than half of its lifetime, `... workflow token --hours N` in JupyterLab before
submitting makes a longer one (notebook/tokens.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from .tags import WORKFLOW_NAME_TAG, WORKFLOW_UID_TAG, clean_value, getenv

WORKFLOW_STATUS_TAG = "nebari.argo.workflow.status"
DEFAULT_EXPERIMENT_ID = "0"

# Argo's {{workflow.status}} -> MLflow's terminal run status.
_STATUS = {
    "succeeded": RunStatus.to_string(RunStatus.FINISHED),
    "finished": RunStatus.to_string(RunStatus.FINISHED),
    "failed": RunStatus.to_string(RunStatus.FAILED),
    "error": RunStatus.to_string(RunStatus.FAILED),
}
_KILLED = RunStatus.to_string(RunStatus.KILLED)


def mlflow_status(workflow_status: str) -> str:
    """MLflow run status for an Argo workflow status (unknown -> KILLED)."""
    return _STATUS.get(workflow_status.strip().lower(), _KILLED)


def resolve_experiment_id(client: MlflowClient, experiment_name: str | None = None) -> str:
    """The experiment MLflow itself would use: argument, env name, env id, default.

    Creates a named experiment that does not exist yet, as MLflow does for
    `MLFLOW_EXPERIMENT_NAME` (per-user experiments are created on first use).
    """
    name = experiment_name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        # Created once even when several steps start at the same time.
        from nebari_mlflow_plugin.notebook.spool import ensure_experiment

        return ensure_experiment(client, name)
    return os.environ.get("MLFLOW_EXPERIMENT_ID") or DEFAULT_EXPERIMENT_ID


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_workflow_run(
    workflow_uid: str, *, experiment_id: str, client: MlflowClient | None = None
) -> str | None:
    """Id of the oldest run tagged with `workflow_uid` in the experiment, if any."""
    client = client or MlflowClient()
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{WORKFLOW_UID_TAG}` = {_quote(workflow_uid)}",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def start_workflow_run(
    *,
    experiment_name: str | None = None,
    run_name: str | None = None,
    workflow_name: str | None = None,
    workflow_uid: str | None = None,
    tags: Mapping[str, str] | None = None,
    output: str | os.PathLike[str] | None = None,
) -> str:
    """Create (or, for the same workflow uid, reuse) the workflow's run.

    Workflow name/uid default to Argo's `ARGO_WORKFLOW_NAME`/`ARGO_WORKFLOW_UID`.
    Without a uid a new run is created each time (useful outside Argo). The run
    is not ended here: later steps resume it through `MLFLOW_RUN_ID`. The id is
    returned and, if `output` is given, written there for Argo's output
    parameters.
    """
    client = MlflowClient()
    experiment_id = resolve_experiment_id(client, experiment_name)
    name = clean_value(workflow_name) if workflow_name else getenv("ARGO_WORKFLOW_NAME")
    uid = clean_value(workflow_uid) if workflow_uid else getenv("ARGO_WORKFLOW_UID")

    run_id = find_workflow_run(uid, experiment_id=experiment_id, client=client) if uid else None
    if run_id is None:
        run_tags: dict[str, str] = {}
        if name:
            run_tags[WORKFLOW_NAME_TAG] = name
        if uid:
            run_tags[WORKFLOW_UID_TAG] = uid
        run_tags.update(tags or {})
        # Same context tags (user, nebari.*) as a fluent start_run; explicit last.
        run = client.create_run(
            experiment_id, tags=resolve_tags(run_tags), run_name=run_name or name or None
        )
        run_id = run.info.run_id
    if output is not None:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id)
    return run_id


def end_workflow_run(
    *,
    run_id: str | None = None,
    status: str = "Succeeded",
    experiment_name: str | None = None,
    workflow_uid: str | None = None,
) -> str:
    """End the workflow's run with the workflow's status; returns the run id.

    The run is `run_id`, else `MLFLOW_RUN_ID`, else the run tagged with the
    workflow uid (argument or `ARGO_WORKFLOW_UID`).
    """
    client = MlflowClient()
    run_id = run_id or getenv("MLFLOW_RUN_ID")
    if not run_id:
        uid = clean_value(workflow_uid) if workflow_uid else getenv("ARGO_WORKFLOW_UID")
        if not uid:
            raise LookupError("no run id: pass --run-id, set MLFLOW_RUN_ID or ARGO_WORKFLOW_UID")
        experiment_id = resolve_experiment_id(client, experiment_name)
        run_id = find_workflow_run(uid, experiment_id=experiment_id, client=client)
        if run_id is None:
            raise LookupError(
                f"no run tagged {WORKFLOW_UID_TAG}={uid} in experiment {experiment_id}"
            )
    client.set_tag(run_id, WORKFLOW_STATUS_TAG, clean_value(status) or "unknown")
    client.set_terminated(run_id, status=mlflow_status(status))
    return run_id


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nebari_mlflow_plugin.notebook.workflow",
        description="Share one MLflow run across the steps of an Argo workflow.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="create or reuse the run; print its id")
    start.add_argument("--experiment-name")
    start.add_argument("--run-name")
    start.add_argument("--workflow-name", help="default: $ARGO_WORKFLOW_NAME")
    start.add_argument("--workflow-uid", help="default: $ARGO_WORKFLOW_UID")
    start.add_argument("--tag", action="append", type=_tag, default=[], metavar="KEY=VALUE")
    start.add_argument("--output", help="also write the run id to this file")

    end = commands.add_parser("end", help="end the run with the workflow's status")
    end.add_argument("--run-id", help="default: $MLFLOW_RUN_ID, else look up by workflow uid")
    end.add_argument("--status", default="Succeeded", help="Argo's {{workflow.status}}")
    end.add_argument("--experiment-name")
    end.add_argument("--workflow-uid", help="default: $ARGO_WORKFLOW_UID")

    token = commands.add_parser(
        "token", help="make a longer workflow token (in JupyterLab, before submitting)"
    )
    token.add_argument("--hours", type=float, help="lifetime (default: the deployment's)")

    args = parser.parse_args(argv)
    if args.command == "token":
        from .tokens import main as token_main

        return token_main(["--hours", str(args.hours)] if args.hours else [])
    try:
        # MLflow prints "View run ..." links; keep stdout for the run id alone.
        with contextlib.redirect_stdout(sys.stderr):
            run_id = _run(args)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # Only the id on stdout, so Argo's `outputs.result` is usable as is.
    print(run_id)
    return 0


def _run(args: argparse.Namespace) -> str:
    if args.command == "start":
        return start_workflow_run(
            experiment_name=args.experiment_name,
            run_name=args.run_name,
            workflow_name=args.workflow_name,
            workflow_uid=args.workflow_uid,
            tags=dict(args.tag),
            output=args.output,
        )
    return end_workflow_run(
        run_id=args.run_id,
        status=args.status,
        experiment_name=args.experiment_name,
        workflow_uid=args.workflow_uid,
    )


if __name__ == "__main__":
    sys.exit(main())
