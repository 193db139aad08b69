"""Templates hold structure, code holds logic: no container of any rendered manifest
carries a program inline. Python runs as `python3 -m nebari_mlflow_server.<job>` from
the mounted server package, shell as `bash <scripts dir>/<file>` from the chart's
files/; both must be what the pod actually mounts.

Every combination the chart tests render (test_chart, test_backup_chart,
test_takeover_chart, test_operate_chart, test_monitoring_chart) and the releases the
stage renders for each provider, auth on and off.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import pytest
import test_backup_chart
import test_chart
import test_monitoring_chart
import test_operate_chart
import test_takeover_chart
from support import nebari as nb
from support.release import find, render_release

from nebari_mlflow_plugin.render import server_delivery

# A command or argument longer than this is a program, not an invocation.
MAX_LINES = 5
NAMESPACE = "dev"

CHART_VALUES = {
    **{f"chart-{name}": values for name, values in test_chart.VALUE_SETS.items()},
    **{f"backup-{name}": values for name, values in test_backup_chart.VALUE_SETS.items()},
    **{
        f"takeover-{name}": {**test_takeover_chart.DEFAULT,
                             "takeover": test_takeover_chart.old(values).chart_values()}
        for name, values in (("minio", test_takeover_chart.MINIO),
                             ("volume", test_takeover_chart.CLOUD_ON_VOLUME))
    },
    "replicated": test_operate_chart.REPLICATED,
    "gc": test_operate_chart.GC,
    "monitored": test_monitoring_chart.MONITORED,
}  # fmt: skip


def pod_specs(manifests: list[dict]) -> Iterator[tuple[str, dict]]:
    for manifest in manifests:
        spec = manifest.get("spec") or {}
        if manifest["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{manifest['kind']}/{manifest['metadata']['name']}", spec["template"]["spec"]


def commands(container: dict) -> Iterator[tuple[str, list[str]]]:
    """(where, argv) of everything the container runs: its process, hooks and probes."""
    yield "command", (container.get("command") or []) + (container.get("args") or [])
    for hook in ("postStart", "preStop"):
        exec_ = ((container.get("lifecycle") or {}).get(hook) or {}).get("exec")
        if exec_:
            yield hook, exec_["command"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        exec_ = (container.get(probe) or {}).get("exec")
        if exec_:
            yield probe, exec_["command"]


def mounted(pod: dict, container: dict, path: str, manifests: list[dict]) -> dict[str, str]:
    """The files the container sees under `path`, from ConfigMap volumes: {relative: key}."""
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        if mount["mountPath"] != path:
            continue
        ref = volumes[mount["name"]].get("configMap")
        assert ref, f"{mount['name']} at {path} is not a ConfigMap volume"
        (config_map,) = find(manifests, "ConfigMap", ref["name"])
        data = config_map.get("data") or {}
        for item in ref.get("items") or [{"key": k, "path": k} for k in data]:
            assert item["key"] in data, item
            files[item["path"]] = item["key"]
    return files


def check_manifests(manifests: list[dict]) -> int:
    """Assert the rule on every container; the number of containers checked."""
    checked = 0
    for where, pod in pod_specs(manifests):
        for container in (pod.get("initContainers") or []) + pod["containers"]:
            checked += 1
            name = f"{where} container {container['name']}"
            env = {e["name"]: e.get("value") for e in container.get("env") or []}
            for what, argv in commands(container):
                for arg in argv:
                    lines = len(str(arg).rstrip("\n").splitlines())
                    assert lines <= MAX_LINES, f"{name} {what}: {lines} lines inline"
                if argv[:2] == ["python3", "-m"] and argv[2].startswith("nebari_mlflow_server."):
                    job = argv[2].removeprefix("nebari_mlflow_server.")
                    root = env.get("PYTHONPATH")
                    assert root, f"{name}: runs {argv[2]} without PYTHONPATH"
                    files = mounted(pod, container, root, manifests)
                    assert f"nebari_mlflow_server/{job}.py" in files, (name, sorted(files))
                    assert "nebari_mlflow_server/__init__.py" in files, name
                elif argv and argv[0] in ("bash", "sh") and argv[1:2] and argv[1] != "-c":
                    folder, script = posixpath.split(argv[1])
                    assert script in mounted(pod, container, folder, manifests), (name, argv)
    return checked


@pytest.mark.parametrize("name", list(CHART_VALUES))
def test_chart_containers_carry_no_inline_program(render_chart, name):
    assert check_manifests(render_chart(CHART_VALUES[name], NAMESPACE)) > 0


@pytest.mark.parametrize("auth", [True, False], ids=["auth", "no-auth"])
@pytest.mark.parametrize("provider", nb.PROVIDERS)
def test_release_containers_carry_no_inline_program(provider, auth, tmp_path, monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)
    mlflow = {"gc": {"enabled": True}, "auth": {"enabled": auth}}
    config = nb.validate(nb.config_dict(provider, mlflow))
    manifests = render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)
    assert check_manifests(manifests) > 0


def test_the_server_package_config_map_is_the_whole_package(render_chart):
    """Whatever auth is, the pods running jobs get every module of `server/` (and the
    dist-info naming its app, mounted beside it)."""
    for auth in (True, False):
        values = {**test_chart.DEFAULT, "auth": {"enabled": auth, "secret": {"name": "a"}}}
        (package,) = find(render_chart(values, NAMESPACE), "ConfigMap", "mlflow-server-package")
        assert package["data"] == {
            **server_delivery.package_files(),
            **server_delivery.metadata_files(),
        }


def test_an_inline_program_is_caught(render_chart):
    """The check itself fails on a program passed inline, or a module not delivered."""
    manifests = render_chart(test_chart.DEFAULT, NAMESPACE)
    (_, pod), *_ = [(w, p) for w, p in pod_specs(manifests) if w == "Deployment/mlflow"]
    init = pod["initContainers"][0]
    init["command"] = ["python3", "-c", "import os\n" * 6]
    with pytest.raises(AssertionError, match="lines inline"):
        check_manifests(manifests)
    init["command"] = ["python3", "-m", "nebari_mlflow_server.not_delivered"]
    with pytest.raises(AssertionError, match="not_delivered"):
        check_manifests(manifests)
