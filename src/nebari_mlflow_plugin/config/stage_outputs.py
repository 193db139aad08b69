"""The outputs of Nebari's own stages this plugin reads, in one place.

nebari hands every stage the outputs of the stages before it as
`{stage directory: {output name: value or {"value": ...}}}`; each output here
knows where it sits, how to read it with an error that says what is missing,
and how to stand in for it in an offline preview.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INFRASTRUCTURE = "stages/02-infrastructure"


@dataclass(frozen=True)
class StageOutput:
    stage: str
    path: tuple[str, ...]

    def read(self, stage_outputs: dict[str, Any]) -> Any:
        value: Any = stage_outputs.get(self.stage)
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                raise KeyError(
                    f"nebari-mlflow-plugin needs output {'.'.join(self.path)!r} of "
                    f"{self.stage}; deploy the core Nebari stages first, with a nebari "
                    "version whose stage exports it"
                )
            value = value[key]
        return value

    def get(self, stage_outputs: dict[str, Any], default: Any = None) -> Any:
        try:
            return self.read(stage_outputs)
        except KeyError:
            return default

    def nested(self, value: Any) -> dict[str, Any]:
        """`value` where nebari would put it: {stage: {path...: value}}."""
        for key in reversed(self.path):
            value = {key: value}
        return {self.stage: value}


KUBECONFIG = StageOutput(INFRASTRUCTURE, ("kubeconfig_filename", "value"))
# {"general"|"user"|"worker": {"key": label, "value": value}}, set by nebari itself (not
# Terraform): the node groups Nebari's own services are pinned to.
NODE_SELECTORS = StageOutput(INFRASTRUCTURE, ("node_selectors",))
GENERAL_NODE_GROUP = StageOutput(INFRASTRUCTURE, ("node_selectors", "general"))
# Cloud providers' infrastructure stage only.
OIDC_ISSUER = StageOutput(INFRASTRUCTURE, ("cluster_oidc_issuer_url", "value"))
AZURE_RESOURCE_GROUP = StageOutput(INFRASTRUCTURE, ("resource_group_name", "value"))
GCP_PROJECT = StageOutput(INFRASTRUCTURE, ("project_id", "value"))
DOMAIN = StageOutput("stages/04-kubernetes-ingress", ("domain",))
FORWARD_AUTH = StageOutput(
    "stages/07-kubernetes-services", ("forward-auth-middleware", "value", "name")
)
