"""The monitoring add-on of helm/mlflow: ServiceMonitors, PrometheusRule, Grafana dashboard
and PostgreSQL exporter, rendered by Helm's engine and checked against the
kube-prometheus-stack 58.4.0 CRDs, Kubernetes' schemas and Nebari's own monitoring module.

What Prometheus does with them (scrape, evaluate every expression) is tested for real in
tests/e2e/test_monitoring.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import _nebari.stages.kubernetes_services as services_stage
import jsonschema
import kubernetes_validate
import pytest
import yaml
from support import nebari as nb
from support.crds import PROMETHEUS_CRDS
from support.crds import crd_schemas as load_crd_schemas
from support.release import render_release
from test_chart import K8S_VERSIONS, NAMESPACE, PG_SECRET, of_kind, pods_selected, selects

from nebari_mlflow_plugin import versions
from nebari_mlflow_plugin.assets import chart_dir
from nebari_mlflow_plugin.config.overrides import merge_values as merged
from nebari_mlflow_plugin.render.manifests import ChartError

CRDS = PROMETHEUS_CRDS
# Nebari's monitoring stage (kube-prometheus-stack release, Grafana sidecar settings).
NEBARI_MONITORING = (
    Path(services_stage.__file__).parent
    / "template"
    / "modules"
    / "kubernetes"
    / "services"
    / "monitoring"
)
OPERATOR_GROUP = "monitoring.coreos.com/"
# Labels the Prometheus Operator (0.73, in kube-prometheus-stack 58.4.0) puts on the
# Prometheus pods of Nebari's release `nebari`.
PROMETHEUS_POD_LABELS = {
    "app.kubernetes.io/name": "prometheus",
    "app.kubernetes.io/managed-by": "prometheus-operator",
    "app.kubernetes.io/instance": "nebari-kube-prometheus-sta-prometheus",
    "prometheus": "nebari-kube-prometheus-sta-prometheus",
    "operator.prometheus.io/name": "nebari-kube-prometheus-sta-prometheus",
    "operator.prometheus.io/shard": "0",
}

INTERNAL = {"database": {"internal": {"passwordSecret": PG_SECRET}}}
MONITORED = {**INTERNAL, "monitoring": {"enabled": True, "labels": {"release": "nebari"}}}
EXTERNAL = {
    "database": {"mode": "external", "external": {"secretName": "mlflow-db", "secretKey": "uri"}},
    "monitoring": {"enabled": True},
}


@pytest.fixture(scope="module")
def monitored(render_chart):
    return render_chart(MONITORED, NAMESPACE)


@pytest.fixture(scope="module")
def external(render_chart):
    return render_chart(EXTERNAL, NAMESPACE)


def operator_objects(manifests: list[dict]) -> list[dict]:
    return [m for m in manifests if m["apiVersion"].startswith(OPERATOR_GROUP)]


def named(manifests: list[dict], kind: str, component: str) -> dict:
    (found,) = [
        m
        for m in of_kind(manifests, kind)
        if m["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return found


def dashboard_configmap(manifests: list[dict]) -> dict:
    (cm,) = [
        m for m in of_kind(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    return cm


def nebari_monitoring_tf() -> str:
    return (NEBARI_MONITORING / "main.tf").read_text()


def strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused (the API server prunes them
    silently, which would hide a misspelt key)."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schemas() -> dict[tuple[str, str], dict]:
    return load_crd_schemas(CRDS, strict)


# -- rendered only with monitoring ------------------------------------------------------------


def test_nothing_for_monitoring_without_it(render_chart):
    manifests = render_chart(INTERNAL, NAMESPACE)
    assert not operator_objects(manifests)
    assert not [m for m in manifests if "grafana_dashboard" in m["metadata"].get("labels", {})]
    components = {
        m["metadata"].get("labels", {}).get("app.kubernetes.io/component") for m in manifests
    }
    assert "postgres-exporter" not in components


def test_monitoring_renders_monitors_rules_dashboard_and_exporter(monitored):
    assert {m["kind"] for m in operator_objects(monitored)} == {"ServiceMonitor", "PrometheusRule"}
    assert dashboard_configmap(monitored)
    assert named(monitored, "Deployment", "postgres-exporter")


def test_monitoring_needs_the_server_metrics(render_chart):
    with pytest.raises(ChartError, match=r"server\.exposePrometheus"):
        render_chart(merged(MONITORED, {"server": {"exposePrometheus": False}}), NAMESPACE)


@pytest.mark.parametrize(
    "values",
    [
        {"monitoring": {"alerts": {"errorRatio": 5}}},
        {"monitoring": {"alerts": {"databaseVolumeRatio": 0}}},
        {"monitoring": {"interval": "30 seconds"}},
        {"monitoring": {"dashbord": {}}},
        {"monitoring": {"postgresExporter": {"image": {"tag": "latest tag"}}}},
    ],
)
def test_schema_rejects_bad_monitoring_values(render_chart, values):
    with pytest.raises(ChartError):
        render_chart(merged(MONITORED, values), NAMESPACE)


@pytest.mark.parametrize("nebari_monitoring", [True, False])
def test_plugin_follows_nebaris_monitoring_switch(tmp_path, nebari_monitoring):
    config = nb.validate(
        {**nb.config_dict("local", {}), "monitoring": {"enabled": nebari_monitoring}}
    )
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    assert bool(operator_objects(manifests)) is nebari_monitoring
    assert bool([m for m in manifests if "grafana_dashboard" in m["metadata"]["labels"]]) is (
        nebari_monitoring
    )


def test_plugin_leaves_monitoring_off_without_mlflow_metrics(tmp_path):
    config = nb.validate(nb.config_dict("local", {"prometheus": False}))
    assert config.monitoring.enabled
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    assert not operator_objects(manifests)


# -- what Nebari's Prometheus and Grafana select -----------------------------------------------


def test_plugin_labels_match_nebaris_prometheus_release(tmp_path):
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by
    `release: <its Helm release>` (serviceMonitorSelectorNilUsesHelmValues and
    ruleSelectorNilUsesHelmValues default true, Nebari's values leave them): the release
    name is read from Nebari's module."""
    tf = nebari_monitoring_tf()
    release = re.search(
        r'resource "helm_release" "prometheus-grafana" \{\s*name\s*=\s*"([^"]+)"', tf
    ).group(1)
    assert "serviceMonitorSelector" not in tf and "ruleSelector" not in tf
    config = nb.validate(nb.config_dict("local", {}))
    objects = operator_objects(render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS))
    assert {m["kind"] for m in objects} == {"ServiceMonitor", "PrometheusRule"}
    for obj in objects:
        assert obj["metadata"]["labels"]["release"] == release, obj["metadata"]["name"]
        assert obj["metadata"]["namespace"] == config.namespace


