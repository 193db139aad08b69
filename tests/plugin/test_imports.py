"""Kept storage is adopted by the stage itself, between `tofu init` and apply.

Only nebari's `opentofu.run_tofu_subprocess` is replaced (it downloads OpenTofu and
calls the cloud), answering as OpenTofu 1.8 does: stdout returned when captured,
stderr printed by nebari with a `[tofu]: ` prefix, a failure raised as
OpenTofuException; `opentofu.deploy` (nebari's apply) only records that it ran."""

from __future__ import annotations

import pytest
from _nebari.provider import opentofu
from support import nebari as nb
from support.tofu import FakeTofu

from nebari_mlflow_plugin.lifecycle import adoption
from nebari_mlflow_plugin.providers import provider_for


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def _deploy(monkeypatch, tmp_path, tofu: FakeTofu, provider: str = "aws"):
    monkeypatch.setattr(opentofu, "run_tofu_subprocess", tofu)
    applied = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: applied.append(kw) or {})
    stage = nb.stage_for(nb.validate(nb.config_dict(provider, {})), tmp_path)
    outputs = {**nb.STAGE_OUTPUTS}
    for name, values in provider_for(provider).placeholder_outputs().items():
        outputs[name] = {**outputs.get(name, {}), **values}
    with stage.deploy(outputs):
        pass
    return stage, applied


def _imports(tofu: FakeTofu) -> list[str]:
    return [call[-2] for call in tofu.calls if call[0] == "import"]


def test_nebari_is_given_nothing_to_import(tmp_path):
    # nebari's own import path swallows failures; the stage does it instead.
    assert nb.stage_for(nb.validate(nb.config_dict("aws", {})), tmp_path).state_imports() == []


def test_kept_bucket_is_adopted_before_apply(monkeypatch, tmp_path, capsys):
    bucket = provider_for("aws").retained_addresses()[0]
    tofu = FakeTofu(state=["module.mlflow[0].helm_release.mlflow"], answers={bucket: "ok"})
    stage, applied = _deploy(monkeypatch, tmp_path, tofu)
    wanted = [a for a, _ in provider_for("aws").state_imports(stage.config)]
    # init, the takeover's look for a 2025.10.x release (state pull), then adoption.
    assert tofu.calls[0][0] == "init" and tofu.calls[1] == ["state", "pull"]
    assert tofu.calls[2] == ["state", "list"]
    assert _imports(tofu) == wanted  # every kept address tried, in order
    assert all("-var-file=" in " ".join(c) for c in tofu.calls if c[0] == "import")
    # nebari then applies, with init done and nothing left for it to import.
    (deploy,) = applied
    assert deploy["tofu_init"] is False and not deploy.get("state_imports")
    assert f"Adopted MLflow data kept by a previous deployment: {bucket}" in capsys.readouterr().out


def test_first_deploy_without_state_imports_nothing_and_applies(monkeypatch, tmp_path):
    tofu = FakeTofu(state=None, answers={})  # no state yet; no bucket in the cloud
    _, applied = _deploy(monkeypatch, tmp_path, tofu)
    assert _imports(tofu)  # asked, found nothing: fine
    assert len(applied) == 1


def test_addresses_already_in_state_are_skipped(monkeypatch, tmp_path):
    retained = provider_for("aws").retained_addresses()
    tofu = FakeTofu(state=retained, answers={})
    _, applied = _deploy(monkeypatch, tmp_path, tofu)
    assert _imports(tofu) == []
    assert len(applied) == 1


def test_a_denied_import_stops_the_deploy_before_apply(monkeypatch, tmp_path, capsys):
    bucket = provider_for("aws").retained_addresses()[0]
    tofu = FakeTofu(state=[], answers={bucket: "denied"})
    with pytest.raises(SystemExit) as exit_info:
        _deploy(monkeypatch, tmp_path, tofu)
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    bucket_id = dict(provider_for("aws").state_imports(nb.validate(nb.config_dict("aws", {}))))
    assert f"ERROR: could not import kept storage {bucket} (id {bucket_id[bucket]})" in out
    assert "StatusCode: 403" in out and "api error Forbidden" in out
    assert not any(call[0] == "apply" for call in tofu.calls)
    assert _imports(tofu) == [bucket]  # stopped at the first failure


def test_an_import_that_times_out_stops_the_deploy(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(adoption, "IMPORT_TIMEOUT_SECONDS", 0.3)
    bucket = provider_for("aws").retained_addresses()[0]
    tofu = FakeTofu(state=[], answers={bucket: "hang"})
    with pytest.raises(SystemExit):
        _deploy(monkeypatch, tmp_path, tofu)
    out = capsys.readouterr().out
    assert f"importing kept storage {bucket}" in out and "timed out after 0.3 s" in out


@pytest.mark.parametrize("provider", ["gcp", "azure"])
def test_other_clouds_adopt_the_same_way(monkeypatch, tmp_path, provider):
    monkeypatch.setenv("ARM_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000001")
    answers = {address: "ok" for address in provider_for(provider).retained_addresses()}
    tofu = FakeTofu(state=[], answers=answers)
    stage, applied = _deploy(monkeypatch, tmp_path, tofu, provider)
    assert _imports(tofu) == [a for a, _ in provider_for(provider).state_imports(stage.config)]
    assert len(applied) == 1


def test_volume_providers_import_nothing_and_plan_only_with_data_in_state(monkeypatch, tmp_path):
    """local/existing keep nothing in the state to adopt; with no data-holding object
    in the state there is nothing to lose either, so no extra plan runs."""
    tofu = FakeTofu(state=["module.mlflow[0].helm_release.mlflow"], answers={})
    _, applied = _deploy(monkeypatch, tmp_path, tofu, "local")
    assert [call[:2] for call in tofu.calls][1:] == [["state", "pull"], ["state", "list"]]
    assert tofu.calls[0][0] == "init"
    assert applied[0]["tofu_init"] is False
