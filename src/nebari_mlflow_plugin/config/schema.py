"""The `mlflow:` block of nebari-config.yaml: its fields, defaults and the checks that
need only the block itself (the checks against the whole config, and the JupyterHub
injection, are in stages/inputs.py)."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from _nebari.utils import yaml
from nebari import schema
from pydantic import Field, StringConstraints, field_validator, model_validator
from ruamel.yaml import yaml_object

from nebari_mlflow_plugin import versions
from nebari_mlflow_plugin.config import pod_hosts, routes
from nebari_mlflow_plugin.config.provider_settings import AwsSettings, AzureSettings, GcpSettings
from nebari_mlflow_plugin.config.quantities import quantity

# Kubernetes resource quantities, e.g. 500m, 2, 1.5, 512Mi, 20Gi, 1e3.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)]
# DNS-1123 subdomain: names of Kubernetes Secrets and StorageClasses.
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
K8sName = Annotated[str, StringConstraints(pattern=K8S_NAME_PATTERN)]
# Keys inside a Secret.
SecretKey = Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]{1,253}$")]
# A top-level Keycloak group by name, as Nebari's own stages name theirs ("developer").
KeycloakGroup = Annotated[str, StringConstraints(pattern=r"^[^/\s][^/]{0,254}$")]
# A DNS host name (lower case, at least two labels): a host of MLflow's own.
HOST_PATTERN = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# A URL path of one or more segments, no trailing slash: what `--static-prefix` takes.
ROUTE_PATH_PATTERN = r"^(/[A-Za-z0-9._~-]+)+$"
# What KubeSpawner expands in user-pod environment values.
USER_PLACEHOLDERS = {
    "username",
    "unescaped_username",
    "servername",
    "unescaped_servername",
    "userid",
}
# Kubernetes label keys ([prefix/]name) and values: what a nodeSelector matches.
LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{LABEL_NAME}$"
LABEL_VALUE_PATTERN = rf"^({LABEL_NAME})?$"
LabelKey = Annotated[str, StringConstraints(pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN)]
# Container image references: repository (optionally with registry and port) and tag.
IMAGE_REPOSITORY_PATTERN = r"^[a-z0-9]+([._/:-][a-z0-9]+)*$"
IMAGE_TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class ConfigEnum(str, enum.Enum):
    """An enum `nebari init --explicit` can write: nebari dumps the config with its
    ruamel `yaml`, which represents only the types registered with it (as nebari
    does for its own ProviderEnum); registration is per class, so every enum below
    carries `@yaml_object(yaml)`."""

    @classmethod
    def to_yaml(cls, representer, node):
        return representer.represent_str(node.value)


@yaml_object(yaml)
class PullPolicy(ConfigEnum):
    Always = "Always"
    IfNotPresent = "IfNotPresent"
    Never = "Never"


class Image(schema.Base):
    """Container image of the MLflow server; the tag pins the MLflow version."""

    # Registry and name of the server image (any MLflow image with the -full drivers).
    repository: Annotated[str, StringConstraints(pattern=IMAGE_REPOSITORY_PATTERN)] = (
        versions.MLFLOW_IMAGE
    )
    # Image tag: pins the MLflow version the server runs and migrates the database to.
    tag: Annotated[str, StringConstraints(pattern=IMAGE_TAG_PATTERN)] = versions.MLFLOW_IMAGE_TAG
    # Kubernetes imagePullPolicy of the pods using this image.
    pull_policy: PullPolicy = PullPolicy.IfNotPresent


class PostgresImage(Image):
    """Container image of the in-cluster PostgreSQL (also runs the backup and restore Jobs)."""

    # Registry and name of the PostgreSQL image.
    repository: Annotated[str, StringConstraints(pattern=IMAGE_REPOSITORY_PATTERN)] = (
        versions.POSTGRES_IMAGE
    )
    # PostgreSQL version; a major version change needs a dump and restore (Backups).
    tag: Annotated[str, StringConstraints(pattern=IMAGE_TAG_PATTERN)] = versions.POSTGRES_IMAGE_TAG


class ResourceAmounts(schema.Base):
    """CPU and memory amounts; unset ones are sized from `workers`."""

    # CPU as a Kubernetes quantity, e.g. 500m or 2.
    cpu: Quantity | None = None
    # Memory as a Kubernetes quantity, e.g. 1536Mi or 2Gi.
    memory: Quantity | None = None


class Resources(schema.Base):
    """Kubernetes requests and limits of the MLflow server container.

    Amounts left unset are sized from `workers` (sizing.py, from measured memory);
    amounts the admin sets are used as they are.
    """

    # What the scheduler reserves for the server container.
    requests: ResourceAmounts = ResourceAmounts()
    # What the container may use at most (memory beyond it: the pod is OOM-killed).
    limits: ResourceAmounts = ResourceAmounts()

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name in ("cpu", "memory"):
            request, limit = getattr(self.requests, name), getattr(self.limits, name)
            if request is not None and limit is not None and quantity(request) > quantity(limit):
                raise ValueError(
                    f"mlflow.resources.requests.{name} {request!r} exceeds "
                    f"mlflow.resources.limits.{name} {limit!r}; a request must not exceed its limit"
                )
        return self


class SecretRef(schema.Base):
    """A key of a Kubernetes Secret in the Nebari namespace."""

    # Name of the Secret.
    name: K8sName
    # Key inside it.
    key: SecretKey = "uri"


@yaml_object(yaml)
class DatabaseType(ConfigEnum):
    internal = "internal"
    external = "external"


class Database(schema.Base):
    """Where MLflow keeps runs, metrics and the model registry."""

    # internal: PostgreSQL in the cluster on a volume; external: a managed database
    # whose SQLAlchemy URI is in `external_secret`.
    type: DatabaseType = DatabaseType.internal
    # Volume of the in-cluster PostgreSQL.
    size: Quantity = "20Gi"
    # StorageClass of that volume; null uses the provider's default.
    storage_class: K8sName | None = None
    # Image of the in-cluster PostgreSQL.
    image: PostgresImage = PostgresImage()
    # Secret holding the URI, e.g. postgresql+psycopg2://user:pass@host:5432/mlflow.
    external_secret: SecretRef | None = None
    # An existing PersistentVolumeClaim for the in-cluster PostgreSQL instead of the one
    # the plugin creates: how the database moves to another storage class
    # (docs/admin/volumes.md#moving-a-volume).
    existing_claim: K8sName | None = None

    @model_validator(mode="after")
    def _external_needs_secret(self) -> Database:
        if self.type == DatabaseType.external and self.external_secret is None:
            raise ValueError(
                "mlflow.database.external_secret is required when mlflow.database.type is "
                "'external': give the name (and key, default 'uri') of a Secret holding the "
                "database URI"
            )
        if self.type == DatabaseType.external and self.existing_claim:
            raise ValueError(
                "mlflow.database.existing_claim is the volume of the in-cluster PostgreSQL; "
                "it does not apply to mlflow.database.type 'external'"
            )
        return self


@yaml_object(yaml)
class ArtifactsType(ConfigEnum):
    default = "default"
    s3 = "s3"


@yaml_object(yaml)
class VolumeAccessMode(ConfigEnum):
    ReadWriteOnce = "ReadWriteOnce"
    ReadWriteMany = "ReadWriteMany"


class S3Compatible(schema.Base):
    """An S3-compatible object store (MinIO, Ceph RGW) reached with static credentials."""

    # e.g. http://minio.storage.svc:9000; null means AWS S3 itself.
    endpoint_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = (
        None
    )
    # Bucket name (it must exist).
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    # Key prefix inside the bucket.
    prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!_.*'()/-]*$")] = "mlflow"
    # Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    credentials_secret: K8sName
    # Skip TLS certificate verification towards endpoint_url (self-signed MinIO).
    ignore_tls: bool = False


class Artifacts(schema.Base):
    """Where models, plots and files logged to MLflow are stored."""

    # default: the provider's store (a volume on local/existing); s3: an S3-compatible store.
    type: ArtifactsType = ArtifactsType.default
    # Volume size, storage class and access mode when artifacts live on a volume.
    size: Quantity = "50Gi"
    # StorageClass of the artifact volume; null uses the provider's default.
    storage_class: K8sName | None = None
    # ReadWriteOnce, or ReadWriteMany for more than one replica on a volume; fixed at the
    # first deploy (docs/admin/volumes.md).
    access_mode: VolumeAccessMode = VolumeAccessMode.ReadWriteOnce
    # An existing PersistentVolumeClaim instead of the one the plugin creates: how
    # artifacts move to another storage class or access mode
    # (docs/admin/volumes.md#moving-a-volume).
    existing_claim: K8sName | None = None
    # The store for type s3.
    s3: S3Compatible | None = None
    # Cloud stores (aws, gcp, azure) keep every version of every object: a lifecycle
    # rule deletes noncurrent versions (deleted backups, artifacts purged by `mlflow
    # gc`, overwritten files) this many days after they became noncurrent, so the
    # bill is bounded. null: no rule, noncurrent versions are kept (and billed) forever.
    noncurrent_days: Annotated[int, Field(ge=1, le=36500)] | None = 30
    # Large files (100 MiB and more) move between user pods and the bucket directly,
    # through URLs the server presigns after checking the user's permission on the run
    # (MLflow's proxied multipart transfers): uploads on aws and azure, downloads on aws.
    # null: on for the cloud stores this plugin creates, off for an admin's
    # S3-compatible store (pods must reach its endpoint_url); gcp cannot sign them
    # (docs/admin/providers.md#large-artifacts-straight-to-the-bucket). false: every byte
    # goes through the server.
    direct_transfers: bool | None = None

    @model_validator(mode="after")
    def _s3_needs_settings(self) -> Artifacts:
        if self.type == ArtifactsType.s3 and self.s3 is None:
            raise ValueError(
                "mlflow.artifacts.s3 is required when mlflow.artifacts.type is 's3': give "
                "bucket, credentials_secret and (for MinIO/Ceph) endpoint_url"
            )
        if self.type == ArtifactsType.s3 and self.existing_claim:
            raise ValueError(
                "mlflow.artifacts.existing_claim is an artifact volume; with "
                "mlflow.artifacts.type 's3' artifacts are in the bucket: remove one of them"
            )
        return self


def _check_placeholders(field: str, value: str | None) -> str | None:
    if value is None:
        return value
    unknown = set(re.findall(r"(?<!{){([^{}]*)}(?!})", value)) - USER_PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"mlflow.{field} {value!r} uses unknown placeholder(s) {sorted(unknown)}; "
            f"allowed: {sorted(USER_PLACEHOLDERS)}"
        )
    # KubeSpawner expands env values with str.format; what it rejects fails the spawn.
    try:
        value.format(**dict.fromkeys(USER_PLACEHOLDERS, "user"))
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(
            f"mlflow.{field} {value!r} is not a valid template ({exc}); write {{{{ and }}}} "
            "for literal braces"
        ) from None
    return value


ExperimentName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Notebook(schema.Base):
    """What JupyterLab user pods get besides the environment (needs `inject_env`)."""

    # Mount the notebook package (run attribution and nebari.* tags, the workflow
    # helper, cell capture) into every user pod, on PYTHONPATH: nothing to install.
    client: bool = True
    # Record every executed cell of every kernel as an MLflow run (needs `client`).
    capture_cells: bool = False
    # Experiment of the cell runs, may use {username}; null: the user's experiment
    # (`user_experiment`) or "notebook-cells".
    capture_experiment: ExperimentName | None = None
    # Regular expressions (Python syntax) masked in recorded code and outputs, besides
    # the built-in ones (tokens, keys, passwords); a group named `secret` masks only it.
    capture_redact: list[Annotated[str, StringConstraints(min_length=1)]] = []
    # MLflow's asynchronous logging in user pods (MLFLOW_ENABLE_ASYNC_LOGGING, points
    # batched for up to 1 s): `mlflow.log_metric` & co. return at once instead of
    # waiting for the server (~8 ms each); MLflow sends what is queued at `end_run`
    # and when the kernel exits. On by default: training loops are what users log from.
    # Also names the model registry (MLFLOW_REGISTRY_URI, the same server), which keeps
    # MLflow from looking for a Spark session on every call.
    async_logging: bool = True

    @field_validator("capture_experiment")
    @classmethod
    def _experiment_placeholders(cls, value: str | None) -> str | None:
        return _check_placeholders("notebook.capture_experiment", value)

    @field_validator("capture_redact")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"mlflow.notebook.capture_redact[{index}] {pattern!r} is not a valid "
                    f"regular expression: {exc}"
                ) from None
        return value

    @model_validator(mode="after")
    def _capture_needs_client(self) -> Notebook:
        if self.capture_cells and not self.client:
            raise ValueError(
                "mlflow.notebook.capture_cells needs mlflow.notebook.client: true (the "
                "capture extension is the delivered notebook package)"
            )
        return self


# `mlflow gc --older-than`: days, hours, minutes, seconds in that order, e.g. 30d, 1d12h, 0s.
OLDER_THAN_PATTERN = re.compile(
    r"([0-9]+(\.[0-9]+)?d)?([0-9]+(\.[0-9]+)?h)?([0-9]+(\.[0-9]+)?m)?([0-9]+(\.[0-9]+)?s)?"
)
# Five cron fields (minute hour day month weekday) or a macro such as @daily.
CRON_PATTERN = re.compile(r"@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+")


def cron_schedule(field: str, value: str) -> str:
    """`value` stripped, or a ValueError naming `field` and what a schedule looks like."""
    if not CRON_PATTERN.fullmatch(value.strip()):
        raise ValueError(
            f"{field} {value!r} is not a cron schedule: give five fields "
            "(minute hour day-of-month month day-of-week, UTC) such as '0 3 * * *', or "
            "@daily/@weekly/@monthly/@hourly"
        )
    return value.strip()


class GarbageCollection(schema.Base):
    """A scheduled `mlflow gc`. Off by default: it deletes data permanently."""

    # Run the gc CronJob.
    enabled: bool = False
    # When it runs (cron, UTC).
    schedule: str = "0 3 * * *"
    # Purge runs, experiments and logged models deleted more than this long ago.
    older_than: str = "30d"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return cron_schedule("mlflow.gc.schedule", value)

    @field_validator("older_than")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not OLDER_THAN_PATTERN.fullmatch(value):
            raise ValueError(
                f"mlflow.gc.older_than {value!r} is not a duration: write days, hours, "
                "minutes and seconds in that order, such as '30d', '1d12h' or '0s'"
            )
        return value


class Backup(schema.Base):
    """Logical backups (pg_dump) of the in-cluster database into the artifact store:
    on a schedule, on demand (`nebari mlflow backup`) and before every schema upgrade."""

    # Scheduled backups and a backup before every schema upgrade (internal database only).
    enabled: bool = True
    # When the scheduled backup runs (cron, UTC).
    schedule: str = "30 2 * * *"
    # Backups kept of each kind (scheduled, on-demand, pre-upgrade): older ones are deleted.
    keep: Annotated[int, Field(ge=1, le=1000)] = 7

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return cron_schedule("mlflow.backup.schedule", value)


@yaml_object(yaml)
class DefaultPermission(ConfigEnum):
    NO_PERMISSIONS = "NO_PERMISSIONS"
    READ = "READ"
    EDIT = "EDIT"


@yaml_object(yaml)
class WorkflowTokens(ConfigEnum):
    AUTO = "auto"
    MANUAL = "manual"


class Auth(schema.Base):
    """Who may do what in MLflow (docs/admin/auth.md). Off: anyone who reaches the
    server can read, change and delete everything (insecure)."""

    # Every request is a known Nebari user; false turns authentication off (insecure).
    enabled: bool = True
    # What everyone may do with experiments and models they did not create (creators
    # MANAGE theirs; Nebari admins manage everything).
    default_permission: DefaultPermission = DefaultPermission.READ
    # Seconds a verified token or session is trusted before JupyterHub / forward-auth is
    # asked again: how long a revoked token keeps working, and how long verified users
    # keep working while JupyterHub is down, on every worker and replica (then a fast
    # refusal naming the outage). Each worker also remembers its permission lookups this
    # long, but refuses only on fresh ones: a withdrawn grant keeps allowing at most this
    # long, a new grant applies at once.
    cache_seconds: Annotated[int, Field(ge=5, le=600)] = 60
    # Lifetime of workflow tokens, the MLflow-only credential of Argo workflows and
    # scheduled jobs (a server's own token dies when the server stops, Nebari culls idle
    # servers after 30 minutes): a job outlives its server by at least half of it (docs:
    # Authentication and permissions, "Credentials").
    workflow_token_hours: Annotated[int, Field(ge=1, le=24 * 90)] = 36
    # auto: each user's JupyterLab server keeps a workflow token in their home, made when
    # MLflow is first used there and renewed at half its lifetime: nothing to set up.
    # manual: only users who run `python -m nebari_mlflow_plugin.notebook.tokens` have one.
    workflow_tokens: WorkflowTokens = WorkflowTokens.AUTO
    # Keycloak groups whose members get the JupyterHub scope that MLflow requires
    # (a client role on Nebari's `jupyterhub` client; Nebari puts every user in one of
    # these by default). Members of no listed group cannot use MLflow with their tokens.
    hub_access_groups: Annotated[list[KeycloakGroup], Field(min_length=1)] = [
        "admin", "developer", "analyst",
    ]  # fmt: skip


class MLflow(schema.Base):
    """The `mlflow:` block. `{}` or absent deploys a working server."""

    # false removes the server and keeps its data (What survives what).
    enabled: bool = True
    image: Image = Image()
    # Server pods; more than one needs artifacts every replica reaches (a cloud bucket,
    # artifacts.type s3, or a ReadWriteMany volume).
    replicas: Annotated[int, Field(ge=1, le=20)] = 1
    # Uvicorn worker processes per replica (`mlflow server --workers`).
    workers: Annotated[int, Field(ge=1, le=32)] = 4
    resources: Resources = Resources()
    # Node labels the server, PostgreSQL and migration pods must carry. null: Nebari's
    # general node group (what stage 02 reports, as Nebari's own services use); {}: any node.
    node_selector: dict[LabelKey, LabelValue] | None = None
    database: Database = Database()
    artifacts: Artifacts = Artifacts()
    # Delete the database volume and artifact store on `nebari destroy` or when the
    # plugin is disabled. Off: data outlives the deployment and is reused on redeploy.
    force_destroy: bool = False
    # Add MLFLOW_TRACKING_URI (in-cluster URL) and the Nebari context to every
    # JupyterLab user pod.
    inject_env: bool = True
    # Default experiment of each user, e.g. "users/{username}": {username} is the user's
    # name as JupyterHub shows it (not KubeSpawner's escaped slug), {servername} the
    # named server. null: "users/{username}" with auth on (others' experiments are read-only
    # to a user), MLflow's "Default" with auth off.
    user_experiment: ExperimentName | None = None
    # The notebook package in user pods and per-cell runs.
    notebook: Notebook = Notebook()
    # URL path at https://<domain>; also the server's --static-prefix.
    route_path: Annotated[str, StringConstraints(pattern=ROUTE_PATH_PATTERN)] = "/mlflow"
    # A host of MLflow's own, e.g. mlflow.<domain> (docs/admin/auth.md#browsers-path-or-host):
    # MLflow at https://<host><route_path>/, another origin than the users' servers and
    # apps under https://<domain>/user/. Its DNS record must point at Nebari's load
    # balancer; the certificate comes as the domain's does. null: the domain.
    host: Annotated[str, StringConstraints(pattern=HOST_PATTERN, max_length=253)] | None = None
    # Serve Prometheus metrics at /metrics (the server's root, not under route_path);
    # with Nebari's monitoring.enabled, also the dashboard and alerts
    # (docs/admin/monitoring.md).
    prometheus: bool = True
    # Pod address ranges beyond 10/8, 172.16/12 and 192.168/16 that MLflow must accept
    # in the Host header (Prometheus and probes reach pods by IP), as IPv4 CIDRs or
    # host patterns, e.g. ['100.64.0.0/10'] for EKS custom networking.
    allowed_hosts_extra: list[str] = []
    # MLflow's AI Gateway (LLM provider endpoints and stored provider API keys). Off:
    # everyone who reaches the server could use the keys stored there. Stored keys are
    # encrypted with a passphrase generated per deployment (Secret mlflow-crypto).
    ai_gateway: bool = False
    # Scheduled permanent deletion of deleted runs and their artifacts.
    gc: GarbageCollection = GarbageCollection()
    # Scheduled and pre-upgrade backups of the in-cluster database (docs/admin/backups.md).
    backup: Backup = Backup()
    # Authentication and permissions (docs/admin/auth.md).
    auth: Auth = Auth()
    # Per-provider settings; only the deployment's provider's section is used.
    aws: AwsSettings = AwsSettings()
    gcp: GcpSettings = GcpSettings()
    azure: AzureSettings = AzureSettings()
    # Helm values for the chart, deep-merged last (lists replace).
    overrides: dict[str, Any] = {}

    @field_validator("allowed_hosts_extra")
    @classmethod
    def _pod_hosts(cls, value: list[str]) -> list[str]:
        return [pod_hosts.check(entry) for entry in value]

    # Keys of the 2025.10.x plugin, named with what replaces them (legacy_config.py).
    @model_validator(mode="before")
    @classmethod
    def _no_2025_10_keys(cls, data: Any) -> Any:
        from nebari_mlflow_plugin.config import legacy_config

        return legacy_config.check(data)

    @field_validator("route_path")
    @classmethod
    def _route_not_taken(cls, value: str) -> str:
        """Nebari's fixed routes; tf_extensions' ones are checked with the whole config."""
        taken = routes.collisions(value, routes.NEBARI_RULES)
        if taken:
            raise ValueError(routes.route_error(value, taken))
        return value

    @field_validator("user_experiment")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return _check_placeholders("user_experiment", value)

    @model_validator(mode="after")
    def _auth_needs_the_client(self) -> MLflow:
        if self.enabled and self.auth.enabled and self.inject_env and not self.notebook.client:
            raise ValueError(
                "mlflow.notebook.client: false with mlflow.auth.enabled: true gives user pods "
                "the tracking URI but no credential: every MLflow call from a notebook would "
                "get 401. Set mlflow.notebook.client: true (it sends the pod's JupyterHub "
                "token to MLflow), or mlflow.inject_env: false if users configure MLflow "
                "themselves (MLFLOW_TRACKING_TOKEN)"
            )
        return self

    @model_validator(mode="after")
    def _capture_needs_injection(self) -> MLflow:
        if self.notebook.capture_cells and not self.inject_env:
            raise ValueError(
                "mlflow.notebook.capture_cells needs mlflow.inject_env: true (user pods "
                "get the tracking URI and the capture extension through it)"
            )
        return self

    @model_validator(mode="after")
    def _backups_beside_the_artifacts(self) -> MLflow:
        """Backups go next to the served prefix (`<prefix>-backups`), never inside it:
        a bucket's root has no "next to"."""
        s3 = self.artifacts.s3
        if (
            self.backup.enabled
            and s3 is not None
            and self.artifacts.type == ArtifactsType.s3
            and not s3.prefix.strip("/")
        ):
            raise ValueError(
                "mlflow.backup needs mlflow.artifacts.s3.prefix: with an empty prefix the server "
                "serves the whole bucket and a backup beside it would be served too; set a "
                "prefix such as 'mlflow' or mlflow.backup.enabled: false"
            )
        return self

    def _replicas_need_shared_storage(self, provider: str | None) -> None:
        # On clouds the default store is a bucket every replica reaches.
        on_volume = self.artifacts.type == ArtifactsType.default and provider in (
            None, "local", "existing",
        )  # fmt: skip
        if (
            self.replicas > 1
            and on_volume
            and self.artifacts.access_mode != VolumeAccessMode.ReadWriteMany
        ):
            raise ValueError(
                f"mlflow.replicas={self.replicas} needs artifacts every replica can reach: set "
                "mlflow.artifacts.access_mode to 'ReadWriteMany' (with a storage class that "
                "supports it) or use mlflow.artifacts.type 's3'"
            )
