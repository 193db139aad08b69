"""MLflow run context for Nebari: who ran it, where, and from which workflow.

MLflow loads `NebariRunContextProvider` through the `mlflow.run_context_provider`
entry point and merges its tags into every new run (`mlflow.start_run`,
`MlflowClient` users going through `resolve_tags`). Tags a user passes to
`start_run(tags=...)` still win: MLflow applies them last. What the tags are and
which environment variables they come from: `tags.py`. The provider reads only
the process environment and `sys`, makes no network call and never raises.
"""

from __future__ import annotations

from mlflow.tracking.context.abstract_context import RunContextProvider

from . import flush
from .tags import in_nebari, nebari_tags


class NebariRunContextProvider(RunContextProvider):
    """Attributes runs to the Nebari user and tags them with where they ran."""

    def in_context(self) -> bool:
        try:
            return in_nebari()
        except Exception:
            return False

    def tags(self) -> dict[str, str]:
        try:
            if not in_nebari():
                return {}
            flush.install()  # a run starts: what it logs asynchronously is sent at exit
            return nebari_tags()
        except Exception:
            # A context tag is never worth a failed start_run.
            return {}
