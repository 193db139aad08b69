"""Refuse a deploy whose plan would delete data, before anything is applied.

`force_destroy: false` promises that no deploy deletes the artifact store. The
cloud's own refusals (a non-empty bucket, Azure's delete lock) do not cover every
path: a renamed Azure storage account is replaced, and Terraform deletes the lock
before the account; a KMS key is scheduled for deletion without complaint; a Helm
release of the public 2025.10.x plugin takes its database and MinIO volumes with it.
So the stage plans first and stops when the plan deletes or replaces any object of
a data-holding type, naming it and why. A `removed` block that forgets (always, in the
OpenTofu 1.8 nebari runs; with `lifecycle { destroy = false }` in Terraform) shows as
"forget", not "delete", and passes.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.lifecycle.adoption import run_tofu, state_addresses, tofu_message

# Objects whose deletion loses data (or, for a KMS key, makes it unreadable; for the
# Azure lock, opens the way to deleting the account).
DATA_TYPES = frozenset(
    {
        "aws_s3_bucket",
        "aws_kms_key",
        "google_storage_bucket",
        "azurerm_resource_group",
        "azurerm_storage_account",
        "azurerm_storage_container",
        "azurerm_management_lock",
        "kubernetes_persistent_volume_claim",
        "kubernetes_persistent_volume_claim_v1",
    }
)
# Our own release may go (mlflow.enabled: false): its volumes carry Helm's keep policy.
# Any other release in this stage's state is the public plugin's, whose volumes do not.
OWN_RELEASE = "module.mlflow[0].helm_release.mlflow"
PLAN_TIMEOUT_SECONDS = 600

REASONS = {
    "replace_because_cannot_update": "a changed name or setting forces its replacement",
    "replace_because_tainted": "it is tainted and would be replaced",
    "replace_by_request": "its replacement was requested",
    "replace_by_triggers": "a replace trigger changed",
    "delete_because_no_resource_config": "it is no longer in the configuration",
    "delete_because_no_module": "its module is no longer in the configuration",
    "delete_because_count_index": "its count no longer includes it",
    "delete_because_each_key": "its for_each no longer includes it",
    "delete_because_wrong_repetition": "its count/for_each changed shape",
}


class DataLossRefused(RuntimeError):
    """The plan deletes data while mlflow.force_destroy is false; nothing was applied."""


@dataclass(frozen=True)
class Deletion:
    address: str
    reason: str


def resource_type(address: str) -> str:
    """`module.a[0].aws_s3_bucket.x["k"]` -> `aws_s3_bucket` (managed resources only)."""
    parts = re.sub(r"\[[^\]]*\]", "", address).split(".")
    while parts[:1] == ["module"]:
        parts = parts[2:]
    return parts[0] if len(parts) == 2 else ""


def holds_data(address: str) -> bool:
    kind = resource_type(address)
    return kind in DATA_TYPES or (kind == "helm_release" and address != OWN_RELEASE)


def deletions(plan: dict[str, Any]) -> list[Deletion]:
    """Data-holding objects a plan (`tofu show -json`) deletes or replaces."""
    found = []
    for change in plan.get("resource_changes") or []:
        address = change.get("address", "")
        if change.get("mode", "managed") != "managed" or not holds_data(address):
            continue
        if "delete" in (change.get("change") or {}).get("actions", []):
            reason = REASONS.get(change.get("action_reason", ""), "the plan deletes it")
            found.append(Deletion(address, reason))
    return found


def refusal(found: list[Deletion]) -> str:
    lines = "\n".join(f"  - {d.address}: {d.reason}" for d in found)
    return (
        "this deploy would delete MLflow data and mlflow.force_destroy is false; nothing "
        f"was applied:\n{lines}\n"
        "If a name changed (mlflow.aws.bucket_name, mlflow.gcp.bucket_name, "
        "mlflow.azure.storage_account_name / resource_group_name, the project name or "
        "namespace), set it back to the old value. To delete the data deliberately, set "
        "mlflow.force_destroy: true and deploy again."
    )


def check(directory: str, var_file: str, in_state: set[str] | None = None) -> list[Deletion]:
    """Plan the stage; raise DataLossRefused if the plan deletes data. Skipped (no plan)
    when the state (`in_state`: its addresses, when the caller has listed them) holds
    nothing of a data-holding type: nothing can be lost."""
    if in_state is None:
        in_state = state_addresses(directory)
    if not any(holds_data(address) for address in in_state):
        return []
    with tempfile.TemporaryDirectory() as scratch:
        plan_file = str(Path(scratch) / "mlflow.tfplan")
        args = ["plan", "-input=false", "-no-color", f"-var-file={var_file}", f"-out={plan_file}"]
        ok, _, err = run_tofu(args, directory, timeout=PLAN_TIMEOUT_SECONDS)
        if not ok:
            raise DataLossRefused(
                f"could not plan the MLflow stage to check it deletes no data; nothing was "
                f"applied. OpenTofu said: {tofu_message(err)}"
            )
        ok, out, err = run_tofu(["show", "-json", plan_file], directory)
    try:
        plan = json.loads(out) if ok else None
    except json.JSONDecodeError:
        plan = None
    if not isinstance(plan, dict):
        raise DataLossRefused(
            f"could not read the MLflow stage's plan; nothing was applied: {tofu_message(err)}"
        )
    found = deletions(plan)
    if found:
        raise DataLossRefused(refusal(found))
    return found
