"""Build and validate real Nebari configs, and render this plugin's stage.

Validation goes through nebari's own plugin manager (the combined config class
nebari builds from every stage's input schema). Only nebari's cloud look-ups,
which would leave the machine, are replaced — as nebari's own unit tests do.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from _nebari.provider.cloud import amazon_web_services, azure_cloud, google_cloud
from _nebari.stages.infrastructure import LocalProvider
from nebari.plugins import nebari_plugin_manager

from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage

K8S_VERSION = "1.31"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

# Cloud API answers nebari's validators ask for, as an offline cloud would give them.
CLOUD_LOOKUPS: dict[Any, dict[str, Any]] = {
    amazon_web_services: {
        "check_credentials": lambda: None,
        "regions": lambda *a: ["us-west-2"],
        "kubernetes_versions": lambda *a: [K8S_VERSION],
        "zones": lambda *a: ["us-west-2a", "us-west-2b"],
        "instances": lambda *a: {"m5.xlarge": "m5.xlarge", "m5.2xlarge": "m5.2xlarge"},
        "kms_key_arns": lambda *a: {},
    },
    google_cloud: {
        "check_credentials": lambda: None,
        "regions": lambda *a: ["us-central1"],
        "kubernetes_versions": lambda *a: [K8S_VERSION],
        "instances": lambda *a: ["e2-standard-4", "e2-highmem-4", "e2-standard-8"],
    },
    azure_cloud: {
        "check_credentials": lambda: None,
        "kubernetes_versions": lambda *a: [K8S_VERSION],
    },
}

PROVIDER_SECTIONS: dict[str, dict[str, Any]] = {
    "local": {},
    "existing": {"existing": {"kube_context": "my-cluster"}},
    "aws": {"amazon_web_services": {"region": "us-west-2", "kubernetes_version": K8S_VERSION}},
    "gcp": {
        "google_cloud_platform": {
            "project": "my-gcp-project",
            "region": "us-central1",
            "kubernetes_version": K8S_VERSION,
        }
    },
    "azure": {
        "azure": {
            "workload_identity_enabled": True,
            "region": "eastus",
            "kubernetes_version": K8S_VERSION,
            "storage_account_postfix": "abcd1234",
        }
    },
}
PROVIDERS = tuple(PROVIDER_SECTIONS)

# What stages before ours report after they are applied (shapes as nebari writes them).
STAGE_OUTPUTS: dict[str, Any] = {
    "stages/02-infrastructure": {
        "kubeconfig_filename": {"value": "/tmp/kubeconfig"},
        # Set by nebari itself (no "value" wrapper); a default local config's groups.
        "node_selectors": LocalProvider().model_dump()["node_selectors"],
        # Reported by the cloud providers' infrastructure stage only.
        "cluster_oidc_issuer_url": {"value": "https://oidc.example.com/id/ABC"},
        "resource_group_name": {"value": "demo-dev-rg"},
        "project_id": {"value": "my-gcp-project"},
    },
    "stages/04-kubernetes-ingress": {"domain": "nebari.example.com"},
    "stages/07-kubernetes-services": {
        "forward-auth-middleware": {"value": {"name": "traefik-forward-auth"}},
        "forward-auth-service": {"value": {"name": "forwardauth-service"}},
    },
}


def patch_cloud_lookups(monkeypatch) -> None:
    # The plugin's own cloud permission checks are tested in test_cloud_preflight.py.
    monkeypatch.setenv("NEBARI_MLFLOW_SKIP_PREFLIGHT", "1")
    for module, functions in CLOUD_LOOKUPS.items():
        for name, fake in functions.items():
            monkeypatch.setattr(module, name, fake)


def config_dict(provider: str = "local", mlflow: dict | None = None, **extra: Any) -> dict:
    data: dict[str, Any] = {
        "project_name": "demo",
        "namespace": "dev",
        "provider": provider,
        "domain": "nebari.example.com",
        **copy.deepcopy(PROVIDER_SECTIONS[provider]),
        **extra,
    }
    if mlflow is not None:
        data["mlflow"] = mlflow
    return data


def validate(data: dict) -> Any:
    return nebari_plugin_manager.config_schema.model_validate(data)


def render_stage(config: Any, output_dir: Path) -> Path:
    """Write the stage's rendered files as nebari would; return the stage directory."""
    return render_stage_of(MlflowStage(output_dir, config), output_dir)


def render_stage_of(stage: Any, output_dir: Path) -> Path:
    """Write any stage's rendered files under output_dir; return its directory."""
    for path, content in stage.render().items():
        target = output_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return output_dir / stage.stage_prefix


def stage_for(config: Any, output_dir: Path) -> MlflowStage:
    return MlflowStage(output_dir, config)
