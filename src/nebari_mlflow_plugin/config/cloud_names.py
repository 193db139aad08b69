"""Names of the cloud resources the plugin creates: computed here, and only here.

Terraform receives them as variables (whose `validation` blocks restate each
cloud's rules), the preview shows them and the state imports adopt them, so
all three agree. A name is `<project>-<namespace>` made valid for the cloud,
plus 8 hex digits of a hash over the project, namespace and a scope the cloud
makes unique (AWS region, GCP project, Azure storage-account postfix). The hash
keeps names distinct when the readable part had to be cut, and stable across
deploys, so a redeploy finds the data it kept.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

HASH_LENGTH = 8

# Each cloud's rules, as the tests and the Terraform validations check them.
S3_BUCKET_RE = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$"
GCS_BUCKET_RE = r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$"
GCP_SA_ID_RE = r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$"
IAM_ROLE_RE = r"^[\w+=,.@-]{1,64}$"
AZURE_ACCOUNT_RE = r"^[a-z0-9]{3,24}$"
AZURE_CONTAINER_RE = r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$"
AZURE_RESOURCE_GROUP_RE = r"^[-\w.()]{0,89}[-\w()]$"
AZURE_IDENTITY_RE = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$"

# Key prefix (folder) under the bucket or container that MLflow writes to.
ARTIFACTS_PREFIX = "artifacts"
AZURE_CONTAINER = "mlflow"


def stable_hash(*parts: str) -> str:
    """Short hex digest: same inputs, same name on every deploy."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:HASH_LENGTH]


def slug(*parts: str) -> str:
    """Lowercase letters, digits and single hyphens (DNS-like), from free text."""
    text = "-".join(parts).lower()
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text)).strip("-") or "x"


def _cut(text: str, length: int) -> str:
    return text[:length].rstrip("-") or "x"


def _no_google(text: str) -> str:
    # GCS refuses bucket names containing "google" or look-alikes.
    return re.sub(r"g[o0]{2}g", "gog", text)


@dataclass(frozen=True)
class AwsNames:
    bucket: str
    role: str


@dataclass(frozen=True)
class GcpNames:
    bucket: str
    service_account_id: str


@dataclass(frozen=True)
class AzureNames:
    resource_group: str
    storage_account: str
    container: str
    identity: str


def aws_names(project: str, namespace: str, region: str) -> AwsNames:
    digest = stable_hash("aws", region, project, namespace)
    base = slug(project, namespace)
    bucket = f"{_cut(base, 63 - len('-mlflow-') - HASH_LENGTH)}-mlflow-{digest}"
    if bucket.startswith(("xn--", "sthree-")):
        bucket = f"m{bucket}"[:63]
    return AwsNames(
        bucket=bucket,
        role=f"{_cut(base, 64 - len('-mlflow-') - HASH_LENGTH)}-mlflow-{digest}",
    )


def gcp_names(project: str, namespace: str, gcp_project: str) -> GcpNames:
    digest = stable_hash("gcp", gcp_project, project, namespace)
    base = _no_google(slug(project, namespace))
    if not base[0].isalpha():
        base = f"m{base}"
    # 30 characters at most: 13 + "-mlflow-" (8) + 8 hex = 29.
    return GcpNames(
        bucket=f"{_cut(base, 63 - len('-mlflow-') - HASH_LENGTH)}-mlflow-{digest}",
        service_account_id=f"{_cut(base, 13)}-mlflow-{digest}",
    )


def azure_names(project: str, namespace: str, postfix: str) -> AzureNames:
    digest = stable_hash("azure", postfix, project, namespace)
    base = slug(project, namespace)
    alnum = base.replace("-", "")
    return AzureNames(
        resource_group=f"{_cut(base, 90 - len('-mlflow-') - HASH_LENGTH)}-mlflow-{digest}",
        # 24 characters at most: 10 + "mlflow" (6) + 8 hex.
        storage_account=f"{alnum[:10]}mlflow{digest}",
        container=AZURE_CONTAINER,
        identity=f"{_cut(base, 100)}-mlflow-{digest}",
    )
