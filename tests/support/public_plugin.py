"""The public nebari-mlflow-plugin 2025.10.x wheel (the deployments we take over),
read in place: `make install` downloads it with pip under .tools/, never into the repo."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSION = re.search(
    r"^PUBLIC_PLUGIN_VERSION := (\S+)", (REPO / "Makefile").read_text(), re.M
).group(1)
WHEEL = REPO / ".tools" / "public-plugin" / f"nebari_mlflow_plugin-{VERSION}-py3-none-any.whl"
PROVIDERS = ("local", "aws", "gcp", "azure")


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
