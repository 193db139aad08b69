"""helm/mlflow rendered by Helm's own engine (helm-python-sdk, in-process, no cluster).

Behaviour, not snapshots: every expectation is derived from the rendered objects or
from the values given, never copied from the templates.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from support.crds import TRAEFIK_CRDS, crd_schemas

from nebari_mlflow_plugin import versions
from nebari_mlflow_plugin.__about__ import __version__
from nebari_mlflow_plugin.assets import chart_dir
from nebari_mlflow_plugin.config.overrides import merge_values as merged
from nebari_mlflow_plugin.render.manifests import ChartError

CHART_DIR = chart_dir()
K8S_VERSIONS = ["1.29", "1.30", "1.31", "1.32"]
NAMESPACE = "dev"
PG_SECRET = {"name": "mlflow-postgres", "key": "password"}

DEFAULT = {"database": {"internal": {"passwordSecret": PG_SECRET}}}
EXTERNAL = {
    "database": {"mode": "external", "external": {"secretName": "mlflow-db", "secretKey": "uri"}}
}
S3 = {
    **DEFAULT,
    "artifacts": {
        "destination": "s3://bucket/path",
        "s3": {
            "endpointUrl": "https://minio.storage.svc:9000",
            "credentialsSecret": "minio-credentials",
            "ignoreTls": True,
        },
    },
}
ALLOW_FROM = [
    {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "traefik-ingress"}}},
    {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    },
]
OVERRIDDEN = {
    **DEFAULT,
    "replicaCount": 2,
    "artifacts": {"persistence": {"accessMode": "ReadWriteMany", "storageClass": "nfs"}},
    "server": {
        "staticPrefix": "/tracking",
        "allowedHosts": ["nebari.example.com"],
        "extraArgs": ["--gunicorn-opts", "--timeout=120"],
        "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
    },
    "podLabels": {"azure.workload.identity/use": "true"},
    "podAnnotations": {"example.com/owner": "data-platform"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/mlflow"}},
    "networkPolicy": {"allowFrom": ALLOW_FROM},
    "ingressRoute": {
        "enabled": True,
        "host": "nebari.example.com",
        "middlewares": [{"name": "forward-auth", "namespace": NAMESPACE}],
    },
}
VALUE_SETS = {"default": DEFAULT, "external": EXTERNAL, "s3": S3, "overridden": OVERRIDDEN}
CRD_KINDS = {"IngressRoute", "Middleware"}
POD_OWNERS = {"Deployment", "StatefulSet"}


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def case(request, render_chart):
    """(name, values, manifests) for each value set."""
    values = VALUE_SETS[request.param]
    return request.param, values, render_chart(values, NAMESPACE)


@pytest.fixture(scope="module")
def default(render_chart):
    return render_chart(DEFAULT, NAMESPACE)


@pytest.fixture(scope="module")
def overridden(render_chart):
    return render_chart(OVERRIDDEN, NAMESPACE)


# -- helpers over rendered objects ------------------------------------------------------


def of_kind(manifests: list[dict], kind: str) -> list[dict]:
    return [m for m in manifests if m["kind"] == kind]


def one_or_none(manifests: list[dict], kind: str, component: str) -> dict | None:
    labels = [(m, m["metadata"].get("labels", {})) for m in of_kind(manifests, kind)]
    found = [m for m, label in labels if label.get("app.kubernetes.io/component") == component]
    return found[0] if found else None


def one(manifests: list[dict], kind: str, component: str | None = None) -> dict:
    found = [
        m
        for m in of_kind(manifests, kind)
        if component is None
        or m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
    return found[0]


def server(manifests: list[dict]) -> dict:
    return one(manifests, "Deployment")


def migration(manifests: list[dict]) -> dict:
    """The server pod's init container: the schema migration, before every start."""
    inits = server(manifests)["spec"]["template"]["spec"]["initContainers"]
    return next(c for c in inits if c["name"] == "migrate-database")


