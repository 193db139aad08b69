"""Taking over a deployment of nebari-mlflow-plugin 2025.10.x, in place.

The public plugin had the same stage name, so its resources are in our OpenTofu
state: a Bitnami Helm release `<project>-mlflow` (MLflow 3.3.2, Bitnami
PostgreSQL, MinIO on local) and per cloud a bucket (AWS: with a KMS key) or an
Azure storage account. The rendered root module's takeover.tf files move the
buckets to our addresses and forget (never destroy) the release, the KMS key and
the Azure account. The old release keeps running; our server pod's `takeover`
init containers copy its database and artifacts, verify the counts and report
them; `nebari mlflow migrate --finish` removes the old release after that.

What the old release is, and where its data lives, comes from the values Helm was
given, exactly as Bitnami's chart 5.1.17 derives names from them: from the
state's `helm_release.mlflow` on the first deploy (offline), from the release's
own Helm record in the cluster afterwards (the state has forgotten it).
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from nebari_mlflow_plugin.config.overrides import merge_values

OLD_RELEASE_ADDRESS = "helm_release.mlflow"
# The old stage's stores, by state address (instance).
OLD_STORES = frozenset(
    {
        "aws_s3_bucket.artifact_storage",
        "google_storage_bucket.mlflow[0]",
        "azurerm_storage_account.mlflow[0]",
    }
)
# Bitnami chart defaults (bitnami/mlflow values.yaml) the 2025.10.x plugin kept.
BITNAMI_DATABASE, BITNAMI_USER = "bitnami_mlflow", "bn_mlflow"
BITNAMI_MINIO_PORT = 80  # minio.service.ports.api in the mlflow chart
BITNAMI_TRACKING_MOUNT = "/bitnami/mlflow"  # tracking.persistence.mountPath
SOURCE_MOUNT = "/takeover/source"  # where _takeover.tpl mounts the old tracking claim


@dataclass(frozen=True)
class Fate:
    """What the first deploy does with one address of the old stage."""

    address: str
    action: str  # "moved to <ours>", "kept (forgotten)", "destroyed (holds no data)"
    note: str = ""


FATES: dict[str, list[Fate]] = {
    "all": [
        Fate(
            OLD_RELEASE_ADDRESS,
            "kept (forgotten): keeps running until `nebari mlflow migrate --finish`",
            "its PostgreSQL and MinIO/tracking volumes are copied by the takeover",
        ),
        Fate("kubernetes_manifest.mlflow-*", "destroyed (holds no data)", "old route /mlflow"),
    ],
    "aws": [
        Fate("aws_s3_bucket.artifact_storage", "moved to aws_s3_bucket.artifacts[0]"),
        Fate(
            "aws_s3_bucket_{ownership_controls,public_access_block,versioning}.artifact_storage",
            "moved to the same types' .artifacts[0]",
        ),
        Fate(
            "aws_s3_bucket_server_side_encryption_configuration.mlflow_s3_encryption[0]",
            "moved to ...server_side_encryption_configuration.artifacts[0]",
        ),
        Fate(
            "aws_kms_key.mlflow_kms_key[0]",
            "kept (forgotten), not scheduled for deletion",
            "mlflow.aws.kms_key_arn names it: old objects stay readable",
        ),
        Fate("random_id.bucket_name_suffix", "kept (forgotten)"),
        Fate(
            "aws_iam_policy.mlflow_s3, module.iam_assumable_role_admin", "destroyed (holds no data)"
        ),
    ],
    "gcp": [
        Fate("google_storage_bucket.mlflow[0]", "moved to google_storage_bucket.artifacts[0]"),
        Fate("google_service_account.mlflow[0] and its IAM bindings", "destroyed (holds no data)"),
    ],
    "azure": [
        Fate(
            "azurerm_storage_account.mlflow[0]",
            "kept (forgotten), in Nebari's resource group",
            "delete it yourself after the takeover: `nebari destroy` would delete it",
        ),
        Fate("azurerm_storage_container.mlflow[0]", "kept (forgotten)"),
        Fate(
            "azurerm_user_assigned_identity.mlflow[0], role assignment, federated credential",
            "destroyed (holds no data)",
        ),
    ],
}


class TakeoverError(ValueError):
    """The config or the cluster does not allow the takeover as it stands."""


def merged_values(documents: list[Any]) -> dict[str, Any]:
    """Helm's view of a `values = [...]` list: YAML/JSON documents merged in order."""
    loaded = [yaml.safe_load(d) if isinstance(d, str) else d for d in documents]
    return merge_values(*(d for d in loaded if isinstance(d, dict)))


