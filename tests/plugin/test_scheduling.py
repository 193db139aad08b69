"""Every pod of the release runs on Nebari's general node group, as Nebari's own services do.

The selector each provider's stage 02 reports is computed by nebari's own
`_calculate_node_groups` for the same config (never copied here); the release is
rendered the way a deploy renders it (input_vars -> Terraform's values -> Helm)
and validated strictly against the Kubernetes schemas.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pydantic
import pytest
from _nebari.stages.infrastructure import _calculate_node_groups
from support import nebari as nb
from support.release import render_release

from nebari_mlflow_plugin.cli import preview
from nebari_mlflow_plugin.config.stage_outputs import GENERAL_NODE_GROUP, INFRASTRUCTURE

K8S_VERSIONS = ["1.29", "1.32"]
# Validated against their CRDs in test_chart.py and test_monitoring_chart.py.
CRD_KINDS = {"IngressRoute", "Middleware", "ServiceMonitor", "PrometheusRule"}
POD_OWNERS = {"Deployment", "StatefulSet", "Job", "CronJob", "DaemonSet", "ReplicaSet", "Pod"}
# A config whose own node groups are not nebari's defaults (local/existing read them).
CUSTOM_GROUPS = {
    group: {"key": "nebari.example.com/pool", "value": f"{group}-pool"}
    for group in ("general", "user", "worker")
}


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def config_for(provider: str, mlflow: dict | None = None, custom_groups: bool = False):
    data = nb.config_dict(provider, mlflow if mlflow is not None else {})
    if custom_groups:
        data.setdefault(provider, {})["node_selectors"] = copy.deepcopy(CUSTOM_GROUPS)
    return nb.validate(data)


def outputs_for(config) -> dict:
    """Stage outputs as nebari hands them, stage 02's node_selectors computed by nebari."""
    outputs = copy.deepcopy(nb.STAGE_OUTPUTS)
    outputs[INFRASTRUCTURE]["node_selectors"] = _calculate_node_groups(config)
    return outputs


def render(config, tmp_path, outputs: dict | None = None) -> list[dict]:
    stage = nb.stage_for(config, tmp_path)
    # is_upgrade: the migration hook Job renders too (pre-upgrade for the internal database).
    return render_release(stage, outputs or outputs_for(config), is_upgrade=True)


def pod_selectors(manifests: list[dict]) -> dict[str, dict | None]:
    """kind/name -> nodeSelector of every object that makes pods."""
    selectors = {}
    for manifest in manifests:
        kind = manifest["kind"]
        if kind not in POD_OWNERS:
            continue
        spec = manifest["spec"]
        if kind == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod_spec = spec if kind == "Pod" else spec["template"]["spec"]
        selectors[f"{kind}/{manifest['metadata']['name']}"] = pod_spec.get("nodeSelector")
    return selectors


def assert_valid(manifests: list[dict]) -> None:
    for manifest in manifests:
        if manifest["kind"] not in CRD_KINDS:
            for version in K8S_VERSIONS:
                kubernetes_validate.validate(manifest, version, strict=True)


CASES = [(p, False) for p in nb.PROVIDERS] + [("local", True), ("existing", True)]


@pytest.mark.parametrize(
    ("provider", "custom_groups"), CASES, ids=[f"{p}{'-custom' * c}" for p, c in CASES]
)
def test_every_pod_runs_on_the_general_node_group(provider, custom_groups, tmp_path):
    config = config_for(provider, custom_groups=custom_groups)
    general = _calculate_node_groups(config)["general"]
    manifests = render(config, tmp_path)
    selectors = pod_selectors(manifests)
    # The server (its init container migrates) and PostgreSQL at least.
    assert {name.split("/")[0] for name in selectors} >= {"Deployment", "StatefulSet"}
    assert selectors == {name: {general["key"]: general["value"]} for name in selectors}
    assert_valid(manifests)


@pytest.mark.parametrize("provider", nb.PROVIDERS)
def test_preview_shows_the_selector_a_deploy_uses(provider, tmp_path):
    """Offline, before stage 02 ran: the provider's placeholder is what nebari computes."""
    config = config_for(provider)
    stage = nb.stage_for(config, tmp_path)
    placeholders = preview.placeholder_outputs(config, stage)
    assert GENERAL_NODE_GROUP.read(placeholders) == _calculate_node_groups(config)["general"]
    assert pod_selectors(render(config, tmp_path, placeholders)) == pod_selectors(
        render(config, tmp_path)
    )


def test_custom_groups_reach_the_preview(tmp_path):
    config = config_for("existing", custom_groups=True)
    placeholders = preview.placeholder_outputs(config, nb.stage_for(config, tmp_path))
    assert GENERAL_NODE_GROUP.read(placeholders) == CUSTOM_GROUPS["general"]


@pytest.mark.parametrize("provider", ["local", "aws"])
def test_admin_node_selector_replaces_the_general_group(provider, tmp_path):
    chosen = {"nebari.example.com/pool": "mlflow", "disktype": "ssd"}
    manifests = render(config_for(provider, {"node_selector": chosen}), tmp_path)
    selectors = pod_selectors(manifests)
    assert selectors and all(selector == chosen for selector in selectors.values())
    assert_valid(manifests)


def test_empty_node_selector_lets_pods_run_anywhere(tmp_path):
    manifests = render(config_for("gcp", {"node_selector": {}}), tmp_path)
    selectors = pod_selectors(manifests)
    assert selectors and all(selector is None for selector in selectors.values())


def test_overrides_node_selector_applies_alone(tmp_path):
    chosen = {"kubernetes.io/hostname": "node-7"}
    manifests = render(config_for("azure", {"overrides": {"nodeSelector": chosen}}), tmp_path)
    selectors = pod_selectors(manifests)
    assert selectors and all(selector == chosen for selector in selectors.values())


def test_missing_node_selectors_output_is_a_clear_error(tmp_path):
    config = config_for("local")
    outputs = copy.deepcopy(nb.STAGE_OUTPUTS)
    del outputs[INFRASTRUCTURE]["node_selectors"]
    with pytest.raises(KeyError, match=r"node_selectors.*02-infrastructure"):
        nb.stage_for(config, tmp_path).input_vars(outputs)
    # A disabled stage renders nothing that needs it.
    disabled = config_for("local", {"enabled": False})
    nb.stage_for(disabled, tmp_path).input_vars(outputs)


@pytest.mark.parametrize(
    "selector",
    [{"bad key!": "x"}, {"pool": "has space"}, {"a" * 64: "x"}, {"pool": "-leading"}],
    ids=["key-chars", "value-chars", "key-too-long", "value-dash"],
)
def test_invalid_node_selector_names_the_field(selector):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow={"node_selector": selector}))
    assert "mlflow.node_selector" in str(err.value)