def test_dashboard_configmap_is_what_nebaris_grafana_sidecar_loads(monitored):
    """Nebari labels its own dashboard ConfigMaps `grafana_dashboard = "1"` and files them
    in folders through the sidecar's folderAnnotation: both are read from its module."""
    tf = nebari_monitoring_tf()
    folder_annotation = re.search(r'folderAnnotation\s*:\s*"([^"]+)"', tf).group(1)
    assert re.search(r"foldersFromFilesStructure\s*:\s*true", tf)
    label, value = re.search(r'(grafana_dashboard)\s*=\s*"([^"]+)"', tf).groups()
    cm = dashboard_configmap(monitored)
    assert cm["metadata"]["labels"][label] == value
    # The default folder is the one Nebari's own service dashboards are in.
    nebari_folders = {p.name for p in (NEBARI_MONITORING / "dashboards").iterdir() if p.is_dir()}
    assert cm["metadata"]["annotations"][folder_annotation] in nebari_folders
    assert cm["metadata"]["namespace"] == NAMESPACE


def test_dashboard_folder_follows_the_values(render_chart):
    manifests = render_chart(merged(MONITORED, {"monitoring": {"dashboard": {"folder": "ML"}}}))
    assert "ML" in dashboard_configmap(manifests)["metadata"]["annotations"].values()


