"""The public nebari-mlflow-plugin 2025.10.x wheel (the deployments we take over),
read in place: `make install` downloads it with pip under .tools/, never into the repo."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = (REPO / "Makefile").read_text()
VERSION = re.search(r"^PUBLIC_PLUGIN_VERSION := (\S+)", MAKEFILE, re.M)[1]
WHEEL = REPO / ".tools" / "public-plugin" / f"nebari_mlflow_plugin-{VERSION}-py3-none-any.whl"
PROVIDERS = ("local", "aws", "gcp", "azure")
# The MLflow it deploys, in its own virtualenv (`make install`): it writes the databases
# the tests upgrade and take over.
MLFLOW_VERSION = re.search(r"^OLD_MLFLOW_VERSION := (\S+)", MAKEFILE, re.M)[1]
MLFLOW_PYTHON = REPO / f".venv-mlflow-{MLFLOW_VERSION}" / "bin" / "python"


def missing() -> str | None:
    if not WHEEL.exists():
        return f"{WHEEL.name} not downloaded (make install)"
    return None


def template_files(provider: str) -> dict[str, str]:
    """{file name: text} of the wheel's template/<provider>/ folder."""
    prefix = f"nebari_mlflow_plugin/template/{provider}/"
    with zipfile.ZipFile(WHEEL) as wheel:
        return {
            name.removeprefix(prefix): wheel.read(name).decode()
            for name in wheel.namelist()
            if name.startswith(prefix) and "/" not in name.removeprefix(prefix)
        }
