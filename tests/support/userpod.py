"""A JupyterLab user pod's filesystem and environment, built from what is rendered.

The pod's volumes come from Nebari's own `base_profile_extra_mounts()` (the
function of its JupyterHub config that turns `custom.extra-mounts` into
volumes), run on JupyterHub's values with the config's overrides merged as Helm
merges them. Each ConfigMap volume is written as the kubelet projects it (files
are symlinks into `..data/`). The filesystem root is a temporary directory:
absolute mount paths, and env values naming them, are relocated under it; the
one path Python cannot be told about, IPython's system config directory, is
relocated by the kernel launcher (see `kernel_argv`).
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _nebari

from nebari_mlflow_plugin.config.overrides import merge_values
from support.release import find

JUPYTERHUB_DIR = (
    Path(_nebari.__file__).parent
    / "stages/kubernetes_services/template/modules/kubernetes/services/jupyterhub"
)
PROFILES = JUPYTERHUB_DIR / "files/jupyterhub/03-profiles.py"
IPYTHON_SYSTEM_DIR = "/usr/local/etc/ipython"
REPO = Path(__file__).resolve().parents[2]
POD_VENV = REPO / ".venv-pod"


def nebari_mount_paths() -> list[str]:
    """The mount paths Nebari itself adds to `custom.extra-mounts` (its main.tf)."""
    text = (JUPYTERHUB_DIR / "main.tf").read_text()
    block = text[text.index("extra-mounts = merge(") :]
    block = block[: block.index("environments")]
    return re.findall(r'"(/[^"]+)"\s*=\s*{', block)


def _nebari_profile_namespace() -> dict[str, Any]:
    """A namespace holding Nebari's `base_profile_extra_mounts`, from its JupyterHub
    config file (the rest of that file needs a running hub)."""
    tree = ast.parse(PROFILES.read_text())
    (function,) = [
        node for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "base_profile_extra_mounts"
    ]  # fmt: skip
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(PROFILES), "exec"), namespace)
    return namespace


def jupyterhub_values(config: Any) -> dict[str, Any]:
    """JupyterHub's `custom` values as stage 07 builds them (Nebari's own mounts as
    ConfigMaps of the same names), with the config's overrides merged on top."""
    own = {
        path: {"name": Path(path).name or "root", "namespace": config.namespace,
               "kind": "configmap"}
        for path in nebari_mount_paths()
    }  # fmt: skip
    return merge_values({"custom": {"extra-mounts": own}}, config.jupyterhub.overrides)


def pod_volumes(config: Any) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) Nebari's profile code gives every user pod."""
    values = jupyterhub_values(config)

    def get_config(key: str, default: Any = None) -> Any:
        value: Any = values
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    namespace = _nebari_profile_namespace()
    namespace["z2jh"] = SimpleNamespace(get_config=get_config)
    override = namespace["base_profile_extra_mounts"]()
    return override["extra_pod_config"]["volumes"], override["extra_container_config"][
        "volumeMounts"
    ]


def kubespawner_slug(name: str) -> str:
    """KubeSpawner 7's "safe" slug of a user name (what `{username}` expands to): safe
    names unchanged, others lowercased to [a-z0-9-] plus a hash."""
    if re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", name) and "--" not in name:
        return name
    stripped = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:30]
    return f"{stripped}---{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def expand_user(value: str, user: str, server_name: str = "") -> str:
    """KubeSpawner's expansion of env values: `str.format` with the user's properties
    (kubespawner's `_expand_user_properties`: `{username}` is the escaped slug,
    `{unescaped_username}` the JupyterHub name). Unknown fields and stray braces fail,
    as they fail the spawn."""
    return value.format(
        username=kubespawner_slug(user), unescaped_username=user, servername=server_name,
        unescaped_servername=server_name, userid=1000,
        pod_name=f"jupyter-{kubespawner_slug(user)}", pvc_name=f"claim-{kubespawner_slug(user)}",
        namespace="dev",
    )  # fmt: skip


@dataclass
class UserPod:
    root: Path
    env: dict[str, str]
    mounts: dict[str, str]  # mount path -> ConfigMap name

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def kernel_argv(self, python: Path) -> list[str]:
        """Start an ipykernel in this pod: IPython's system config directory
        (hard-coded in IPython) is pointed at the relocated one."""
        relocate = (
            "import IPython.core.application as a; "
            f"a.SYSTEM_CONFIG_DIRS[:] = [{str(self.path(IPYTHON_SYSTEM_DIR))!r}]; "
            "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()"
        )
        return [str(python), "-c", relocate, "-f", "{connection_file}"]


def _project(data: dict[str, str], directory: Path) -> None:
    """Write a ConfigMap volume the way the kubelet does (..data + symlinks)."""
    payload = directory / "..2026_01_01_00_00_00.000000000"
    payload.mkdir(parents=True)
    for key, content in data.items():
        (payload / key).write_text(content)
    (directory / "..data").symlink_to(payload.name)
    for key in data:
        (directory / key).symlink_to(Path("..data") / key)


def build_user_pod(
    config: Any, manifests: list[dict], root: Path, *, user: str = "alice"
) -> UserPod:
    """The pod for `user`: every ConfigMap mount of Nebari's profile code that the
    release renders is written under `root`, the injected env expanded for `user`."""
    volumes, mounts = pod_volumes(config)
    by_name = {volume["name"]: volume for volume in volumes}
    mounted: dict[str, str] = {}
    for mount in mounts:
        config_map = by_name[mount["name"]].get("configMap")
        if config_map is None:
            continue
        rendered = find(manifests, "ConfigMap", config_map["name"])
        if not rendered:
            continue  # one of Nebari's own ConfigMaps (stage 07), not this release's
        _project(rendered[0].get("data") or {}, root / mount["mountPath"].lstrip("/"))
        mounted[mount["mountPath"]] = config_map["name"]

    extra_env = config.jupyterhub.overrides.get("singleuser", {}).get("extraEnv", {})
    if isinstance(extra_env, list):
        extra_env = {item["name"]: item["value"] for item in extra_env}
    env = {name: expand_user(str(value), user) for name, value in extra_env.items()}
    env.update(
        JUPYTERHUB_USER=user,
        JUPYTERHUB_SERVER_NAME="",
        HOSTNAME=f"jupyter-{user}",
    )
    pod = UserPod(root=root, env=env, mounts=mounted)
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = ":".join(
            str(pod.path(part)) for part in env["PYTHONPATH"].split(":") if part
        )
    return pod


def process_env(pod: UserPod, *extra: dict[str, str], base: dict[str, str]) -> dict[str, str]:
    """Environment of a process in the pod: a clean base, the pod's env, then `extra`
    (path lists are joined, not replaced)."""
    env = {k: v for k, v in base.items() if not k.startswith(("MLFLOW_", "NEBARI_", "PYTHON"))}
    env.update(pod.env)
    for more in extra:
        for name, value in more.items():
            if name == "PYTHONPATH" and env.get(name):
                value = f"{env[name]}:{value}"
            env[name] = value
    return env
