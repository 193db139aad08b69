"""The volumes a deploy would change, checked against the cluster before anything changes.

A PersistentVolumeClaim's storage class and access modes are immutable, and its
size can only grow, and only where the StorageClass allows expansion. Changing
`mlflow.*.storage_class`, `access_mode` or `size` after the first deploy would
make every later `helm upgrade` fail half-way. The cluster is not known at
`nebari validate`, so the `mlflow-notebook-client` stage, which runs before
JupyterHub and MLflow are touched, checks here first (and `nebari mlflow
preflight` does on demand) and refuses with what to do instead: the data moves
to a new claim, which the config then names in `existing_claim`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from nebari_mlflow_plugin.config.schema import ArtifactsType, DatabaseType

MOVE_HINT = (
    "To move the data: create a claim with the new settings, copy the data into it "
    "(docs/admin/volumes.md#moving-a-volume), and set {field}.existing_claim to its name"
)


class VolumeSource(Protocol):
    def pvc(self, name: str) -> dict[str, Any] | None: ...
    def storage_class(self, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class PlannedVolume:
    field: str  # the config section, e.g. "mlflow.database"
    claim: str
    size: str
    storage_class: str | None  # None: the cluster's default class
    access_mode: str


def planned_volumes(mlflow: Any, provider: Any) -> list[PlannedVolume]:
    """Claims the chart will create and manage for this config (clouds keep artifacts
    in their object store; an existing claim is the admin's, never changed)."""
    from nebari_mlflow_plugin.config import naming
    from nebari_mlflow_plugin.render.values import build_values

    values = build_values(mlflow, provider)
    planned = []
    artifacts = values["artifacts"]
    persistence = artifacts["persistence"]
    on_volume = (
        mlflow.artifacts.type == ArtifactsType.default and provider.terraform_root == "volume"
    )
    if on_volume and not persistence.get("existingClaim"):
        planned.append(PlannedVolume(
            "mlflow.artifacts", f"{naming.RELEASE_NAME}-artifacts", persistence["size"],
            persistence.get("storageClass") or None, persistence["accessMode"],
        ))  # fmt: skip
    database = values["database"]
    if database["mode"] == DatabaseType.internal.value:
        persistence = database["internal"]["persistence"]
        if not persistence.get("existingClaim"):
            planned.append(PlannedVolume(
                "mlflow.database", naming.POSTGRES_CLAIM, persistence["size"],
                persistence.get("storageClass") or None, "ReadWriteOnce",
            ))  # fmt: skip
    return planned


def _problems_of(volume: PlannedVolume, pvc: dict[str, Any], source: VolumeSource) -> list[str]:
    from nebari_mlflow_plugin.config.quantities import quantity

    spec = pvc.get("spec", {})
    hint = MOVE_HINT.format(field=volume.field)
    problems = []
    current_class = spec.get("storageClassName")
    if volume.storage_class is not None and volume.storage_class != current_class:
        problems.append(
            f"{volume.field}.storage_class is {volume.storage_class!r} but volume "
            f"{volume.claim} was created with storage class {current_class!r}, which a "
            f"claim cannot change. {hint}, or set {volume.field}.storage_class back to "
            f"{current_class!r}"
        )
    current_modes = spec.get("accessModes") or []
    if current_modes != [volume.access_mode]:
        field = f"{volume.field}.access_mode"
        problems.append(
            f"{field} is {volume.access_mode} but volume {volume.claim} exists as "
            f"{', '.join(current_modes) or 'unknown'}, which a claim cannot change. {hint}, "
            f"or set {field} back to {current_modes[0] if current_modes else '?'}"
        )
    requested = (spec.get("resources") or {}).get("requests", {}).get("storage")
    if requested:
        wanted, current = quantity(volume.size), quantity(requested)
        if wanted < current:
            problems.append(
                f"{volume.field}.size is {volume.size} but volume {volume.claim} is "
                f"{requested}: a volume cannot shrink. Set {volume.field}.size to at least "
                f"{requested}"
            )
        elif wanted > current:
            storage_class = source.storage_class(current_class) if current_class else None
            if not (storage_class or {}).get("allowVolumeExpansion"):
                problems.append(
                    f"{volume.field}.size is {volume.size} but volume {volume.claim} is "
                    f"{requested} and its storage class {current_class!r} does not allow "
                    f"expansion (allowVolumeExpansion). {hint}, or keep the size"
                )
    return problems


def volume_problems(source: VolumeSource, planned: list[PlannedVolume]) -> list[str]:
    """Why applying these volumes would fail on this cluster; empty when it would not."""
    problems = []
    for volume in planned:
        pvc = source.pvc(volume.claim)
        if pvc is not None:
            problems.extend(_problems_of(volume, pvc, source))
    return problems
