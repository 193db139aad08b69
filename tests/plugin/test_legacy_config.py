"""The 2025.10.x plugin's config keys, refused with what replaces them.

The old keys come from the public wheel itself: its `mlflow:` schema (the fields
of its provider sections) and the Bitnami values its templates pass to Helm.
"""

from __future__ import annotations

import ast

import pydantic
import pytest
import yaml
from support import nebari as nb
from support import public_plugin

pytestmark = pytest.mark.skipif(
    bool(public_plugin.missing()), reason=public_plugin.missing() or "present"
)


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def old_provider_fields() -> dict[str, list[str]]:
    """{provider section: field names} of the public plugin's MlflowConfig<Provider>."""
    import zipfile

    with zipfile.ZipFile(public_plugin.WHEEL) as wheel:
        source = wheel.read("nebari_mlflow_plugin/__init__.py").decode()
    fields = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("MlflowConfig"):
            section = node.name.removeprefix("MlflowConfig").lower()
            names = [s.target.id for s in node.body if isinstance(s, ast.AnnAssign)]
            if names:
                fields[section] = names
    return fields


def old_bitnami_keys() -> set[str]:
    """Top-level Bitnami values the public templates set, by YAML file."""
    keys = set()
    for provider in public_plugin.PROVIDERS:
        for name, text in public_plugin.template_files(provider).items():
            if name.endswith(".yaml"):
                keys |= set(yaml.safe_load(text) or {})
    return keys


def error_of(mlflow: dict) -> str:
    with pytest.raises(pydantic.ValidationError) as caught:
        nb.validate(nb.config_dict("aws", mlflow))
    return " ".join(str(caught.value).split())


def test_every_old_provider_setting_says_what_replaces_it():
    fields = old_provider_fields()
    assert fields  # e.g. aws: enable_s3_encryption, local: minio_root_password
    for section, names in fields.items():
        for name in names:
            message = error_of({section: {name: "x"}})
            assert f"mlflow.{section}.{name} was a setting of 2025.10.x" in message
    assert "mlflow.aws.kms_key_arn" in error_of({"aws": {"enable_s3_encryption": True}})
    assert "Secret" in error_of({"local": {"minio_root_password": "x"}})


def test_bitnami_overrides_are_named_as_such_with_their_replacement():
    keys = old_bitnami_keys()
    assert {"tracking", "postgresql", "run"} <= keys
    for key in sorted(keys | {"minio"}):
        if key == "image":  # also a value of this chart (refused: use mlflow.image)
            continue
        message = error_of({"overrides": {key: {}}})
        assert f"mlflow.overrides.{key} is a value of the Bitnami mlflow chart" in message
        assert "2025.10.x" in message
    assert "mlflow.database" in error_of({"overrides": {"postgresql": {"auth": {}}}})


def test_this_charts_own_overrides_still_pass():
    config = nb.validate(nb.config_dict("aws", {"overrides": {"server": {"extraArgs": ["--x"]}}}))
    assert config.mlflow.overrides["server"]["extraArgs"] == ["--x"]
