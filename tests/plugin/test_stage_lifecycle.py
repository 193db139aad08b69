"""Deploy/destroy behaviour of the stage around OpenTofu (the tofu binary is faked:
it is a download on a real deploy, and the cloud is not reachable here)."""

from __future__ import annotations

import pytest
from _nebari.provider import opentofu
from support import nebari as nb
from support.k8s import Recorded

from nebari_mlflow_plugin.lifecycle import status
from nebari_mlflow_plugin.providers import provider_for
from nebari_mlflow_plugin.stages import mlflow_stage as stage_module


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    monkeypatch.setenv("NEBARI_MLFLOW_SKIP_PREFLIGHT", "1")


class FakeTofu:
    """Records tofu invocations; `state list` answers with the given addresses."""

    def __init__(self, state: list[str]):
        self.state = state
        self.calls: list[list[str]] = []

    def __call__(self, args, exit_on_error=True, **kwargs):
        self.calls.append(list(args))
        if args[:2] == ["state", "list"]:
            return "\n".join(self.state).encode()
        return b""


@pytest.mark.parametrize(("provider", "force"), [("aws", False), ("gcp", False), ("aws", True)])
def test_destroy_forgets_data_resources_unless_forced(monkeypatch, tmp_path, provider, force):
    config = nb.validate(nb.config_dict(provider, {"force_destroy": force}))
    stage = nb.stage_for(config, tmp_path)
    retained = provider_for(provider).retained_addresses()
    assert retained, "a cloud provider must name what holds data"
    tofu = FakeTofu(state=[*retained, "module.mlflow[0].helm_release.mlflow"])
    monkeypatch.setattr(opentofu, "run_tofu_subprocess", tofu)
    deploys = []
    monkeypatch.setattr(opentofu, "deploy", lambda **kw: deploys.append(kw) or {})
    outputs = {**nb.STAGE_OUTPUTS}
    for name, values in provider_for(provider).placeholder_outputs().items():
        outputs[name] = {**outputs.get(name, {}), **values}
    status: dict = {}
    with stage.destroy(outputs, status):
        pass
    removed = [call[2:] for call in tofu.calls if call[:2] == ["state", "rm"]]
    if force:
        assert removed == []
    else:
        assert removed == [retained]
        assert "module.mlflow[0].helm_release.mlflow" not in removed[0]
    # The state is edited before OpenTofu destroys, never after.
    assert deploys[-1]["tofu_destroy"] is True
    assert status["stages/mlflow"] is True


def test_volume_providers_have_nothing_to_forget(monkeypatch, tmp_path):
    stage = nb.stage_for(nb.validate(nb.config_dict("local", {})), tmp_path)
    monkeypatch.setattr(opentofu, "run_tofu_subprocess", lambda *a, **k: pytest.fail("tofu ran"))
    assert stage.forget_retained() == []
    assert stage.state_imports() == []


def test_cloud_stage_adopts_kept_storage(tmp_path):
    # Adopted by the stage's deploy() (tests/plugin/test_imports.py), not by nebari.
    config = nb.validate(nb.config_dict("aws", {}))
    assert nb.stage_for(config, tmp_path).state_imports() == []
    imports = provider_for("aws").state_imports(config)
    assert {address for address, _ in imports} <= set(provider_for("aws").retained_addresses())
    assert imports


# --- check(): nebari's post-deploy check, on recorded API responses ----------------


def _stage_reading(monkeypatch, tmp_path, scenario: str):
    # Reading a live cluster would leave the machine; the answers are recorded ones.
    monkeypatch.setattr(
        status, "KubernetesSource", lambda namespace, kubeconfig, context=None: Recorded(scenario)
    )
    return nb.stage_for(nb.validate(nb.config_dict()), tmp_path)


def test_check_passes_and_prints_where_mlflow_is(monkeypatch, tmp_path, capsys):
    _stage_reading(monkeypatch, tmp_path, "healthy").check(nb.STAGE_OUTPUTS)
    out = capsys.readouterr().out
    assert "https://nebari.example.com/mlflow/" in out
    assert "http://mlflow.dev.svc:5000/mlflow" in out


@pytest.mark.parametrize(("scenario", "reason"), [("crashloop", "CrashLoopBackOff"),
                                                  ("absent", "not found")])  # fmt: skip
def test_check_fails_with_the_reason(monkeypatch, tmp_path, capsys, scenario, reason):
    monkeypatch.setattr(stage_module, "CHECK_TIMEOUT_SECONDS", 0)
    with pytest.raises(SystemExit) as exit_info:
        _stage_reading(monkeypatch, tmp_path, scenario).check(nb.STAGE_OUTPUTS)
    assert exit_info.value.code == 1
    assert reason in capsys.readouterr().out
