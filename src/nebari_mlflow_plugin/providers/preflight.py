"""Pre-flight checks: fail before anything is created, saying what to change.

Two kinds. Config checks (`require_*`) need no network and raise ValueError, which
pydantic turns into a validation error of nebari-config.yaml. Permission checks ask
the cloud whether the deploying identity may create what the stage creates; when
the cloud cannot be asked (no credentials, no network, an expired token, an error
answer) they warn and return: they run inside config validation, i.e. on every
nebari command including `destroy`, and must never turn into a traceback. Only an
answer that a permission is missing raises. The raw cloud calls are small module
functions (`_gcp_test_permissions`, `_azure_permissions`, aws_preflight's `_aws_client`)
that tests replace.

Each check returns a `CheckResult` saying whether it ran: `nebari mlflow preflight`
prints them all and says "passed" only when every check ran and passed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Set to skip the cloud permission checks (e.g. for a principal that may not read
# its own permissions); config checks always run.
SKIP_ENV = "NEBARI_MLFLOW_SKIP_PREFLIGHT"

GCP_PERMISSIONS = (
    "iam.serviceAccounts.create",
    "iam.serviceAccounts.setIamPolicy",
    "storage.buckets.create",
    "storage.buckets.setIamPolicy",
)
# The noncurrent-version rule (mlflow.artifacts.noncurrent_days) is part of the bucket:
# a new bucket gets it with storage.buckets.create, an existing one (adopted again, or
# created before the rule existed, or a changed number of days) through a bucket patch,
# which needs storage.buckets.update.
GCP_LIFECYCLE_PERMISSION = "storage.buckets.update"
AZURE_ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
AZURE_LOCK_WRITE = "Microsoft.Authorization/locks/write"
# azurerm_storage_management_policy, the noncurrent-version rule.
AZURE_MANAGEMENT_POLICY_WRITE = "Microsoft.Storage/storageAccounts/managementPolicies/write"
# What the stage does with each Azure permission, for the refusal.
AZURE_WHY = {
    AZURE_ROLE_ASSIGNMENT_WRITE: "grants its identity 'Storage Blob Data Contributor' on the "
    "artifact account",
    AZURE_LOCK_WRITE: "locks the account's resource group against deletion",
    AZURE_MANAGEMENT_POLICY_WRITE: "sets the account's lifecycle policy "
    "(mlflow.artifacts.noncurrent_days)",
}
ARM = "https://management.azure.com"
TIMEOUT_SECONDS = 20


PASSED = "passed"
FAILED = "failed"
NOT_CHECKED = "not checked"
NOT_NEEDED = "not needed"


@dataclass(frozen=True)
class CheckResult:
    """One pre-flight check: what it is about, whether it ran, and what it found."""

    name: str
    status: str  # PASSED, FAILED, NOT_CHECKED or NOT_NEEDED
    detail: str


class PreflightSkipped(Exception):
    """The cloud cannot be asked (no credentials); the reason is warned, not raised."""


def skipped(what: str, reason: str) -> CheckResult:
    return CheckResult(what, NOT_CHECKED, reason)


def enforce(results: Iterable[CheckResult]) -> None:
    """What config validation does with the results: a failed check raises (all
    failures in one message), a check that could not run warns."""
    results = list(results)
    failures = [r.detail for r in results if r.status == FAILED]
    if failures:
        raise ValueError("; ".join(failures))
    not_run = [r for r in results if r.status == NOT_CHECKED]
    if not_run:  # one warning: validation runs on every nebari command
        names = ", ".join(r.name for r in not_run)
        reasons = "; ".join(dict.fromkeys(r.detail for r in not_run))
        warnings.warn(
            f"nebari-mlflow-plugin: skipped the {names} pre-flight check ({reasons}); "
            "`nebari deploy` will fail later if a permission is missing",
            stacklevel=3,
        )


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the SDKs raise when the cloud cannot be asked: transport failures,
    credential refresh failures, HTTP error answers (requests, google-auth, azure-core
    are nebari's dependencies; imported here, validation runs on every command)."""
    errors: list[type[BaseException]] = [PreflightSkipped]
    with contextlib.suppress(ImportError):
        import requests

        errors.append(requests.RequestException)
    with contextlib.suppress(ImportError):
        from google.auth.exceptions import GoogleAuthError

        errors.append(GoogleAuthError)
    with contextlib.suppress(ImportError):
        from azure.core.exceptions import AzureError

        errors.append(AzureError)
    return tuple(errors)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PreflightSkipped):
        return str(exc)
    first_line = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"the cloud could not be asked: {type(exc).__name__}: {first_line}"


def skipped_by_env() -> bool:
    return os.environ.get(SKIP_ENV, "").lower() in {"1", "true", "yes"}


# ---------------------------------------------------------------- config checks


