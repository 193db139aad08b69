"""Shared fixtures of the plugin-side tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "mlflow"


def _render_chart(
    values: dict[str, Any],
    namespace: str = "dev",
    release: str = "mlflow",
    *,
    is_upgrade: bool = False,
) -> list[dict[str, Any]]:
    """Every manifest helm/mlflow renders for `values` (hooks included), as dicts, rendered
    in-process by Helm's own engine (helm-python-sdk): schema, `required` and `fail` apply.
    Raises helm_python.HelmError when Helm refuses the values or a template fails."""
    import helm_python as helm

    rendered = helm.Chart.load(str(CHART_DIR)).render(
        values, name=release, namespace=namespace, is_install=not is_upgrade,
        is_upgrade=is_upgrade,
    )  # fmt: skip
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.fixture(scope="session")
def render_chart():
    """`render_chart(values, namespace="dev", release="mlflow", *, is_upgrade=False)`
    -> list of manifests (dicts); see `_render_chart`."""
    return _render_chart
