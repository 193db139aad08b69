"""The Nebari context of a process: who runs it, where, from which workflow.

Standard library only, so the cell-capture extension can read it in a kernel
without importing MLflow; `context.py` serves it to MLflow as a run-context
provider.

Environment contract (all optional; read at `start_run`, never cached):

==========================  ===============================================
Variable                    Meaning / source
==========================  ===============================================
JUPYTERHUB_USER             the Nebari user (JupyterHub spawner; Nebari's
                            workflow controller copies the user's pod env
                            into Argo workflow pods, so it is the submitter
                            there too)
PREFERRED_USERNAME          fallback user (set in Nebari user pods; used
                            by argo-jupyter-scheduler)
NEBARI_PROJECT              Nebari project name (injected by this plugin)
NEBARI_NAMESPACE            Kubernetes namespace of the deployment
                            (injected by this plugin); falls back to
                            POD_NAMESPACE, then KUBERNETES_NAMESPACE
JUPYTERHUB_SERVER_NAME      named server ("" for the default server)
CONDA_PREFIX / sys.prefix   environment the kernel runs in
ARGO_POD_NAME / POD_NAME /  Kubernetes pod (HOSTNAME is cut to 63 chars by
HOSTNAME                    Kubernetes, so the full names are preferred)
JPY_SESSION_NAME            notebook path (jupyter_server >= 2 sets it for
                            kernels; ipykernel copies it to `__session__`)
ARGO_WORKFLOW_NAME,         set by Argo Workflows (>= 3.4) in every step
ARGO_WORKFLOW_UID,          container
ARGO_NODE_ID, ARGO_TEMPLATE
NEBARI_JOB_ID               scheduled notebook job id; otherwise derived
                            from argo-jupyter-scheduler's workflow names
                            `job-<id>` / `job-def-<definition id>-<time>`
NEBARI_MLFLOW_CONTEXT       "0"/"false"/"off"/"no" disables the tags
==========================  ===============================================

The tags apply only in Nebari (JUPYTERHUB_USER, NEBARI_PROJECT or
NEBARI_NAMESPACE set): a bare Argo pod elsewhere is not Nebari. It reads only
the process environment and `sys`, makes no network call and never raises.
"""

from __future__ import annotations

import json
import os
import re
import sys

# Tag names: the contract with users' searches, dashboards and workflow.py.
USER_TAG = "mlflow.user"
PROJECT_TAG = "nebari.project"
NAMESPACE_TAG = "nebari.namespace"
SERVER_NAME_TAG = "nebari.jupyterhub.server_name"
CONDA_ENV_PATH_TAG = "nebari.conda.env_path"
CONDA_ENV_TAG = "nebari.conda.env"
POD_TAG = "nebari.pod"
NOTEBOOK_PATH_TAG = "nebari.notebook.path"
WORKFLOW_NAME_TAG = "nebari.argo.workflow.name"
WORKFLOW_UID_TAG = "nebari.argo.workflow.uid"
NODE_ID_TAG = "nebari.argo.node_id"
TEMPLATE_TAG = "nebari.argo.template"
JOB_ID_TAG = "nebari.job.id"
JOB_DEFINITION_ID_TAG = "nebari.job.definition_id"

# MLflow 3.x accepts 8000 characters per tag value, older servers and schemas
# 5000; stay under the lowest so a run is never rejected for a long path.
MAX_TAG_VALUE_LENGTH = 5000
_ELLIPSIS = "..."

_DISABLED = {"0", "false", "off", "no"}
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_JOB_WORKFLOW = re.compile(rf"^job-({_UUID})$")
_JOB_DEF_WORKFLOW = re.compile(rf"^job-def-({_UUID})(?:-\d+)?$")
# conda-store in Nebari: {store}/{namespace}/envs/{namespace}-{name}
_CONDA_STORE_ENV = re.compile(r"/(?P<ns>[^/]+)/envs/(?P<dir>[^/]+)/?$")


def clean_value(value: object, limit: int = MAX_TAG_VALUE_LENGTH) -> str:
    """Make `value` a tag value every MLflow server and backend DB accepts.

    Environment values may carry undecodable bytes (surrogate escapes, which
    JSON encoding rejects), NULs (PostgreSQL rejects them) or be huge.
    """
    text = value if isinstance(value, str) else str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = text.replace("\x00", "").strip()
    if len(text) > limit:
        text = text[: limit - len(_ELLIPSIS)] + _ELLIPSIS
    return text


def getenv(*names: str, environ: dict[str, str] | None = None) -> str:
    """First non-blank value among `names`, cleaned; "" when none is set."""
    env = os.environ if environ is None else environ
    for name in names:
        value = env.get(name)
        if value and value.strip():
            return clean_value(value)
    return ""


