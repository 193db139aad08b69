"""Shared fixtures of the plugin-side tests."""

from __future__ import annotations

from typing import Any

import pytest

from nebari_mlflow_plugin.render import manifests


def _render_chart(
    values: dict[str, Any],
    namespace: str = "dev",
    release: str = "mlflow",
    *,
    is_upgrade: bool = False,
) -> list[dict[str, Any]]:
    """Every manifest helm/mlflow renders for `values` (hooks included), as dicts, by
    Helm's own engine (the package's renderer): schema, `required` and `fail` apply,
    refusals raise ChartError."""
    return manifests.render_chart(
        values, namespace=namespace, release=release, is_upgrade=is_upgrade
    )


@pytest.fixture(scope="session")
def render_chart():
    """`render_chart(values, namespace="dev", release="mlflow", *, is_upgrade=False)`
    -> list of manifests (dicts); see `_render_chart`."""
    return _render_chart