@dataclass
class OldDeployment:
    """The 2025.10.x deployment: its release, the values it was given, and (from the
    state) the attributes of its cloud resources."""

    release: str
    namespace: str
    values: dict[str, Any]
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    found_in: str = "state"

    def attribute(self, address: str, name: str) -> Any:
        return (self.resources.get(address) or {}).get(name)

    # -- the old cloud store (from the state)
    @property
    def aws_bucket(self) -> str | None:
        """From the state, else from the values the old release was given (its
        template passed the bucket as externalS3.bucket)."""
        in_state = self.attribute("aws_s3_bucket.artifact_storage", "bucket")
        return in_state or (self._value("externalS3", "bucket") if not self.resources else None)

    @property
    def aws_kms_key_arn(self) -> str | None:
        return self.attribute("aws_kms_key.mlflow_kms_key[0]", "arn")

    @property
    def gcs_bucket(self) -> tuple[str, str] | None:
        bucket = self.resources.get("google_storage_bucket.mlflow[0]")
        return (bucket["name"], bucket["location"]) if bucket else None

    @property
    def azure_account(self) -> dict[str, Any] | None:
        return self.resources.get("azurerm_storage_account.mlflow[0]")

    # -- names as Bitnami's chart derives them from the release and values
    def _value(self, *path: str, default: Any = None) -> Any:
        node: Any = self.values
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def database(self) -> dict[str, Any]:
        auth = self._value("postgresql", "auth", default={}) or {}
        if self._value("postgresql", "enabled", default=True) is False:
            raise TakeoverError(
                "the 2025.10.x release used an external database (postgresql.enabled: false "
                "in its mlflow.overrides): point mlflow.database at that database instead "
                "(type: external), there is nothing to copy"
            )
        return {
            "host": f"{self.release}-postgresql",
            "port": int(
                self._value("postgresql", "primary", "service", "ports", "postgresql", default=5432)
            ),
            "name": auth.get("database") or BITNAMI_DATABASE,
            "user": auth.get("username") or BITNAMI_USER,
            "passwordSecret": {
                "name": auth.get("existingSecret") or f"{self.release}-postgresql",
                "key": "password",
            },
        }

    def artifacts(self) -> dict[str, Any]:
        """Where the old server's --artifacts-destination pointed (Bitnami's
        tracking/deployment.yaml): its MinIO, an external S3 host, a GCS bucket, else
        the tracking volume."""
        if self._value("minio", "enabled", default=True):
            bucket = str(self._value("minio", "defaultBuckets", default="mlflow")).split(",")[0]
            port = self._value("minio", "service", "ports", "api", default=BITNAMI_MINIO_PORT)
            secret = self._value("minio", "auth", "existingSecret") or f"{self.release}-minio"
            return {
                "source": f"s3://{bucket.strip()}",
                "s3EndpointUrl": f"http://{self.release}-minio:{port}",
                "credentialsSecret": {
                    "name": secret,
                    "accessKeyKey": "root-user",
                    "secretKeyKey": "root-password",
                },
            }
        if self._value("externalS3", "host"):
            raise TakeoverError(
                "the 2025.10.x release stored artifacts in an external S3 store "
                "(externalS3.host in its mlflow.overrides): copy them with your own tools"
            )
        if self._value("externalGCS", "bucket"):
            return {"source": f"gs://{self._value('externalGCS', 'bucket')}"}
        if self._value("tracking", "persistence", "enabled", default=True) is False:
            return {"source": ""}  # an emptyDir: nothing survived a restart
        claim = (
            self._value("tracking", "persistence", "existingClaim") or f"{self.release}-tracking"
        )
        return {"source": f"{SOURCE_MOUNT}/mlartifacts", "claim": claim}

    def old_server_destination(self) -> str:
        """The `--artifacts-destination` Bitnami's chart gave the old server, to compare
        with the one its Deployment in the cluster actually has."""
        source = self.artifacts()["source"]
        if source.startswith(SOURCE_MOUNT):
            mount = self._value("tracking", "persistence", "mountPath") or BITNAMI_TRACKING_MOUNT
            return f"{mount}/mlartifacts"
        return source

    def chart_values(self) -> dict[str, Any] | None:
        """The chart's `takeover` values; None without an old release (nothing to copy)."""
        if not self.release:
            return None
        return {"release": self.release, "database": self.database(),
                "artifacts": self.artifacts()}  # fmt: skip


