"""The chart's takeover init containers as rendered: only when asked, before the
schema migration, valid Kubernetes, secrets by reference, the old volume read-only.
And the stage hands the chart takeover values only when it detected an old release."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from support import nebari as nb

from nebari_mlflow_plugin.config.overrides import merge_values
from nebari_mlflow_plugin.lifecycle import takeover
from nebari_mlflow_plugin.render import tfvalues

NAMESPACE = "dev"
DEFAULT = {
    "database": {"internal": {"passwordSecret": {"name": "mlflow-postgres", "key": "password"}}}
}
MINIO = {"minio": {"enabled": True, "auth": {"rootUser": "minio"}, "defaultBuckets": "mlflow"}}
CLOUD_ON_VOLUME = {"minio": {"enabled": False}, "externalS3": {"bucket": "b"}}


def old(values: dict) -> takeover.OldDeployment:
    return takeover.OldDeployment(release="demo-mlflow", namespace=NAMESPACE, values=values)


def server_pod(manifests: list[dict]) -> dict:
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"
                     and m["metadata"]["name"] == "mlflow"]  # fmt: skip
    return deployment["spec"]["template"]["spec"]


def init_names(manifests: list[dict]) -> list[str]:
    """The server pod's init containers but the pre-upgrade backup's (test_backup_chart.py)."""
    names = [c["name"] for c in server_pod(manifests)["initContainers"]]
    return [n for n in names if not n.startswith("pre-upgrade-")]


def test_a_fresh_deployment_renders_none_of_it(render_chart):
    manifests = render_chart(DEFAULT, NAMESPACE)
    assert init_names(manifests) == ["migrate-database"]
    pod = server_pod(manifests)
    # (The server package, delivered whole, holds the takeover's module: not run.)
    volumes = [v for v in pod["volumes"] if v["name"] != "server-package"]
    assert "takeover" not in json.dumps({**pod, "volumes": volumes})


def test_a_fresh_stage_hands_the_chart_no_takeover_values(tmp_path):
    stage = nb.stage_for(nb.validate(nb.config_dict("local")), tmp_path)
    assert "takeover" not in json.loads(stage.input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    stage.takeover_from = old(MINIO)
    values = json.loads(stage.input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    assert values["takeover"]["release"] == "demo-mlflow"


@pytest.mark.parametrize("values", [MINIO, CLOUD_ON_VOLUME], ids=["minio", "tracking-volume"])
def test_takeover_runs_before_the_migration_and_validates(render_chart, values):
    manifests = render_chart({**DEFAULT, "takeover": old(values).chart_values()}, NAMESPACE)
    assert init_names(manifests) == ["takeover-database", "takeover-artifacts", "migrate-database"]
    for manifest in manifests:
        if manifest["kind"] not in {"IngressRoute", "Middleware"}:
            kubernetes_validate.validate(manifest, "1.32", strict=True)
    pod = server_pod(manifests)
    for container in pod["initContainers"][:2]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
        assert security["capabilities"]["drop"] == ["ALL"]
        for item in container["env"]:
            if any(word in item["name"] for word in ("PASSWORD", "ACCESS_KEY")):
                assert "secretKeyRef" in item["valueFrom"], item  # never a literal
    database = pod["initContainers"][0]
    assert database["image"].startswith("postgres:17")
    env = {e["name"]: e for e in database["env"]}
    assert env["OLD_HOST"]["value"] == "demo-mlflow-postgresql"
    assert env["OLD_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "demo-mlflow-postgresql", "key": "password"}  # fmt: skip
    volumes = {v["name"]: v for v in pod["volumes"]}
    if values is CLOUD_ON_VOLUME:
        claim = volumes["takeover-source"]["persistentVolumeClaim"]
        assert claim == {"claimName": "demo-mlflow-tracking", "readOnly": True}
        mounts = {m["name"]: m for m in pod["initContainers"][1]["volumeMounts"]}
        assert mounts["takeover-source"]["readOnly"] is True
        assert "takeover-source" not in json.dumps(pod["containers"])  # the server never mounts it
    else:
        assert "takeover-source" not in volumes


@pytest.mark.parametrize(
    ("values", "replicas"), [(CLOUD_ON_VOLUME, 1), (MINIO, 2)], ids=["rwo-volume", "minio"]
)
def test_the_takeover_holds_one_replica_while_it_reads_a_read_write_once_volume(
    render_chart, tmp_path, monkeypatch, values, replicas
):
    """mlflow.replicas: 2 on AWS: while the server pods mount the old tracking claim
    (ReadWriteOnce), the chart gets one replica (no disruption budget for two); after
    --finish (no takeover) it gets the two asked for."""
    nb.patch_cloud_lookups(monkeypatch)
    stage = nb.stage_for(nb.validate(nb.config_dict("aws", {"replicas": 2})), tmp_path)
    stage.takeover_from = old(values)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    # What Terraform hands Helm (evaluated by Terraform), the bucket standing in.
    locals_ = {**tfvalues.VOLUME_LOCALS, "artifacts_destination": "s3://b/artifacts"}
    manifests = render_chart(merge_values(*tfvalues.values_documents(input_vars, locals_)),
                             NAMESPACE)  # fmt: skip
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"
                     and m["metadata"]["name"] == "mlflow"]  # fmt: skip
    assert deployment["spec"]["replicas"] == replicas
    assert any(m["kind"] == "PodDisruptionBudget" for m in manifests) is (replicas > 1)
    stage.takeover_from = None
    finished = json.loads(stage.input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    assert finished["replicaCount"] == 2


def _route(manifests: list[dict]) -> dict:
    (route,) = [m for m in manifests if m["kind"] == "IngressRoute"]
    (rule,) = route["spec"]["routes"]
    return rule


def test_the_old_server_keeps_the_route_until_finish(render_chart):
    """During the takeover /mlflow goes where 2025.10.x's route went (its tracking
    Service, port 5000, prefix stripped, behind forward-auth); without takeover values
    (after --finish) to this server."""
    middlewares = [{"name": "traefik-forward-auth"}]
    forward_auth = {"ingressRoute": {"enabled": True, "host": "nebari.example.com",
                                     "middlewares": middlewares}}  # fmt: skip
    # 2025.10.x's shared values gave the tracking Service port 5000 (Bitnami's default: 80).
    shared = {"tracking": {"service": {"ports": {"http": 5000}}}}
    values = {**DEFAULT, **forward_auth, "takeover": old({**MINIO, **shared}).chart_values()}
    manifests = render_chart(values, NAMESPACE)
    rule = _route(manifests)
    assert rule["services"] == [{"kind": "Service", "name": "demo-mlflow-tracking", "port": 5000}]
    names = [m["name"] for m in rule["middlewares"]]
    # (compressed like the chart's own route: the old UI is as heavy)
    assert names == ["traefik-forward-auth", "mlflow-trailing-slash", "mlflow-takeover-strip",
                     "mlflow-compress"]  # fmt: skip
    (strip,) = [m for m in manifests if m["metadata"]["name"] == "mlflow-takeover-strip"]
    assert strip["spec"] == {"stripPrefix": {"prefixes": ["/mlflow/"], "forceSlash": False}}
    after = render_chart({**DEFAULT, **forward_auth}, NAMESPACE)
    assert _route(after)["services"] == [{"kind": "Service", "name": "mlflow", "port": 5000}]
    assert not [m for m in after if m["metadata"]["name"] == "mlflow-takeover-strip"]


def test_helm_does_not_wait_for_the_copy(tmp_path):
    """The stage hands Terraform helm_wait false while it takes over, and the rendered
    root module passes it to the helm_release's `wait` (read with Terraform's parser)."""
    from support import terraform as tf

    stage = nb.stage_for(nb.validate(nb.config_dict("local")), tmp_path)
    assert stage.input_vars(nb.STAGE_OUTPUTS)["helm_wait"] is True
    stage.takeover_from = old(MINIO)
    assert stage.input_vars(nb.STAGE_OUTPUTS)["helm_wait"] is False
    stage_dir = nb.render_stage(stage.config, tmp_path / "out")
    (module,) = [b["mlflow"] for b in tf.module_blocks(stage_dir)["module"] if "mlflow" in b]
    assert module["helm_wait"] == "${var.helm_wait}"
    blocks = tf.module_blocks(stage_dir / "modules" / "mlflow")
    (release,) = [b["helm_release"]["mlflow"] for b in blocks["resource"] if "helm_release" in b]
    assert release["wait"] == "${var.helm_wait}"


def test_the_deploy_check_reports_the_copy_instead_of_waiting(tmp_path, capsys):
    stage = nb.stage_for(nb.validate(nb.config_dict("local")), tmp_path)
    stage.takeover_from = old(MINIO)
    stage.check(nb.STAGE_OUTPUTS)  # no cluster is reachable here: it does not ask one
    out = " ".join(capsys.readouterr().out.split())
    assert "its server keeps serving https://nebari.example.com/mlflow/" in out
    assert "nebari mlflow migrate --check" in out and "migrate --finish" in out


def test_the_copy_runs_beside_the_old_tracking_pod_that_holds_its_volume(render_chart):
    """A ReadWriteOnce tracking claim mounts on one node: the server pods prefer the old
    tracking pod's node, so the old server need not stop for the copy."""
    pod = server_pod(render_chart({**DEFAULT, "takeover": old(CLOUD_ON_VOLUME).chart_values()},
                                  NAMESPACE))  # fmt: skip
    (term,) = pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    old_tracking = {"app.kubernetes.io/instance": "demo-mlflow",
                    "app.kubernetes.io/component": "tracking"}  # fmt: skip
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == old_tracking
    assert "affinity" not in server_pod(render_chart(
        {**DEFAULT, "takeover": old(MINIO).chart_values()}, NAMESPACE))  # fmt: skip


