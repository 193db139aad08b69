"""Which cluster to read: the one nebari's own stages talk to.

Nebari's stage 02 reports `kubeconfig_filename` (the file it wrote for kind and
the clouds, `~/.kube/config` for existing clusters) and hands OpenTofu
`KUBE_CONFIG_PATH`/`KUBE_CTX` from its `kubernetes_credentials`. Its state
backend uses `<provider>.kube_context` on local and existing; the file nebari
writes for a cloud cluster holds that one cluster. A kubeconfig with several
contexts is common on existing clusters, so ignoring the context reads another
cluster. `MlflowStage.check()` and `nebari mlflow status` both ask here.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.config.stage_outputs import KUBECONFIG

# Providers whose config section names the context (`local.kube_context`, `existing.kube_context`).
CONTEXT_PROVIDERS = ("local", "existing")


@dataclass(frozen=True)
class KubeTarget:
    kubeconfig: str | None  # None: the kubernetes client's default ($KUBECONFIG, ~/.kube/config)
    context: str | None  # None: the kubeconfig's current-context

    def api_client(self) -> Any:
        """A kubernetes ApiClient for this cluster; the client's process-wide default
        configuration is left alone (nebari's own code may use it)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)


def _provider(config: Any) -> str:
    return str(getattr(config.provider, "value", config.provider))


def nebari_kubeconfig(config: Any) -> str:
    """The file stage 02 reports as `kubeconfig_filename`, before it has reported it."""
    if _provider(config) == "existing":
        return os.path.expanduser("~/.kube/config")
    return str(Path(tempfile.gettempdir(), "NEBARI_KUBECONFIG"))


def kube_context(config: Any) -> str | None:
    if _provider(config) not in CONTEXT_PROVIDERS:
        return None
    return getattr(getattr(config, _provider(config), None), "kube_context", None)


def kube_target(
    config: Any,
    stage_outputs: dict[str, Any] | None = None,
    kubeconfig: str | Path | None = None,
    context: str | None = None,
) -> KubeTarget:
    """The cluster nebari deploys to; an explicit `kubeconfig`/`context` wins.

    With stage outputs (a deploy) the file is stage 02's output; without (the
    `status` command) it is the file stage 02 would report, if it exists, else
    the client's default."""
    if kubeconfig is None and stage_outputs is not None:
        kubeconfig = KUBECONFIG.read(stage_outputs)
    if kubeconfig is None and Path(nebari_kubeconfig(config)).is_file():
        kubeconfig = nebari_kubeconfig(config)
    return KubeTarget(
        kubeconfig=str(kubeconfig) if kubeconfig is not None else None,
        context=context if context is not None else kube_context(config),
    )
