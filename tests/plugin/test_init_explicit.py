"""`nebari init <provider> --explicit` writes every field of every stage's schema,
ours included: the file must be written whole and read back to the same config."""

from __future__ import annotations

import enum
import io

import pytest
from _nebari.cli import create_cli
from _nebari.utils import yaml as nebari_yaml
from ruamel.yaml import YAML
from support import nebari as nb
from typer.testing import CliRunner

from nebari_mlflow_plugin.config import provider_settings as settings
from nebari_mlflow_plugin.config import schema


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def test_init_explicit_writes_the_mlflow_block(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    args = ["init", "local", "--project-name", "demo", "--domain-name", "nebari.example.com",
            "--auth-provider", "password", "--explicit", "--disable-prompt"]  # fmt: skip
    result = CliRunner().invoke(create_cli(), args)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    written = YAML(typ="safe").load((tmp_path / "nebari-config.yaml").read_text())
    # Every enum of the block is written as its plain value.
    assert written["mlflow"]["image"]["pull_policy"] == "IfNotPresent"
    assert written["mlflow"]["database"]["type"] == "internal"
    assert written["mlflow"]["artifacts"]["access_mode"] == "ReadWriteOnce"
    # Read back through nebari's plugin manager: the same values as the defaults.
    again = nb.validate(written).mlflow
    defaults = nb.validate(nb.config_dict("local", {})).mlflow
    assert again.model_dump() == defaults.model_dump()


def _config_enums() -> list[type[enum.Enum]]:
    modules = (schema, settings)
    found = {obj for module in modules for obj in vars(module).values()
             if isinstance(obj, type) and issubclass(obj, enum.Enum) and len(obj)}  # fmt: skip
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("enum_class", _config_enums(), ids=lambda cls: cls.__name__)
def test_every_enum_of_the_schema_is_written_as_its_value(enum_class):
    """Enums defaulted nowhere still reach the file when an admin sets them."""
    stream = io.StringIO()
    member = next(iter(enum_class))
    nebari_yaml.dump({"field": member}, stream)
    assert stream.getvalue().strip() == f"field: {member.value}"