def test_the_old_server_is_not_reachable_without_the_login(render_chart):
    """The old server has no auth of its own: while it serves the route, a request with
    an Authorization header still goes through forward-auth (no API route skipping the
    login); after --finish the API route to this server (it checks credentials) is back."""
    middlewares = [{"name": "traefik-forward-auth"}]
    forward_auth = {"ingressRoute": {"enabled": True, "host": "nebari.example.com",
                                     "middlewares": middlewares}}  # fmt: skip
    auth = {**DEFAULT, **forward_auth, "auth": {"enabled": True}}
    shared = {"tracking": {"service": {"ports": {"http": 5000}}}}
    during = render_chart({**auth, "takeover": old({**MINIO, **shared}).chart_values()}, NAMESPACE)
    (route,) = [m for m in during if m["kind"] == "IngressRoute"]
    assert [[m["name"] for m in r["middlewares"]] for r in route["spec"]["routes"]] == [
        ["traefik-forward-auth", "mlflow-trailing-slash", "mlflow-takeover-strip",
         "mlflow-compress"]]  # fmt: skip
    (after,) = [m for m in render_chart(auth, NAMESPACE) if m["kind"] == "IngressRoute"]
    _, api = after["spec"]["routes"]
    assert "Authorization" in api["match"] and api["services"][0]["name"] == "mlflow"
    assert "traefik-forward-auth" not in [m["name"] for m in api["middlewares"]]