def container(workload: dict, name: str | None = None) -> dict:
    containers = workload["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def arg_value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} given {args.count(flag)} times"
    return args[args.index(flag) + 1]


def pod_workloads(manifests: list[dict]) -> list[dict]:
    return [m for m in manifests if m["kind"] in POD_OWNERS]


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector matches these labels (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        op, key, vals = expr["operator"], expr["key"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in vals)
            or (op == "NotIn" and labels.get(key) in vals)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def pods_selected(manifests: list[dict], selector: dict) -> list[dict]:
    return [
        w
        for w in pod_workloads(manifests)
        if selects(selector, w["spec"]["template"]["metadata"]["labels"])
    ]


def walk_strings(node: Any):
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)
    elif isinstance(node, str):
        yield node


def documented_keys(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every value, each asserted to be described in the schema. Maps the
    schema lists property by property recurse; free-form ones (resources, labels) are leaves."""
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        assert key in schema.get("properties", {}), f"{path} not described in values.schema.json"
        node = schema["properties"][key]
        assert node.get("description"), f"{path} has no description in the schema"
        if isinstance(value, dict) and value and "properties" in node:
            keys.extend(documented_keys(value, node, path + "."))
        else:
            keys.append(path)
    return keys


# -- the chart as a package ---------------------------------------------------------------


def test_chart_metadata_pins_the_plugin_versions():
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "mlflow"
    assert chart["version"] == __version__  # `helm install ./helm/mlflow` shows the plugin's
    assert chart["appVersion"] == versions.MLFLOW_VERSION == values["server"]["mlflowVersion"]
    assert values["image"]["repository"] == versions.MLFLOW_IMAGE
    assert values["image"]["tag"] == versions.MLFLOW_IMAGE_TAG
    assert values["database"]["internal"]["image"]["tag"] == versions.POSTGRES_IMAGE_TAG


@pytest.mark.parametrize("name", [*VALUE_SETS, "no-values"])
def test_chart_lints_without_errors_or_warnings(name):
    values = VALUE_SETS.get(name)
    report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_schema_describes_every_value_and_readme_documents_it():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"].startswith("http://json-schema.org/draft-07/")
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(values)
    readme = (CHART_DIR / "README.md").read_text()
    table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    for key in documented_keys(values, schema):
        assert key in table_keys, f"{key} missing from the README values table"


# -- every manifest is valid Kubernetes --------------------------------------------------


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_manifests_validate_strictly(case, k8s_version):
    _, _, manifests = case
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(manifest, k8s_version, strict=True)


def test_traefik_objects_match_their_crds(overridden):
    schemas = crd_schemas(TRAEFIK_CRDS)
    objects = [m for m in overridden if m["kind"] in CRD_KINDS]
    assert {m["kind"] for m in objects} == CRD_KINDS
    for obj in objects:
        jsonschema.validate(obj, schemas[(obj["apiVersion"], obj["kind"])])


def test_everything_is_namespaced_in_the_release_namespace(render_chart):
    for manifest in render_chart(OVERRIDDEN, "team-a", "tracking"):
        assert manifest["metadata"]["namespace"] == "team-a", manifest["kind"]


def test_fullname_follows_release_and_honours_override(render_chart):
    assert server(render_chart(DEFAULT, NAMESPACE, "prod"))["metadata"]["name"] == "prod-mlflow"
    assert server(render_chart(DEFAULT, NAMESPACE, "mlflow"))["metadata"]["name"] == "mlflow"
    pinned = render_chart(merged(DEFAULT, {"fullnameOverride": "tracker"}), NAMESPACE, "prod")
    assert server(pinned)["metadata"]["name"] == "tracker"
    assert one(pinned, "Service", "server")["metadata"]["name"] == "tracker"


# -- refusals -------------------------------------------------------------------------------


def test_internal_database_without_password_secret_fails_clearly(render_chart):
    with pytest.raises(ChartError, match=r"database\.internal\.passwordSecret\.name is required"):
        render_chart({}, NAMESPACE)


def test_external_database_without_secret_fails_clearly(render_chart):
    with pytest.raises(ChartError, match=r"database\.external\.secretName is required"):
        render_chart({"database": {"mode": "external"}}, NAMESPACE)


def test_several_replicas_on_a_read_write_once_volume_fail_clearly(render_chart):
    with pytest.raises(ChartError, match=r"replicaCount=2 .*ReadWriteMany"):
        render_chart(merged(DEFAULT, {"replicaCount": 2}), NAMESPACE)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"database": {"mode": "sqlite"}}, "mode"),
        ({"server": {"staticPrefix": "/mlflow/"}}, "staticPrefix"),
        ({"server": {"staticPrefix": "mlflow"}}, "staticPrefix"),
        ({"artifacts": {"persistence": {"accessMode": "ReadOnlyMany"}}}, "accessMode"),
        ({"serverr": {}}, "serverr"),
    ],
)
def test_schema_rejects_bad_values(render_chart, values, key):
    with pytest.raises(ChartError, match=key):
        render_chart(merged(DEFAULT, values), NAMESPACE)


# -- the MLflow server --------------------------------------------------------------------


def test_server_flags_follow_the_values(case):
    _, values, manifests = case
    merged_values = merged(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), values)
    c = container(server(manifests))
    args = c["args"]
    assert args[0] == "server"
    assert arg_value(args, "--static-prefix") == merged_values["server"]["staticPrefix"]
    assert arg_value(args, "--host") == "0.0.0.0"
    assert arg_value(args, "--port") == str(merged_values["server"]["port"])
    assert arg_value(args, "--workers") == str(merged_values["server"]["workers"])
    assert "--serve-artifacts" in args
    destination = arg_value(args, "--artifacts-destination")
    if merged_values["artifacts"]["destination"]:
        assert destination == merged_values["artifacts"]["destination"]
    else:  # the artifact volume is mounted exactly there
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert destination in mounts
    # --expose-prometheus needs a writable directory: under a mounted emptyDir.
    metrics_dir = arg_value(args, "--expose-prometheus")
    volumes = {v["name"]: v for v in server(manifests)["spec"]["template"]["spec"]["volumes"]}
    assert any(
        metrics_dir.startswith(m["mountPath"]) and "emptyDir" in volumes[m["name"]]
        for m in c["volumeMounts"]
    )
    extra = merged_values["server"]["extraArgs"]
    if extra:
        assert args[-len(extra) :] == extra
    assert c["ports"] == [
        {"name": "http", "containerPort": merged_values["server"]["port"], "protocol": "TCP"}
    ]


def test_prometheus_can_be_switched_off(render_chart):
    values = merged(DEFAULT, {"server": {"exposePrometheus": False}})
    assert "--expose-prometheus" not in container(server(render_chart(values)))["args"]


@pytest.mark.parametrize("name", ["default", "overridden"])
def test_probes_use_the_prefixed_health_endpoint(render_chart, name):
    values = VALUE_SETS[name]
    prefix = merged({"server": {"staticPrefix": "/mlflow"}}, values)["server"]["staticPrefix"]
    c = container(server(render_chart(values)))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": f"{prefix}/health", "port": "http"}, probe


@pytest.mark.parametrize("version", ["3.0.0", "3.9.1", "3.17.2", "4.1.0"])
def test_probe_path_is_picked_from_the_mlflow_version(render_chart, version):
    values = merged(DEFAULT, {"server": {"mlflowVersion": version}})
    c = container(server(render_chart(values)))
    assert c["readinessProbe"]["httpGet"]["path"] == "/mlflow/health"


def test_allowed_hosts_cover_service_names_public_domain_and_loopback(render_chart):
    manifests = render_chart(OVERRIDDEN, "team-a", "tracking")
    deployment = server(manifests)
    service = one(manifests, "Service", "server")
    svc, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    allowed = arg_value(container(deployment)["args"], "--allowed-hosts").split(",")
    assert "MLFLOW_SERVER_ALLOWED_HOSTS" not in env_of(container(deployment))

    def accepted(host: str) -> bool:
        return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in allowed)

    for name in (svc, f"{svc}.team-a", f"{svc}.team-a.svc", f"{svc}.team-a.svc.cluster.local"):
        assert accepted(name) and accepted(f"{name}:{port}"), name
    assert accepted("nebari.example.com")
    for loopback in ("localhost", "127.0.0.1"):
        assert accepted(loopback) and accepted(f"{loopback}:5000")
    assert not accepted("evil.example.org")


def test_backend_uri_is_never_in_args_and_no_literal_credentials(case):
    _, _, manifests = case
    uri_with_password = re.compile(r"://[^/\s:@]+:(?!\$\()[^@\s]+@")
    for manifest in manifests:
        for text in walk_strings(manifest):
            assert not uri_with_password.search(text), f"credentials in {manifest['kind']}"
    for workload in pod_workloads(manifests):
        pod = workload["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            argv = " ".join(c.get("command", []) + c.get("args", []))
            assert "postgresql" not in argv and "PASSWORD" not in argv
            assert "$MLFLOW_BACKEND_STORE_URI" not in argv, f"URI on argv of {c['name']}"


def test_internal_backend_uri_is_built_from_the_secret(default):
    for c in (container(server(default)), migration(default)):
        names = [e["name"] for e in c["env"]]
        env = env_of(c)
        uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
        assert uri.startswith("postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@")
        # Dependent variables expand only when defined earlier in the list.
        assert names.index("DB_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")
        assert names.index("DB_USER") < names.index("MLFLOW_BACKEND_STORE_URI")
        assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == PG_SECRET
        postgres_service = one(default, "Service", "database")
        port = postgres_service["spec"]["ports"][0]["port"]
        assert f"@{postgres_service['metadata']['name']}:{port}/mlflow" in uri


def test_external_backend_uri_comes_from_the_secret(render_chart):
    manifests = render_chart(EXTERNAL)
    assert not of_kind(manifests, "StatefulSet")
    for c in (container(server(manifests)), migration(manifests)):
        ref = env_of(c)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "mlflow-db", "key": "uri"}


def test_every_pod_runs_non_root_read_only_without_capabilities(case):
    _, _, manifests = case
    workloads = pod_workloads(manifests)
    assert {w["kind"] for w in workloads} >= {"Deployment"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] > 0 and psc["runAsGroup"] > 0 and psc["fsGroup"] > 0
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            where = f"{workload['kind']}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc.get("runAsUser", psc["runAsUser"]) != 0, where
            assert sc.get("privileged", False) is False, where
            # A read-only root needs a writable /tmp; MLflow's HOME points into it.
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, where
            if workload["kind"] != "StatefulSet":
                assert env_of(c).get("HOME", {}).get("value", "/tmp").startswith("/tmp")


def test_server_environment_opts_out_of_telemetry_and_service_links(default):
    pod = server(default)["spec"]["template"]["spec"]
    env = env_of(container(server(default)))
    assert env["MLFLOW_DISABLE_TELEMETRY"]["value"] == "true"
    assert env["HOME"]["value"] == "/tmp"
    assert pod["enableServiceLinks"] is False


def test_server_runs_as_its_service_account_with_annotations(overridden):
    account = one(overridden, "ServiceAccount")
    assert account["metadata"]["annotations"] == OVERRIDDEN["serviceAccount"]["annotations"]
    assert account["automountServiceAccountToken"] is False
    pod = server(overridden)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_s3_compatible_store_settings(render_chart):
    manifests = render_chart(S3)
    c = container(server(manifests))
    env = env_of(c)
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "https://minio.storage.svc:9000"
    assert env["MLFLOW_S3_IGNORE_TLS"]["value"] == "true"
    assert {"secretRef": {"name": "minio-credentials"}} in c["envFrom"]
    assert arg_value(c["args"], "--artifacts-destination") == "s3://bucket/path"
    assert not one_or_none(manifests, "PersistentVolumeClaim", "artifacts")
    assert server(manifests)["spec"]["strategy"]["type"] == "RollingUpdate"
    plain = env_of(container(server(render_chart(DEFAULT))))
    assert "MLFLOW_S3_ENDPOINT_URL" not in plain and "MLFLOW_S3_IGNORE_TLS" not in plain


def test_extra_env_and_env_from_reach_server_and_migration(render_chart):
    extra = {"server": {"extraEnvFrom": [{"configMapRef": {"name": "proxy-settings"}}]}}
    manifests = render_chart(merged(OVERRIDDEN, extra))
    for c in (container(server(manifests)), migration(manifests)):
        assert env_of(c)["AWS_REGION"]["value"] == "eu-west-1"
        assert {"configMapRef": {"name": "proxy-settings"}} in c["envFrom"]


def test_resources_scheduling_and_pull_secrets_come_from_values(render_chart):
    values = merged(
        DEFAULT,
        {
            "resources": {"requests": {"cpu": "1", "memory": "3Gi"}, "limits": {"memory": "4Gi"}},
            "nodeSelector": {"pool": "services"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}
                        ]
                    }
                }
            },
            "imagePullSecrets": [{"name": "registry"}],
        },
    )
    manifests = render_chart(values)
    deployment = server(manifests)
    pod = deployment["spec"]["template"]["spec"]
    assert container(deployment)["resources"] == values["resources"]
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    for workload in pod_workloads(manifests):
        assert workload["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]


def test_pod_labels_annotations_and_config_checksum_propagate(render_chart, overridden):
    template = server(overridden)["spec"]["template"]["metadata"]
    for key, value in OVERRIDDEN["podLabels"].items():
        assert template["labels"][key] == value
    for key, value in OVERRIDDEN["podAnnotations"].items():
        assert template["annotations"][key] == value
    checksums = {k: v for k, v in template["annotations"].items() if k.startswith("checksum/")}
    assert checksums and all(re.fullmatch(r"[0-9a-f]{64}", v) for v in checksums.values())
    # The selector still selects the pods; the extra labels stay out of it.
    selector = server(overridden)["spec"]["selector"]
    assert selects(selector, template["labels"])
    assert not set(OVERRIDDEN["podLabels"]) & set(selector["matchLabels"])
    # Changing configuration changes the checksum (rolls the pods).
    changed = render_chart(merged(OVERRIDDEN, {"server": {"workers": 8}}))
    changed_annotations = server(changed)["spec"]["template"]["metadata"]["annotations"]
    assert {k: changed_annotations[k] for k in checksums} != checksums


def test_rollout_strategy_follows_the_artifact_volume(default, overridden):
    assert server(default)["spec"]["strategy"]["type"] == "Recreate"
    assert server(overridden)["spec"]["strategy"]["type"] == "RollingUpdate"
    assert server(overridden)["spec"]["replicas"] == 2


def test_service_targets_the_named_http_port(case):
    _, _, manifests = case
    service = one(manifests, "Service", "server")
    deployment = server(manifests)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    [port] = service["spec"]["ports"]
    assert port["name"] == "http" and port["targetPort"] == "http"
    assert [p["name"] for p in container(deployment)["ports"]] == ["http"]


# -- volumes -----------------------------------------------------------------------------------


def test_artifact_volume_is_kept_by_default(default, render_chart):
    pvc = one(default, "PersistentVolumeClaim", "artifacts")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in server(default)["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == [pvc["metadata"]["name"]]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    disposable = one(
        render_chart(merged(DEFAULT, {"keepVolumes": False})), "PersistentVolumeClaim", "artifacts"
    )
    assert "helm.sh/resource-policy" not in disposable["metadata"].get("annotations", {})


def test_overridden_volume_uses_its_access_mode_and_storage_class(overridden):
    pvc = one(overridden, "PersistentVolumeClaim", "artifacts")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "nfs"


# -- PostgreSQL --------------------------------------------------------------------------------


def test_internal_postgres_keeps_data_and_converges_its_password(render_chart):
    values = merged(
        DEFAULT,
        {"database": {"internal": {"persistence": {"size": "7Gi", "storageClass": "ssd"}}}},
    )
    manifests = render_chart(values)
    sts = one(manifests, "StatefulSet")
    assert sts["spec"]["replicas"] == 1
    # A claim of its own, not a volumeClaimTemplate (a StatefulSet's templates can never
    # change; a claim can grow), kept when the release goes.
    assert "volumeClaimTemplates" not in sts["spec"]
    pod = sts["spec"]["template"]["spec"]
    (data_volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    claim = one(manifests, "PersistentVolumeClaim", "database")
    assert data_volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "7Gi"
    assert claim["spec"]["storageClassName"] == "ssd"
    c = container(sts)
    assert c["image"] == f"{versions.POSTGRES_IMAGE}:{versions.POSTGRES_IMAGE_TAG}"
    env = env_of(c)
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == PG_SECRET
    assert env["POSTGRES_USER"]["value"] == "mlflow" and env["POSTGRES_DB"]["value"] == "mlflow"
    data_mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == data_volume["name"])
    assert env["PGDATA"]["value"].startswith(data_mount.rstrip("/") + "/")
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 999
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "pg_isready" in " ".join(c[probe]["exec"]["command"]), probe
    # The password Secret may be re-created while the volume survives: re-applied on
    # start, read from the environment inside psql, never expanded onto a command line.
    hook = " ".join(c["lifecycle"]["postStart"]["exec"]["command"])
    assert "ALTER ROLE" in hook and "\\getenv" in hook
    assert not re.search(r"\$\{?POSTGRES_PASSWORD", hook)
    service = one(manifests, "Service", "database")
    assert selects(
        {"matchLabels": service["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"]
    )
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]


def test_postgres_retention_can_be_opted_out(render_chart):
    claim = one(render_chart(merged(DEFAULT, {"keepVolumes": False})), "PersistentVolumeClaim",
                "database")  # fmt: skip
    assert "helm.sh/resource-policy" not in (claim["metadata"].get("annotations") or {})


def test_existing_claims_are_used_and_never_rendered(render_chart):
    """How data moves to another class, mode or size: the admin's claim, untouched."""
    manifests = render_chart(merged(DEFAULT, {
        "database": {"internal": {"persistence": {"existingClaim": "pg-moved"}}},
        "artifacts": {"persistence": {"existingClaim": "artifacts-rwx"}},
    }))  # fmt: skip
    assert not [m for m in manifests if m["kind"] == "PersistentVolumeClaim"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for m in manifests if m["kind"] in ("Deployment", "StatefulSet")
        for v in m["spec"]["template"]["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }  # fmt: skip
    assert claims == {"pg-moved", "artifacts-rwx"}


# -- schema migration ---------------------------------------------------------------------


MIGRATION_DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["migration"]


@pytest.mark.parametrize("values", [DEFAULT, EXTERNAL], ids=["internal", "external"])
def test_every_server_start_migrates_in_an_init_container_not_a_hook(values, render_chart):
    install, upgrade = render_chart(values), render_chart(values, is_upgrade=True)
    for manifests in (install, upgrade):
        assert not of_kind(manifests, "Job")
        assert not [m for m in manifests if "helm.sh/hook" in m["metadata"].get("annotations", {})]
    # Install and upgrade (and a new release on kept data) run the same migration.
    assert server(install) == server(upgrade)
    init, main = migration(install), container(server(install))
    # The server's database, common and extra env, in the server's order.
    assert [e for e in main["env"] if e in init["env"]] == init["env"]
    assert env_of(init)["MLFLOW_BACKEND_STORE_URI"] == env_of(main)["MLFLOW_BACKEND_STORE_URI"]
    assert init["image"] == main["image"]
    assert init["command"][-2:] == ["upgrade", str(MIGRATION_DEFAULTS["waitSeconds"])]
    assert init["resources"]["limits"]["memory"]


def test_migration_settings_reach_the_init_container(render_chart):
    manually = migration(render_chart(merged(DEFAULT, {"migration": {"enabled": False}})))
    assert manually["command"][-2] == "check"
    waiting = migration(render_chart(merged(DEFAULT, {"migration": {"waitSeconds": 60}})))
    assert waiting["command"][-1] == "60"


@pytest.mark.parametrize(
    "migration_values", [{"waitSeconds": 0}, {"activeDeadlineSeconds": 900}, {"enabled": "yes"}]
)
def test_bad_migration_values_are_refused(migration_values, render_chart):
    with pytest.raises(ChartError, match="migration"):
        render_chart(merged(DEFAULT, {"migration": migration_values}))


# -- network policies --------------------------------------------------------------------------


def _policy_selecting(manifests: list[dict], workload: dict) -> dict:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    [policy] = [
        p for p in of_kind(manifests, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)
    ]
    return policy


def test_postgres_admits_only_server_pods(case):
    name, _, manifests = case
    if name == "external":
        assert len(of_kind(manifests, "NetworkPolicy")) == 1
        return
    sts = one(manifests, "StatefulSet")
    policy = _policy_selecting(manifests, sts)
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress stays open
    [rule] = policy["spec"]["ingress"]
    container_port = container(sts)["ports"][0]
    assert container_port["containerPort"] == 5432
    assert [p["port"] for p in rule["ports"]] in ([5432], [container_port["name"]])
    admitted = set()
    for peer in rule["from"]:
        assert set(peer) == {"podSelector"}, "peers stay within the namespace"
        admitted |= {
            (w["kind"], w["metadata"]["name"])
            for w in pods_selected(manifests, peer["podSelector"])
        }
    # Their init container migrates the schema: no other pod needs the database.
    assert admitted == {("Deployment", server(manifests)["metadata"]["name"])}


def test_mlflow_admits_the_configured_peers(case):
    _, values, manifests = case
    deployment = server(manifests)
    policy = _policy_selecting(manifests, deployment)
    assert [(w["kind"]) for w in pods_selected(manifests, policy["spec"]["podSelector"])] == [
        "Deployment"
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] in (
        ["http"],
        [container(deployment)["ports"][0]["containerPort"]],
    )
    expected = values.get("networkPolicy", {}).get("allowFrom") or [{"podSelector": {}}]
    assert rule["from"] == expected


def test_network_policies_can_be_disabled(render_chart):
    assert not of_kind(
        render_chart(merged(DEFAULT, {"networkPolicy": {"enabled": False}})), "NetworkPolicy"
    )


# -- notes --------------------------------------------------------------------------------------


def test_notes_give_the_in_cluster_tracking_uri():
    rendered = helm.Chart.load(str(CHART_DIR)).render(
        OVERRIDDEN, name="tracking", namespace="team-a", is_install=True
    )
    notes = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    assert "http://tracking-mlflow.team-a.svc:5000/tracking" in notes
    assert "https://nebari.example.com/tracking/" in notes