def require_azure_workload_identity(config: Any) -> None:
    azure = getattr(config, "azure", None)
    if azure is None or not azure.workload_identity_enabled:
        raise ValueError(
            "nebari-mlflow-plugin on Azure reaches Blob Storage through workload identity, "
            "which this cluster does not enable: set 'azure: {workload_identity_enabled: true}' "
            "in nebari-config.yaml (or 'mlflow: {enabled: false}')"
        )


# ---------------------------------------------------------------- GCP


def _gcp_test_permissions(project: str, permissions: list[str]) -> list[str]:
    """Permissions the caller holds on the project (Resource Manager testIamPermissions)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    except DefaultCredentialsError as exc:
        raise PreflightSkipped(f"no Google credentials: {exc}") from None
    response = AuthorizedSession(credentials).post(
        f"https://cloudresourcemanager.googleapis.com/v1/projects/{project}:testIamPermissions",
        json={"permissions": permissions},
        timeout=TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    return response.json().get("permissions", [])


def gcp_checks(project: str, lifecycle: bool = True) -> list[CheckResult]:
    """`lifecycle`: the bucket carries the noncurrent-version rule (noncurrent_days set)."""
    what = "GCP permission"
    needed = list(GCP_PERMISSIONS) + ([GCP_LIFECYCLE_PERMISSION] if lifecycle else [])
    try:
        granted = set(_gcp_test_permissions(project, needed))
    except unreachable_errors() as exc:
        return [skipped(what, _reason(exc))]
    missing = [p for p in needed if p not in granted]
    if not missing:
        held = ", ".join(needed)
        return [CheckResult(what, PASSED, f"the caller holds {held} on project {project!r}")]
    rule = " with its lifecycle rule" if lifecycle else ""
    return [
        CheckResult(
            what,
            FAILED,
            f"the identity deploying Nebari lacks {', '.join(missing)} on GCP project "
            f"{project!r}; nebari-mlflow-plugin creates a bucket{rule} and a service account "
            "bound to it. Grant roles/iam.serviceAccountAdmin and roles/storage.admin (or "
            "roles/owner), or set 'mlflow: {enabled: false}'",
        )
    ]


# ---------------------------------------------------------------- Azure


def _azure_permissions(subscription_id: str) -> list[dict[str, list[str]]]:
    """The caller's permissions at subscription scope (ARM Microsoft.Authorization/permissions)."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    env = os.environ
    if all(env.get(k) for k in ("ARM_TENANT_ID", "ARM_CLIENT_ID", "ARM_CLIENT_SECRET")):
        credential: Any = ClientSecretCredential(
            env["ARM_TENANT_ID"], env["ARM_CLIENT_ID"], env["ARM_CLIENT_SECRET"]
        )
    else:
        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    try:
        token = credential.get_token(f"{ARM}/.default").token
    except ClientAuthenticationError as exc:
        raise PreflightSkipped(f"no Azure credentials: {exc.message}") from None
    import requests

    response = requests.get(
        f"{ARM}/subscriptions/{subscription_id}/providers/Microsoft.Authorization/permissions",
        params={"api-version": "2022-04-01"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_SECONDS,
    )
    response.raise_for_status()
    return response.json().get("value", [])


def azure_allows(permissions: list[dict[str, list[str]]], action: str) -> bool:
    """ARM semantics: some entry's actions match (wildcards allowed) and its notActions do not."""
    action = action.lower()
    for entry in permissions:
        allowed = any(fnmatch.fnmatchcase(action, a.lower()) for a in entry.get("actions", []))
        denied = any(fnmatch.fnmatchcase(action, a.lower()) for a in entry.get("notActions", []))
        if allowed and not denied:
            return True
    return False


def azure_checks(force_destroy: bool, lifecycle: bool = True) -> list[CheckResult]:
    """`lifecycle`: the account gets the noncurrent-version policy (noncurrent_days set)."""
    what = "Azure permission"
    subscription_id = os.environ.get("ARM_SUBSCRIPTION_ID")
    if not subscription_id:
        return [skipped(what, "ARM_SUBSCRIPTION_ID is not set")]
    try:
        permissions = _azure_permissions(subscription_id)
    except unreachable_errors() as exc:
        return [skipped(what, _reason(exc))]
    needed = [AZURE_ROLE_ASSIGNMENT_WRITE] + ([] if force_destroy else [AZURE_LOCK_WRITE])
    needed += [AZURE_MANAGEMENT_POLICY_WRITE] if lifecycle else []
    missing = [action for action in needed if not azure_allows(permissions, action)]
    if not missing:
        held = ", ".join(needed)
        return [
            CheckResult(what, PASSED, f"the caller may {held} in subscription {subscription_id}")
        ]
    return [
        CheckResult(
            what,
            FAILED,
            f"the principal deploying Nebari (ARM_CLIENT_ID) may not {', '.join(missing)} in "
            f"subscription {subscription_id}; nebari-mlflow-plugin "
            f"{'; '.join(AZURE_WHY[action] for action in missing)}. Give the principal "
            "'Owner' or 'User Access Administrator' (with 'Contributor'), or set "
            "'mlflow: {enabled: false}'",
        )
    ]
