"""CustomResourceDefinitions from ../shared/data, as JSON schemas to validate rendered
custom resources against (the tests read them from there; they are not copied)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


def _shared_data() -> Path:
    """`../shared/data` of the checkout, or of an ancestor (a git worktree nested deeper)."""
    for parent in Path(__file__).resolve().parents[2:]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path(__file__).resolve().parents[3] / "shared" / "data"


SHARED_DATA = _shared_data()
TRAEFIK_CRDS = SHARED_DATA / "traefik-crds-containo-us"
PROMETHEUS_CRDS = SHARED_DATA / "kube-prometheus-stack-58.4.0-crds"


def crd_schemas(directory: Path, transform=lambda schema: schema) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD version under `directory`
    (each passed through `transform`); skips the test when the folder is absent."""
    if not directory.is_dir():
        pytest.skip(f"CRDs not found at {directory}")
    schemas = {}
    for path in sorted(directory.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for version in crd["spec"]["versions"]:
                    key = (
                        f"{crd['spec']['group']}/{version['name']}",
                        crd["spec"]["names"]["kind"],
                    )
                    schemas[key] = transform(version["schema"]["openAPIV3Schema"])
    return schemas
