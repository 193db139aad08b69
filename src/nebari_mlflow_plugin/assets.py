"""Locate the Terraform modules and the Helm chart shipped with the plugin.

They live at the repository top level; the wheel carries them as
`nebari_mlflow_plugin/_assets/` (see pyproject.toml). An editable install
imports from `src/`, so the repository copies are found there instead.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """Directory of a shipped asset tree: 'terraform' or 'helm'."""
    for candidate in (_PACKAGE_DIR / "_assets" / name, _PACKAGE_DIR.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"nebari-mlflow-plugin is missing its {name!r} files; reinstall the package"
    )


def chart_dir() -> Path:
    return asset_dir("helm") / "mlflow"


def terraform_dir() -> Path:
    return asset_dir("terraform")


def chart_files(chart: Path | None = None) -> list[Path]:
    chart = chart or chart_dir()
    return sorted(
        path for path in chart.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    )


def chart_digest(chart: Path | None = None) -> str:
    """SHA-256 over the chart's files. Terraform's helm provider does not diff a local
    chart's templates, so this goes into the values: a template-only change is a
    values change, and the release is upgraded."""
    if chart is None:
        return _shipped_chart_digest()
    digest = hashlib.sha256()
    for path in chart_files(chart):
        digest.update(str(path.relative_to(chart)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamped_chart_yaml(text: str, version: str) -> str:
    """Chart.yaml with the chart `version:` set to the plugin's."""
    stamped, count = re.subn(r"(?m)^version:.*$", f"version: {version}", text)
    if count != 1:
        raise ValueError("helm/mlflow/Chart.yaml must have exactly one top-level version line")
    return stamped


@functools.cache
def _shipped_chart_digest() -> str:
    """The installed chart does not change while nebari runs: hashed once."""
    return chart_digest(chart_dir())
