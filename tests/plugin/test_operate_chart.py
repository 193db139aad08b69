"""High availability and the gc CronJob, rendered by Helm's engine and validated
against strict Kubernetes schemas (see test_chart.py for the rest of the chart)."""

from __future__ import annotations

import helm_python as helm
import kubernetes_validate
import pytest

from nebari_mlflow_plugin.assets import chart_dir
from nebari_mlflow_plugin.config.overrides import merge_values as merged
from nebari_mlflow_plugin.render.manifests import ChartError

K8S_VERSIONS = ["1.29", "1.30", "1.31", "1.32"]
NAMESPACE = "dev"
BASE = {
    "database": {"internal": {"passwordSecret": {"name": "mlflow-postgres", "key": "password"}}}
}
REPLICATED = merged(
    BASE, {"replicaCount": 3, "artifacts": {"persistence": {"accessMode": "ReadWriteMany"}}}
)
GC = merged(
    BASE,
    {
        "gc": {"enabled": True, "schedule": "15 2 * * 0", "olderThan": "7d12h"},
        # Peers that do not include the gc pod: it needs its own.
        "networkPolicy": {"allowFrom": [{"podSelector": {"matchLabels": {"component": "x"}}}]},
    },
)
CRD_KINDS = {"IngressRoute", "Middleware"}


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    return workload["spec"]["template"]["metadata"]["labels"]


def gc_cronjobs(manifests: list[dict]) -> list[dict]:
    """The gc CronJob (the backup add-on renders CronJobs of its own)."""
    return [m for m in of_kind(manifests, "CronJob") if m["metadata"]["name"].endswith("-gc")]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@pytest.fixture(scope="module")
def replicated(render_chart):
    return render_chart(REPLICATED, NAMESPACE)


@pytest.fixture(scope="module")
def with_gc(render_chart):
    return render_chart(GC, NAMESPACE)


@pytest.mark.parametrize("values", [REPLICATED, GC], ids=["replicated", "gc"])
def test_chart_lints_with_ha_and_gc(values):
    report = helm.lint(str(chart_dir()), values, strict=True, namespace=NAMESPACE)
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2]


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_ha_and_gc_objects_validate_strictly(replicated, with_gc, k8s_version):
    for manifest in replicated + with_gc:
        if manifest["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(manifest, k8s_version, strict=True)


def test_one_replica_renders_no_ha_objects(render_chart):
    manifests = render_chart(BASE, NAMESPACE)
    assert not of_kind(manifests, "PodDisruptionBudget")
    (deployment,) = of_kind(manifests, "Deployment")
    assert "topologySpreadConstraints" not in pod_spec(deployment)


def test_disruption_budget_keeps_all_but_one_server(replicated):
    (deployment,) = of_kind(replicated, "Deployment")
    (pdb,) = of_kind(replicated, "PodDisruptionBudget")
    # It selects the server pods, and only them.
    selected = [w for w in replicated if w["kind"] in ("Deployment", "StatefulSet", "Job")
                if selects(pdb["spec"]["selector"], pod_labels(w))]  # fmt: skip
    assert selected == [deployment]
    # One server at a time may be evicted, whatever the replica count...
    assert pdb["spec"] == {**pdb["spec"], "maxUnavailable": 1}
    assert "minAvailable" not in pdb["spec"]
    # ...and a pod that is not ready never blocks a node drain.
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_replicas_spread_over_nodes_and_roll_without_losing_capacity(replicated, render_chart):
    (deployment,) = of_kind(replicated, "Deployment")
    (spread,) = pod_spec(deployment)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["maxSkew"] == 1
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert selects(spread["labelSelector"], pod_labels(deployment))
    assert spread["matchLabelKeys"] == ["pod-template-hash"]
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    strict = render_chart(merged(REPLICATED, {"highAvailability": {"whenUnsatisfiable":
                                                                    "DoNotSchedule"}}))  # fmt: skip
    (deployment,) = of_kind(strict, "Deployment")
    assert pod_spec(deployment)["topologySpreadConstraints"][0]["whenUnsatisfiable"] == (
        "DoNotSchedule"
    )


def test_ha_objects_can_be_switched_off(render_chart):
    manifests = render_chart(merged(REPLICATED, {"highAvailability": {"enabled": False}}))
    assert not of_kind(manifests, "PodDisruptionBudget")
    (deployment,) = of_kind(manifests, "Deployment")
    assert "topologySpreadConstraints" not in pod_spec(deployment)


def test_gc_is_off_by_default(render_chart):
    assert not gc_cronjobs(render_chart(BASE, NAMESPACE))


def test_gc_runs_like_the_server_on_its_schedule(with_gc):
    (cronjob,) = gc_cronjobs(with_gc)
    (deployment,) = of_kind(with_gc, "Deployment")
    server_pod, gc_pod = pod_spec(deployment), pod_spec(cronjob)
    assert cronjob["spec"]["schedule"] == GC["gc"]["schedule"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    (server,), (gc,) = server_pod["containers"], gc_pod["containers"]
    assert gc["image"] == server["image"]
    assert gc["securityContext"] == server["securityContext"]
    assert gc_pod["securityContext"] == server_pod["securityContext"]
    assert gc_pod["automountServiceAccountToken"] is False
    # The backend URI comes from the same environment, never from the command line.
    server_env = {e["name"]: e for e in server["env"]}
    gc_env = {e["name"]: e for e in gc["env"]}
    assert gc_env["MLFLOW_BACKEND_STORE_URI"] == server_env["MLFLOW_BACKEND_STORE_URI"]
    assert gc_env["DB_PASSWORD"] == server_env["DB_PASSWORD"]
    argv = gc["command"] + gc.get("args", [])
    assert not any("postgresql" in a or "$(DB_PASSWORD)" in a for a in argv)
    assert argv[-1] == GC["gc"]["olderThan"]
    # Artifacts go through the server: the tracking URI is the in-cluster Service URL.
    labels = pod_labels(deployment)
    (service,) = [
        s
        for s in of_kind(with_gc, "Service")
        if selects({"matchLabels": s["spec"]["selector"]}, labels)
    ]
    port = service["spec"]["ports"][0]["port"]
    prefix = server["args"][server["args"].index("--static-prefix") + 1]
    assert gc_env["MLFLOW_TRACKING_URI"]["value"] == (
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}{prefix}"
    )


def test_network_policies_admit_the_gc_pod(with_gc):
    (cronjob,) = gc_cronjobs(with_gc)
    labels = pod_labels(cronjob)
    for policy in of_kind(with_gc, "NetworkPolicy"):
        (rule,) = policy["spec"]["ingress"]
        assert any(selects(peer["podSelector"], labels) for peer in rule["from"]), policy[
            "metadata"
        ]["name"]


@pytest.mark.parametrize(
    "gc", [{"olderThan": "30 days"}, {"olderThan": ""}, {"schedule": ""}, {"unknown": 1}]
)
def test_chart_schema_rejects_bad_gc_values(render_chart, gc):
    with pytest.raises(ChartError):
        render_chart(merged(GC, {"gc": gc}))