def test_service_monitors_select_the_services_and_named_ports(monitored):
    monitors = of_kind(monitored, "ServiceMonitor")
    assert len(monitors) == 2
    for monitor in monitors:
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        (service,) = [
            s
            for s in of_kind(monitored, "Service")
            if selects(spec["selector"], s["metadata"]["labels"])
        ]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in ports
        # ... and the Service reaches pods that expose that port.
        (workload,) = pods_selected(monitored, {"matchLabels": service["spec"]["selector"]})
        container_ports = {
            p["name"]
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_metrics_path_is_at_the_root_whatever_the_prefix(render_chart):
    manifests = render_chart(merged(MONITORED, {"server": {"staticPrefix": "/tracking"}}))
    monitor = named(manifests, "ServiceMonitor", "server")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert not endpoint["path"].startswith("/tracking")


# -- schemas -----------------------------------------------------------------------------------


def test_operator_objects_match_their_crds(monitored):
    schemas = crd_schemas()
    objects = operator_objects(monitored)
    assert objects
    for obj in objects:
        # Not jsonschema.validate: it checks the schema first, and the CRDs carry Go
        # regexes (`^(?i)...`) Python's re refuses, in fields these objects leave unset.
        jsonschema.Draft7Validator(schemas[(obj["apiVersion"], obj["kind"])]).validate(obj)


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_core_objects_validate_strictly(monitored, k8s_version):
    for manifest in monitored:
        if not manifest["apiVersion"].startswith(OPERATOR_GROUP):
            kubernetes_validate.validate(manifest, k8s_version, strict=True)


def test_dashboard_json_parses_and_every_panel_queries_prometheus(monitored):
    text = dashboard_configmap(monitored)["data"]
    (body,) = text.values()
    dashboard = json.loads(body)
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["type"] == "prometheus"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    used = {
        name
        for panel in panels
        for target in panel["targets"]
        for name in re.findall(r"\$(\w+)", target["expr"])
    }
    assert used - {"__rate_interval"} <= variables


# -- the rules ---------------------------------------------------------------------------------


def rules(manifests: list[dict]) -> dict[str, dict]:
    (rule,) = of_kind(manifests, "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def test_alerts_cover_server_errors_latency_and_database_volume(monitored):
    alerts = rules(monitored)
    assert {"MLflowServerDown", "MLflowHighErrorRate", "MLflowHighLatency",
            "MLflowDatabaseVolumeFilling"} <= set(alerts)  # fmt: skip
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"]


def test_alert_thresholds_follow_the_values(render_chart):
    values = {"errorRatio": 0.125, "latencyP95Seconds": 7.5, "databaseVolumeRatio": 0.875}
    alerts = rules(render_chart(merged(MONITORED, {"monitoring": {"alerts": values}})))
    for name, threshold in (("MLflowHighErrorRate", 0.125), ("MLflowHighLatency", 7.5),
                            ("MLflowDatabaseVolumeFilling", 0.875)):  # fmt: skip
        assert re.search(rf">\s*{re.escape(str(threshold))}\s*$", alerts[name]["expr"]), name


def test_alerts_can_be_switched_off(render_chart):
    manifests = render_chart(merged(MONITORED, {"monitoring": {"alerts": {"enabled": False}}}))
    assert not of_kind(manifests, "PrometheusRule")
    assert of_kind(manifests, "ServiceMonitor")


def test_external_database_has_no_exporter_nor_database_alerts(external):
    assert [m["metadata"]["name"] for m in of_kind(external, "Deployment")] == ["mlflow"]
    assert len(of_kind(external, "ServiceMonitor")) == 1
    assert not {"MLflowDatabaseDown", "MLflowDatabaseVolumeFilling"} & set(rules(external))


# -- the exporter ------------------------------------------------------------------------------


def test_exporter_runs_the_pinned_official_image_non_root_read_only(monitored):
    exporter = named(monitored, "Deployment", "postgres-exporter")
    pod = exporter["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert (
        c["image"] == f"{versions.POSTGRES_EXPORTER_IMAGE}:{versions.POSTGRES_EXPORTER_IMAGE_TAG}"
    )
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_chart_default_exporter_image_is_the_pinned_one():
    values = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    image = values["monitoring"]["postgresExporter"]["image"]
    assert image["repository"] == versions.POSTGRES_EXPORTER_IMAGE
    assert image["tag"] == versions.POSTGRES_EXPORTER_IMAGE_TAG


def test_exporter_password_comes_only_from_the_database_secret(monitored):
    (sts,) = of_kind(monitored, "StatefulSet")
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    database_ref = next(e for e in pg["env"] if e["name"] == "POSTGRES_PASSWORD")["valueFrom"]
    (c,) = named(monitored, "Deployment", "postgres-exporter")["spec"]["template"]["spec"][
        "containers"
    ]
    secret_env = [e for e in c["env"] if "valueFrom" in e]
    assert [e["valueFrom"] for e in secret_env] == [database_ref]
    assert all("value" in e for e in c["env"] if e not in secret_env)
    assert not any("pass" in a.lower() for a in c.get("args", []) + c.get("command", []))


def admitted(manifests: list[dict], target: dict, peer_labels: dict[str, str], port: str) -> bool:
    """Some NetworkPolicy selecting `target`'s pods admits a pod with `peer_labels` in the
    same namespace on the container port named `port` (NetworkPolicies add up)."""
    pod_labels = target["spec"]["template"]["metadata"]["labels"]
    container_ports = {
        p["name"]: p["containerPort"]
        for c in target["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for policy in of_kind(manifests, "NetworkPolicy"):
        if not selects(policy["spec"]["podSelector"], pod_labels):
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports and container_ports[port] not in ports:
                continue
            for peer in rule.get("from", []):
                if set(peer) == {"podSelector"} and selects(peer["podSelector"], peer_labels):
                    return True
    return False


def test_network_policies_admit_prometheus_and_the_exporter(tmp_path):
    config = nb.validate(nb.config_dict("local", {}))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    server = next(m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"] == "mlflow")
    exporter = named(manifests, "Deployment", "postgres-exporter")
    (database,) = of_kind(manifests, "StatefulSet")
    exporter_labels = exporter["spec"]["template"]["metadata"]["labels"]
    assert admitted(manifests, server, PROMETHEUS_POD_LABELS, "http")
    assert admitted(manifests, exporter, PROMETHEUS_POD_LABELS, "metrics")
    assert admitted(manifests, database, exporter_labels, "postgres")
    # ... and nobody else reaches the exporter.
    user_pod = {"component": "singleuser-server"}
    assert not admitted(manifests, exporter, user_pod, "metrics")
    assert not admitted(manifests, database, PROMETHEUS_POD_LABELS, "postgres")
