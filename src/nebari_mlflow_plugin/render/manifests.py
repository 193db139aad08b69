"""Render the chart offline: Helm's own engine in-process (helm-python-sdk).

Used by `nebari mlflow render` and by the tests. helm-python-sdk bundles Helm's
Go SDK (about 240 MB), so it is the optional `preview` extra, imported only here.
"""

from __future__ import annotations

from typing import Any

from nebari_mlflow_plugin.assets import chart_dir

PREVIEW_EXTRA_HINT = "pip install 'nebari-mlflow-plugin[preview]'"


class PreviewUnavailable(RuntimeError):
    """The optional in-process Helm engine is not installed."""


class ChartError(RuntimeError):
    """Helm refused the chart or the values (schema, required values, templates)."""


def render_chart(
    values: dict[str, Any],
    *,
    namespace: str,
    release: str,
    is_upgrade: bool = False,
) -> list[dict[str, Any]]:
    """Every manifest the chart renders for these values, as dicts (hooks included)."""
    try:
        import helm_python as helm
    except ImportError as exc:
        raise PreviewUnavailable(
            f"rendering Kubernetes manifests needs Helm's engine: {PREVIEW_EXTRA_HINT}"
        ) from exc
    import yaml

    try:
        chart = helm.Chart.load(str(chart_dir()))
        rendered = chart.render(
            values, name=release, namespace=namespace, is_install=not is_upgrade,
            is_upgrade=is_upgrade,
        )  # fmt: skip
    except helm.HelmError as exc:
        raise ChartError(f"helm: {exc}") from exc
    manifests = []
    for path, text in sorted(rendered.items()):
        if path.endswith((".yaml", ".yml")):
            manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests
