"""Locate the Terraform modules and the Helm chart shipped with the plugin.

They live at the repository top level; the wheel carries them as
`nebari_mlflow_plugin/_assets/` (see pyproject.toml). An editable install
imports from `src/`, so the repository copies are found there instead.
"""

from __future__ import annotations

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
