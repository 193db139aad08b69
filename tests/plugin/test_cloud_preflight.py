"""Pre-flight checks: a wrong config or a principal without the permissions the stage
needs fails before anything is created, and says what to change. The cloud calls
themselves are replaced (no network); without credentials the checks warn and pass
so an offline render keeps working."""

from __future__ import annotations

import pytest
from support import nebari as nb

from nebari_mlflow_plugin.config.stage_outputs import OIDC_ISSUER
from nebari_mlflow_plugin.providers import preflight, provider_for


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    monkeypatch.delenv(preflight.SKIP_ENV, raising=False)


def config_for(provider: str, mlflow: dict | None = None, wi: bool = True):
    data = nb.config_dict(provider, mlflow if mlflow is not None else {})
    if provider == "azure":
        data["azure"]["workload_identity_enabled"] = wi
    return nb.validate(data)


# ---------------------------------------------------------------- config checks


def test_azure_requires_workload_identity():
    provider = provider_for("azure")
    provider.check_config(config_for("azure", wi=True))
    with pytest.raises(ValueError, match=r"workload_identity_enabled: true"):
        provider.check_config(config_for("azure", wi=False))


@pytest.mark.parametrize("name", ["aws", "gcp", "azure"])
def test_static_key_s3_store_is_refused_on_clouds(name):
    block = {"artifacts": {"type": "s3", "s3": {"bucket": "b-1", "credentials_secret": "creds"}}}
    with pytest.raises(ValueError, match="workload identity"):
        provider_for(name).check_config(config_for(name, block))


def test_aws_names_the_missing_oidc_issuer():
    with pytest.raises(KeyError, match=r"cluster_oidc_issuer_url.*02-infrastructure"):
        OIDC_ISSUER.read({"stages/02-infrastructure": {}})


# ---------------------------------------------------------------- GCP


def test_gcp_passes_when_every_permission_is_granted(monkeypatch):
    asked = {}

    def granted(project, permissions):
        asked["project"] = project
        return list(permissions)

    monkeypatch.setattr(preflight, "_gcp_test_permissions", granted)
    provider_for("gcp").preflight(config_for("gcp"))
    assert asked["project"] == "my-gcp-project"


def test_gcp_lists_missing_permissions(monkeypatch):
    monkeypatch.setattr(
        preflight, "_gcp_test_permissions",
        lambda project, permissions: ["storage.buckets.create", "storage.buckets.setIamPolicy"],
    )  # fmt: skip
    with pytest.raises(ValueError) as err:
        provider_for("gcp").preflight(config_for("gcp"))
    message = str(err.value)
    assert "iam.serviceAccounts.create" in message and "iam.serviceAccounts.setIamPolicy" in message
    assert "roles/iam.serviceAccountAdmin" in message and "enabled: false" in message


def test_gcp_asks_for_bucket_update_only_with_the_lifecycle_rule(monkeypatch):
    """The noncurrent-version rule is written by a bucket patch on a bucket that exists
    (adopted again, or older than the rule): storage.buckets.update, asked only when
    noncurrent_days creates the rule."""
    asked = []

    def create_only(project, permissions):
        asked.append(list(permissions))
        return list(preflight.GCP_PERMISSIONS)

    monkeypatch.setattr(preflight, "_gcp_test_permissions", create_only)
    with pytest.raises(ValueError, match=r"lacks storage\.buckets\.update .*lifecycle rule"):
        provider_for("gcp").preflight(config_for("gcp"))
    asked.clear()
    provider_for("gcp").preflight(config_for("gcp", {"artifacts": {"noncurrent_days": None}}))
    assert asked and all("storage.buckets.update" not in a for a in asked)


def test_gcp_without_credentials_warns_and_passes(monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**kwargs):
        raise DefaultCredentialsError("no ADC")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.warns(UserWarning, match="skipped the GCP permission"):
        provider_for("gcp").preflight(config_for("gcp"))


# ---------------------------------------------------------------- Azure

