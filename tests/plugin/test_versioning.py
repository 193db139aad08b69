"""Versions that move: the plugin's CalVer reaches admins of the public 2025.10.x
releases, the chart's version follows it, and a template change upgrades the release."""

from __future__ import annotations

import importlib.metadata
import json
import shutil

import pytest
import yaml
from packaging.version import Version
from support import nebari as nb

from nebari_mlflow_plugin import assets
from nebari_mlflow_plugin.__about__ import __version__

# The newest public release of the same distribution (PyPI), which pip must replace.
PUBLIC_RELEASE = "2025.10.2"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def test_pip_upgrade_from_the_public_plugin_reaches_this_version():
    version = Version(__version__)
    assert version > Version(PUBLIC_RELEASE)
    assert len(version.release) == 3 and version.release[0] >= 2025  # CalVer YYYY.MM.N
    assert importlib.metadata.version("nebari-mlflow-plugin") == __version__


def test_rendered_chart_carries_the_plugin_version(tmp_path):
    config = nb.validate(nb.config_dict("local", {}))
    stage_dir = nb.render_stage(config, tmp_path)
    chart = yaml.safe_load((stage_dir / "chart/mlflow/Chart.yaml").read_text())
    assert chart["version"] == __version__


def test_a_template_only_change_changes_the_release_values(tmp_path):
    """The helm provider diffs a local chart by its version and values only."""
    config = nb.validate(nb.config_dict("local", {}))
    values = json.loads(nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["helm_values"])
    assert values["chartDigest"] == assets.chart_digest()
    copy = tmp_path / "chart"
    shutil.copytree(assets.chart_dir(), copy)
    assert assets.chart_digest(copy) == values["chartDigest"]
    template = copy / "templates" / "service.yaml"
    template.write_text(template.read_text() + "\n# a comment changes nothing Helm renders\n")
    assert assets.chart_digest(copy) != values["chartDigest"]


def test_digest_reaches_the_cluster(render_chart):
    manifests = render_chart(
        {"chartDigest": assets.chart_digest(),
         "database": {"internal": {"passwordSecret": {"name": "pg", "key": "password"}}}}
    )  # fmt: skip
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    assert deployment["metadata"]["annotations"]["nebari.dev/chart-digest"] == (
        assets.chart_digest()
    )
