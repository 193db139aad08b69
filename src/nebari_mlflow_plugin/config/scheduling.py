"""Where the chart's pods run: Nebari's general node group unless the admin says otherwise.

Nebari pins its own services (Keycloak, JupyterHub's hub, conda-store) to the
`general` node group and leaves the `user` and `worker` groups, which autoscale
down to zero, to notebooks and Dask. The MLflow server and its PostgreSQL are
services too: on a user node they would be evicted with it and keep it from
scaling down. Stage 02 reports the selector of each group (`node_selectors`);
the server, PostgreSQL and migration pods all get the general one.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.config.schema import MLflow
from nebari_mlflow_plugin.config.stage_outputs import GENERAL_NODE_GROUP


def node_selector(mlflow: MLflow, stage_outputs: dict[str, Any]) -> dict[str, str]:
    """The chart's `nodeSelector`: `mlflow.node_selector` as given; else none of ours
    when `mlflow.overrides.nodeSelector` is set (that one then applies alone); else
    Nebari's general node group."""
    if mlflow.node_selector is not None:
        return dict(mlflow.node_selector)
    if "nodeSelector" in (mlflow.overrides or {}):
        return {}
    if mlflow.enabled:
        group = GENERAL_NODE_GROUP.read(stage_outputs)
    else:
        group = GENERAL_NODE_GROUP.get(stage_outputs)
        if not group:
            return {}
    return {str(group["key"]): str(group["value"])}
