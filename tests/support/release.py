"""What `nebari deploy` would hand to the cluster, computed offline with real tools.

config --MlflowStage.input_vars()--> Terraform variables
       --provider-free Terraform run of modules/mlflow/values.tf--> Terraform's values
       --helm-python-sdk (Helm's Go engine) over the three values documents--> manifests

Only the Terraform expressions that need no provider are evaluated (values.tf is
kept free of resources for this); the password Secret comes from
random_password on a cluster and is named, not valued, in the values.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.config.overrides import merge_values
from nebari_mlflow_plugin.render import server_delivery, tfvalues
from nebari_mlflow_plugin.render.manifests import render_chart
from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage


def server_package() -> dict[str, Any]:
    """What the plugin always gives the chart besides the values a test writes: the
    server package its pods run (chart tests render bare values with it)."""
    return {
        "serverPackage": server_delivery.package_files(),
        "serverPackageMetadata": server_delivery.metadata_files(),
    }


def values_documents(
    stage: MlflowStage, stage_outputs: dict[str, Any], provider_locals: dict | None = None
) -> list[dict[str, Any]]:
    return tfvalues.values_documents(stage.input_vars(stage_outputs), provider_locals)


def render_release(
    stage: MlflowStage,
    stage_outputs: dict[str, Any],
    provider_locals: dict | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    values = merge_values(*values_documents(stage, stage_outputs, provider_locals))
    return render_chart(values, namespace=stage.config.namespace, release="mlflow", **kwargs)


def find(manifests: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        m for m in manifests
        if m.get("kind") == kind and (name is None or m["metadata"].get("name") == name)
    ]  # fmt: skip