def from_state(state: dict[str, Any]) -> OldDeployment | None:
    """The old deployment in a state (`tofu state pull` JSON), or None."""
    resources: dict[str, dict[str, Any]] = {}
    for resource in state.get("resources") or []:
        if resource.get("mode") != "managed" or resource.get("module"):
            continue
        for instance in resource.get("instances") or []:
            key = instance.get("index_key")
            suffix = "" if key is None else f"[{json.dumps(key)}]"
            address = f"{resource['type']}.{resource['name']}{suffix}"
            resources[address] = instance.get("attributes") or {}
    release = resources.get(f"{OLD_RELEASE_ADDRESS}[0]")
    if release is None:
        if not OLD_STORES & resources.keys():
            return None
        # 2025.10.x with mlflow.enabled: false: no release, but its AWS bucket and key
        # (not conditional there) are in the state, to adopt.
        return OldDeployment(release="", namespace="", values={}, resources=resources)
    return OldDeployment(
        release=release["name"],
        namespace=release["namespace"],
        values=merged_values(release.get("values") or []),
        resources=resources,
    )


OUR_RELEASE_MODULE = "module.mlflow[0]"


def in_progress(state: dict[str, Any]) -> bool:
    """Whether our own release in the state was given takeover values (a takeover
    began and may not be finished)."""
    for resource in state.get("resources") or []:
        if (resource.get("module"), resource.get("type")) != (OUR_RELEASE_MODULE, "helm_release"):
            continue
        for instance in resource.get("instances") or []:
            values = merged_values((instance.get("attributes") or {}).get("values") or [])
            if (values.get("takeover") or {}).get("release"):
                return True
    return False


def decode_helm_release(secret_data: str) -> dict[str, Any]:
    """A Helm 3 storage Secret's `release` field: base64 (Kubernetes) of base64 of
    gzipped JSON."""
    raw = base64.b64decode(base64.b64decode(secret_data))
    return json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


def from_helm_release(release: dict[str, Any]) -> OldDeployment | None:
    """The old deployment from its Helm record, if it is a Bitnami mlflow release."""
    chart = (release.get("chart") or {}).get("metadata") or {}
    if chart.get("name") != "mlflow" or "bitnami" not in json.dumps(chart).lower():
        return None
    return OldDeployment(
        release=release["name"],
        namespace=release["namespace"],
        values=release.get("config") or {},
        found_in="cluster",
    )


def config_problems(config: Any, old: OldDeployment) -> list[str]:
    """What the config must say so that the first deploy adopts the old store
    instead of replacing it (a bucket's name and location cannot change in place)."""
    provider = str(getattr(config.provider, "value", config.provider))
    problems = []
    if old.release and old.namespace != config.namespace:
        problems.append(
            f"the 2025.10.x release is in namespace {old.namespace!r}, the config names "
            f"{config.namespace!r}"
        )
    if provider == "aws" and old.aws_bucket:
        if config.mlflow.aws.bucket_name != old.aws_bucket:
            problems.append(f"set mlflow.aws.bucket_name: {old.aws_bucket} (the bucket to adopt)")

        if old.aws_kms_key_arn and config.mlflow.aws.kms_key_arn != old.aws_kms_key_arn:
            problems.append(
                f"set mlflow.aws.kms_key_arn: {old.aws_kms_key_arn} (the key the old "
                "objects are encrypted with)"
            )
    if provider == "gcp" and old.gcs_bucket:
        name, location = old.gcs_bucket
        if config.mlflow.gcp.bucket_name != name:
            problems.append(f"set mlflow.gcp.bucket_name: {name} (the bucket to adopt)")
        if (config.mlflow.gcp.bucket_location or config.google_cloud_platform.region).upper() != (
            location.upper()
        ):
            problems.append(f"set mlflow.gcp.bucket_location: {location} (the bucket's location)")
    if config.mlflow.database.type.value != "internal":
        problems.append(
            "mlflow.database.type must be internal during the takeover (the old database "
            "is copied into the internal one)"
        )
    return problems
