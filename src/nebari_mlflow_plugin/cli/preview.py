"""Offline preview of a deploy: the stage's Terraform, the Helm values and manifests.

No cluster, no cloud, no network. Outputs of earlier Nebari stages that exist
only after a deploy are replaced by placeholders that say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _nebari.stages.infrastructure import _calculate_node_groups

from nebari_mlflow_plugin.cli import backups
from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.config.overrides import merge_values
from nebari_mlflow_plugin.config.schema import ArtifactsType, DatabaseType
from nebari_mlflow_plugin.config.stage_outputs import (
    DOMAIN,
    FORWARD_AUTH,
    KUBECONFIG,
    NODE_SELECTORS,
)
from nebari_mlflow_plugin.lifecycle.survival import what_survives
from nebari_mlflow_plugin.render import notebook_delivery, server_delivery, tfvalues
from nebari_mlflow_plugin.render.injection import user_env
from nebari_mlflow_plugin.render.manifests import PreviewUnavailable, render_chart
from nebari_mlflow_plugin.stages.client_stage import NotebookClientStage
from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage


def placeholder(what: str) -> str:
    return f"PLACEHOLDER-{what}"


def placeholder_outputs(config: Any, stage: MlflowStage) -> dict[str, Any]:
    """Stage outputs as nebari would pass them, with what only a deploy knows marked."""
    domain = config.domain or placeholder("domain-known-after-stage-04")
    return merge_values(
        DOMAIN.nested(domain),
        # Stage 07 names its middleware after this variable; the value is fixed in nebari.
        FORWARD_AUTH.nested("traefik-forward-auth"),
        KUBECONFIG.nested(placeholder("kubeconfig")),
        # Computed by nebari's stage 02 from the config alone: the preview shows the real one.
        NODE_SELECTORS.nested(_calculate_node_groups(config)),
        stage.provider.placeholder_outputs(),
    )


@dataclass
class Preview:
    config: Any
    output_dir: Path
    files: list[Path] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    manifests: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        config, mlflow = self.config, self.config.mlflow
        domain = config.domain or placeholder("domain")
        database = mlflow.database
        if database.type == DatabaseType.external:
            db = f"external PostgreSQL, URI from Secret {database.external_secret.name}"
        else:
            db = f"in-cluster PostgreSQL {database.image.tag} on a {database.size} volume"
        stage = MlflowStage(self.output_dir, config)
        store = stage.provider.artifact_store(config)
        if mlflow.artifacts.type == ArtifactsType.s3:
            s3 = mlflow.artifacts.s3
            artifacts = f"S3-compatible s3://{s3.bucket}/{s3.prefix} ({s3.endpoint_url or 'AWS'})"
        elif store:
            artifacts = f"{store} (created by the stage, reached through workload identity)"
        else:
            artifacts = f"volume of {mlflow.artifacts.size}"
        return {
            "provider": str(config.provider.value),
            "enabled": mlflow.enabled,
            "public URL": naming.public_url(domain, mlflow.route_path),
            "in-cluster tracking URI": naming.internal_tracking_uri(
                config.namespace, mlflow.route_path
            ),
            "MLflow image": f"{mlflow.image.repository}:{mlflow.image.tag}",
            "database": db,
            "artifacts": artifacts,
            "authentication": server_delivery.auth_summary(mlflow),
            "cloud resources": stage.provider.planned_resources(config) or ["none"],
            "user pod env": user_env(config) or {"(none)": "injection off"},
            "user pod mounts": {
                path: f"ConfigMap {volume['name']}"
                for path, volume in notebook_delivery.extra_mounts(mlflow, config.namespace).items()
            }
            or {"(none)": "notebook.client off"},
            "data after": [
                f"{operation} -> {kept}" for operation, kept in what_survives(config).items()
            ],
            "backups": backups.preview_line(config, self.manifests) if self.manifests else "-",
            "kubernetes objects": [f"{m['kind']}/{m['metadata']['name']}" for m in self.manifests],
        }


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def build(config: Any, output_dir: Path) -> Preview:
    """Write the preview under output_dir: stages/mlflow/, values/, manifests/."""
    preview = Preview(config=config, output_dir=output_dir)
    stage = MlflowStage(output_dir, config)
    client = NotebookClientStage(output_dir, config)
    for path, content in {**client.render(), **stage.render()}.items():
        preview.files.append(_write(output_dir / path, content))
    if client.delivered:
        client_vars = output_dir / client.stage_prefix / "preview.tfvars.json"
        preview.files.append(_write(client_vars, json.dumps(client.input_vars({}), indent=2)))
    if not config.mlflow.enabled:
        preview.notes.append("mlflow.enabled is false: the stage only removes the workload")
        return preview

    input_vars = stage.input_vars(placeholder_outputs(config, stage))
    preview.files.append(
        _write(output_dir / "stages/mlflow/preview.tfvars.json", json.dumps(input_vars, indent=2))
    )
    if stage.provider.terraform_root != "volume":
        preview.notes.append(
            "cloud identity (ServiceAccount annotations) is filled by Terraform at deploy "
            "time and is not shown"
        )
    # A cloud's bucket is known by name before it exists: the chart then renders no
    # artifact volume, as on a real deploy.
    store = stage.provider.artifact_store(config) or ""
    try:
        documents = tfvalues.values_documents(
            input_vars, {**tfvalues.VOLUME_LOCALS, "artifacts_destination": store}
        )
    except tfvalues.TerraformUnavailable as exc:
        preview.notes.append(f"Terraform's chart values not evaluated: {exc}")
        from_terraform = {"artifacts": {"destination": store}} if store else {}
        documents = [
            json.loads(input_vars["helm_values"]),
            from_terraform,
            json.loads(input_vars["helm_overrides"]),
        ]
    preview.values = merge_values(*documents)
    preview.files.append(
        _write(output_dir / "values.yaml", yaml.safe_dump(preview.values, sort_keys=False))
    )
    try:
        preview.manifests = render_chart(
            preview.values, namespace=config.namespace, release=naming.RELEASE_NAME
        )
    except PreviewUnavailable as exc:
        preview.notes.append(str(exc))
        return preview
    for manifest in preview.manifests:
        name = f"{manifest['kind']}-{manifest['metadata']['name']}.yaml".lower()
        preview.files.append(
            _write(output_dir / "manifests" / name, yaml.safe_dump(manifest, sort_keys=False))
        )
    return preview
