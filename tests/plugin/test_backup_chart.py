"""The backup and restore objects of the chart, and the `mlflow.backup` config block.

Rendered by Helm's engine and validated against strict Kubernetes schemas; what they
must share with the server (identity, scheduling, security) is read from the
rendered server, never restated here.
"""

from __future__ import annotations

import kubernetes_validate
import pydantic
import pytest
from support import nebari as nb
from support.release import find, render_release
from test_operate_chart import BASE, K8S_VERSIONS, NAMESPACE, of_kind, pod_labels, pod_spec, selects

from nebari_mlflow_plugin.config.overrides import merge_values as merged
from nebari_mlflow_plugin.render.manifests import ChartError

DESTINATION = "s3://bucket/artifacts"
VALUE_SETS = {
    "volume": BASE,
    "rwx-volume": merged(BASE, {"artifacts": {"persistence": {"accessMode": "ReadWriteMany"}}}),
    "bucket": merged(BASE, {"artifacts": {"destination": DESTINATION},
                            "podLabels": {"azure.workload.identity/use": "true"},
                            "server": {"platformEnv": [{"name": "AWS_REGION", "value": "x"}]},
                            "nodeSelector": {"pool": "general"},
                            "tolerations": [{"key": "k", "operator": "Exists"}]}),
    "external": {"database": {"mode": "external", "external": {"secretName": "db"}}},
    "no-migration": merged(BASE, {"migration": {"enabled": False}}),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def case(request, render_chart):
    return request.param, render_chart(VALUE_SETS[request.param], NAMESPACE)


def cronjob(manifests: list[dict], suffix: str) -> dict | None:
    found = [m for m in of_kind(manifests, "CronJob") if m["metadata"]["name"].endswith(suffix)]
    return found[0] if found else None


def server(manifests: list[dict]) -> dict:
    return next(m for m in of_kind(manifests, "Deployment") if m["metadata"]["name"] == "mlflow")


def containers(workload: dict) -> list[dict]:
    pod = pod_spec(workload)
    return (pod.get("initContainers") or []) + pod["containers"]


def env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env") or []}


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_backup_objects_validate_strictly(case, k8s_version):
    for manifest in case[1]:
        if manifest["kind"] in ("CronJob", "Deployment", "NetworkPolicy"):
            kubernetes_validate.validate(manifest, k8s_version, strict=True)


def test_backup_pods_run_like_the_server(case):
    name, manifests = case
    the_server = server(manifests)
    server_pod = pod_spec(the_server)
    mlflow = next(c for c in server_pod["containers"] if c["name"] == "mlflow")
    templates = [c for c in (cronjob(manifests, "-backup"), cronjob(manifests, "-restore")) if c]
    assert (cronjob(manifests, "-backup") is None) == (name == "external")
    for template in templates:
        pod = pod_spec(template)
        for key in ("serviceAccountName", "securityContext", "nodeSelector", "tolerations"):
            assert pod.get(key) == server_pod.get(key), (template["metadata"]["name"], key)
        assert pod["automountServiceAccountToken"] is False
        labels = pod_labels(template)
        assert pod_labels(the_server).items() - labels.items() <= {
            ("app.kubernetes.io/component", "server")}  # fmt: skip
        for container in containers(template):
            assert container["securityContext"] == mlflow["securityContext"]
            assert container["resources"]["limits"]["memory"]
            argv = " ".join(container["command"] + container.get("args", []))
            assert "$(DB_PASSWORD)" not in argv and "postgresql://" not in argv
            if container["image"] == mlflow["image"]:  # the store client: the server's env
                for item in mlflow.get("envFrom") or []:
                    assert item in container["envFrom"]
                for key, value in env(mlflow).items():
                    if key.startswith(("AWS_", "MLFLOW_S3", "MLFLOW_BACKEND", "DB_")):
                        assert env(container)[key] == value
    backup = cronjob(manifests, "-backup")
    if backup:
        spec = backup["spec"]
        assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
        assert spec["failedJobsHistoryLimit"] >= 1
        assert "ttlSecondsAfterFinished" not in spec["jobTemplate"]["spec"]  # kept to inspect
        assert 0 < spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] <= 86400
        dump, upload = containers(backup)
        internal = VALUE_SETS[name].get("database", {}).get("internal", {}).get("image", {})
        assert dump["image"].split(":")[0] == internal.get("repository", "postgres")
        assert upload["image"] == mlflow["image"]
    restore = cronjob(manifests, "-restore")
    assert restore["spec"]["suspend"] is True
    assert [c["name"] for c in containers(restore)] == ["fetch", "restore", "verify"]