OWNER = [{"actions": ["*"], "notActions": []}]
CONTRIBUTOR = [
    {
        "actions": ["*"],
        "notActions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    }
]
CONTRIBUTOR_AND_UAA = [
    *CONTRIBUTOR,
    {"actions": ["*/read", "Microsoft.Authorization/*"], "notActions": []},
]


@pytest.mark.parametrize(
    ("permissions", "ok"), [(OWNER, True), (CONTRIBUTOR, False), (CONTRIBUTOR_AND_UAA, True)]
)
def test_azure_role_assignment_write_follows_arm_semantics(permissions, ok):
    assert preflight.azure_allows(permissions, preflight.AZURE_ROLE_ASSIGNMENT_WRITE) is ok


def test_azure_principal_that_cannot_assign_roles_is_refused(monkeypatch):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub-1")
    monkeypatch.setattr(preflight, "_azure_permissions", lambda subscription: CONTRIBUTOR)
    with pytest.raises(ValueError, match=r"roleAssignments/write.*User Access Administrator"):
        provider_for("azure").preflight(config_for("azure"))


def test_azure_owner_passes(monkeypatch):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub-1")
    seen = []
    monkeypatch.setattr(preflight, "_azure_permissions", lambda s: seen.append(s) or OWNER)
    # Config validation itself runs the pre-flight: nebari validates before any stage.
    config_for("azure")
    assert seen == ["sub-1"]


def test_azure_lock_permission_is_needed_only_while_data_is_kept(monkeypatch):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub-1")
    only_assign = [{"actions": [
        "*/read", "Microsoft.Authorization/roleAssignments/*", "Microsoft.Storage/*"
    ]}]  # fmt: skip
    monkeypatch.setattr(preflight, "_azure_permissions", lambda s: only_assign)
    with pytest.raises(ValueError, match="locks/write"):
        provider_for("azure").preflight(config_for("azure"))
    provider_for("azure").preflight(config_for("azure", {"force_destroy": True}))


def test_azure_management_policy_is_needed_only_with_the_lifecycle_rule(monkeypatch):
    """noncurrent_days creates azurerm_storage_management_policy: a principal that may
    assign roles and lock (User Access Administrator alone) but not write the account's
    management policy fails, naming what the policy is for; without the rule it passes."""
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub-1")
    access_admin_only = [{"actions": ["*/read", "Microsoft.Authorization/*"], "notActions": []}]
    monkeypatch.setattr(preflight, "_azure_permissions", lambda s: access_admin_only)
    with pytest.raises(
        ValueError, match=r"may not Microsoft\.Storage/storageAccounts/managementPolicies/write "
        r".*sets the account's lifecycle policy \(mlflow\.artifacts\.noncurrent_days\)"
    ):  # fmt: skip
        provider_for("azure").preflight(config_for("azure"))
    provider_for("azure").preflight(config_for("azure", {"artifacts": {"noncurrent_days": None}}))
    assert preflight.azure_allows(CONTRIBUTOR, preflight.AZURE_MANAGEMENT_POLICY_WRITE)


def test_azure_without_credentials_warns_and_passes(monkeypatch):
    monkeypatch.delenv("ARM_SUBSCRIPTION_ID", raising=False)
    with pytest.warns(UserWarning, match="skipped the Azure permission"):
        provider_for("azure").preflight(config_for("azure"))
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "sub-1")

    def unavailable(subscription):
        raise preflight.PreflightSkipped("no Azure credentials")

    monkeypatch.setattr(preflight, "_azure_permissions", unavailable)
    with pytest.warns(UserWarning, match="no Azure credentials"):
        provider_for("azure").preflight(config_for("azure"))


def test_skip_variable_bypasses_cloud_calls(monkeypatch):
    monkeypatch.setenv(preflight.SKIP_ENV, "1")

    def boom(*args):
        raise AssertionError("cloud called")

    monkeypatch.setattr(preflight, "_gcp_test_permissions", boom)
    provider_for("gcp").preflight(config_for("gcp"))