def nebari_user() -> str:
    """The real user: JupyterHub's, else the Keycloak preferred username."""
    return getenv("JUPYTERHUB_USER", "PREFERRED_USERNAME")


# Set in an Argo workflow step (scheduled notebook jobs are Argo workflows too) or by a
# scheduled job, never in a JupyterLab server. Named one by one: Nebari's user pods carry
# ARGO_SERVER, ARGO_TOKEN... for the argo CLI, which workflow steps copy too.
WORKFLOW_STEP_ENV = (
    "ARGO_WORKFLOW_NAME", "ARGO_WORKFLOW_UID", "ARGO_NODE_ID", "ARGO_POD_NAME",
    "ARGO_TEMPLATE", "ARGO_CONTAINER_NAME", "NEBARI_JOB_ID",
)  # fmt: skip


def in_workflow_step() -> bool:
    """True in a workflow step or scheduled job (which copy the user pod's env)."""
    return any(os.environ.get(name, "").strip() for name in WORKFLOW_STEP_ENV)


def in_nebari() -> bool:
    """True in a Nebari user pod or a Nebari workflow pod, unless disabled."""
    if os.environ.get("NEBARI_MLFLOW_CONTEXT", "").strip().lower() in _DISABLED:
        return False
    return bool(getenv("JUPYTERHUB_USER", "NEBARI_PROJECT", "NEBARI_NAMESPACE"))


def conda_env_tags(prefix: str) -> dict[str, str]:
    """Path of the environment and, for conda-store envs, `<namespace>/<name>`."""
    if not prefix:
        return {}
    tags = {CONDA_ENV_PATH_TAG: clean_value(prefix)}
    match = _CONDA_STORE_ENV.search(prefix)
    if match:
        namespace, directory = match["ns"], match["dir"]
        if directory.startswith(namespace + "-") and len(directory) > len(namespace) + 1:
            tags[CONDA_ENV_TAG] = clean_value(f"{namespace}/{directory[len(namespace) + 1 :]}")
    return tags


def notebook_path() -> str:
    """Notebook path from the kernel's env, else from IPython's `__session__`.

    IPython is consulted only if already imported: importing it here would cost
    far more than the tags are worth in a plain script.
    """
    path = getenv("JPY_SESSION_NAME")
    if path:
        return path
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return ""
    shell = ipython.get_ipython()
    session = getattr(shell, "user_ns", {}).get("__session__") if shell is not None else None
    return clean_value(session) if isinstance(session, str) and session.strip() else ""


def argo_tags() -> dict[str, str]:
    """Workflow, step and scheduled-job identity inside an Argo step pod."""
    tags: dict[str, str] = {}
    workflow = getenv("ARGO_WORKFLOW_NAME")
    for tag, value in (
        (WORKFLOW_NAME_TAG, workflow),
        (WORKFLOW_UID_TAG, getenv("ARGO_WORKFLOW_UID")),
        (NODE_ID_TAG, getenv("ARGO_NODE_ID")),
    ):
        if value:
            tags[tag] = value
    template = os.environ.get("ARGO_TEMPLATE", "")
    if template:
        try:
            name = json.loads(template).get("name")
        except (ValueError, AttributeError):
            name = None
        if isinstance(name, str) and name.strip():
            tags[TEMPLATE_TAG] = clean_value(name)
    job_id = getenv("NEBARI_JOB_ID")
    if job_id:
        tags[JOB_ID_TAG] = job_id
    elif match := _JOB_WORKFLOW.match(workflow):
        tags[JOB_ID_TAG] = match[1]
    if match := _JOB_DEF_WORKFLOW.match(workflow):
        tags[JOB_DEFINITION_ID_TAG] = match[1]
    return tags


def nebari_tags() -> dict[str, str]:
    """All tags for the current process; raises only on a bug (callers guard)."""
    tags: dict[str, str] = {}
    user = nebari_user()
    if user:
        tags[USER_TAG] = user
    for tag, value in (
        (PROJECT_TAG, getenv("NEBARI_PROJECT")),
        (NAMESPACE_TAG, getenv("NEBARI_NAMESPACE", "POD_NAMESPACE", "KUBERNETES_NAMESPACE")),
        (SERVER_NAME_TAG, getenv("JUPYTERHUB_SERVER_NAME")),
        (POD_TAG, getenv("ARGO_POD_NAME", "POD_NAME", "HOSTNAME")),
    ):
        if value:
            tags[tag] = value
    tags.update(conda_env_tags(os.environ.get("CONDA_PREFIX") or sys.prefix))
    path = notebook_path()
    if path:
        tags[NOTEBOOK_PATH_TAG] = path
    tags.update(argo_tags())
    return tags