def test_backups_are_never_under_what_the_server_serves(case):
    name, manifests = case
    mlflow = next(c for c in pod_spec(server(manifests))["containers"] if c["name"] == "mlflow")
    served = mlflow["args"][mlflow["args"].index("--artifacts-destination") + 1]
    upload = containers(cronjob(manifests, "-restore"))[0]
    root = env(upload)["MLFLOW_BACKUP_ROOT"]["value"]
    if name == "bucket":
        assert root == f"{DESTINATION}-backups" and not root.startswith(f"{served}/")
        return
    # On the artifact volume: its directory _backups, covered in the server container.
    mounts = {m["mountPath"]: m for m in upload["volumeMounts"]}
    (volume_path,) = [p for p in mounts if root.startswith(f"{p}/")]
    hidden = served + root[len(volume_path) :]
    (cover,) = [m for m in mlflow["volumeMounts"] if m["mountPath"] == hidden]
    assert cover["readOnly"] is True
    volumes = {v["name"]: v for v in pod_spec(server(manifests))["volumes"]}
    assert "emptyDir" in volumes[cover["name"]]
    claim = volumes[next(m["name"] for m in mlflow["volumeMounts"] if m["mountPath"] == served)]
    restore_volumes = {v["name"]: v for v in pod_spec(cronjob(manifests, "-restore"))["volumes"]}
    assert restore_volumes[mounts[volume_path]["name"]] == claim  # the same claim
    # A ReadWriteOnce volume is attached to the server's node: follow the server there.
    affinity = pod_spec(cronjob(manifests, "-restore")).get("affinity")
    if name == "rwx-volume":
        assert affinity is None
    else:
        (term,) = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert selects(term["labelSelector"], pod_labels(server(manifests)))


def test_the_server_pod_backs_up_before_it_migrates(case):
    name, manifests = case
    names = [c["name"] for c in pod_spec(server(manifests))["initContainers"]]
    assert names[-1] == "migrate-database"
    if name in ("external", "no-migration"):
        assert "pre-upgrade-dump" not in names
    else:
        assert names == ["pre-upgrade-check", "pre-upgrade-dump", "pre-upgrade-backup",
                         "migrate-database"]  # fmt: skip


def test_the_database_admits_the_backup_and_restore_pods(case):
    name, manifests = case
    if name == "external":
        return
    (policy,) = [p for p in of_kind(manifests, "NetworkPolicy")
                 if p["metadata"]["name"].endswith("-postgres")]  # fmt: skip
    (rule,) = policy["spec"]["ingress"]
    for template in (cronjob(manifests, "-backup"), cronjob(manifests, "-restore")):
        assert any(selects(peer["podSelector"], pod_labels(template)) for peer in rule["from"])


def test_backups_off_renders_no_backup_cronjob_and_no_pre_upgrade_backup(render_chart):
    manifests = render_chart(merged(BASE, {"backup": {"enabled": False}}), NAMESPACE)
    assert cronjob(manifests, "-backup") is None
    names = [c["name"] for c in pod_spec(server(manifests))["initContainers"]]
    assert names == ["migrate-database"]


def test_a_bucket_root_destination_is_refused(render_chart):
    with pytest.raises(ChartError, match=r"backup\.destination"):
        render_chart(merged(BASE, {"artifacts": {"destination": "s3://bucket"}}), NAMESPACE)


INVALID = [
    ({"schedule": "nightly"}, "mlflow.backup.schedule"),
    ({"schedule": "0 3 * *"}, "mlflow.backup.schedule"),
    ({"keep": 0}, "mlflow.backup.keep"),
    ({"enabled": "maybe"}, "mlflow.backup.enabled"),
    ({"retention": 3}, "mlflow.backup.retention"),
]


@pytest.mark.parametrize(("backup", "field"), INVALID, ids=[str(b) for b, _ in INVALID])
def test_invalid_backup_settings_name_the_field(backup, field):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow={"backup": backup}))
    assert field in str(err.value)


def test_backups_beside_a_bucket_root_are_refused():
    store = {"type": "s3", "s3": {"bucket": "store", "prefix": "", "credentials_secret": "c"}}
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow={"artifacts": store}))
    assert "mlflow.artifacts.s3.prefix" in str(err.value) and "mlflow.backup" in str(err.value)
    nb.validate(nb.config_dict(mlflow={"artifacts": store, "backup": {"enabled": False}}))


def test_backups_are_on_by_default_and_the_config_reaches_the_chart(tmp_path):
    default = nb.validate(nb.config_dict())
    assert default.mlflow.backup.enabled
    backup = {"schedule": "@weekly", "keep": 3}
    config = nb.validate(nb.config_dict(mlflow={"backup": backup}))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    (made,) = find(manifests, "CronJob", "mlflow-backup")
    assert made["spec"]["schedule"] == backup["schedule"]
    (upload,) = pod_spec(made)["containers"]
    assert env(upload)["MLFLOW_BACKUP_KEEP"]["value"] == str(backup["keep"])
