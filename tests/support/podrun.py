"""Run a rendered pod's container as a local process, as the kubelet would.

Takes a container from a rendered manifest and resolves what Kubernetes
resolves: env from literals, Secrets (given here as dicts) and the downward
API, `$(VAR)` and `$$` expansion in env/command/args, and volume mounts (each mount path
becomes a local directory). The container image's `mlflow` is replaced by the
MLflow virtualenv's, the listen address by loopback, and the port by a free one.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_VAR_REF = re.compile(r"\$(\$|\(([^)]*)\))")


def _expand(text: str, env: dict[str, str]) -> str:
    """As the kubelet expands command, args and env values (Kubernetes'
    third_party/forked/golang/expansion): `$(VAR)` becomes VAR's value when it is
    defined and stays as written otherwise, and `$$` becomes `$`, everywhere in the
    string, also inside a script passed inline."""
    return _VAR_REF.sub(
        lambda m: "$" if m.group(1) == "$" else env.get(m.group(2), m.group(0)), text
    )


@dataclass
class LocalContainer:
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path] = field(default_factory=dict)

    def shell(self) -> str:
        return shlex.join(self.argv)


def resolve_env(
    container: dict[str, Any], secrets: dict[str, dict[str, str]], pod_fields: dict[str, str]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = _expand(str(item["value"]), env)
        elif "valueFrom" in item:
            ref = item["valueFrom"]
            if "secretKeyRef" in ref:
                key_ref = ref["secretKeyRef"]
                env[name] = secrets[key_ref["name"]][key_ref["key"]]
            elif "fieldRef" in ref:
                env[name] = pod_fields[ref["fieldRef"]["fieldPath"]]
            else:
                raise ValueError(f"unsupported valueFrom for {name}: {ref}")
    return env


def local_container(
    container: dict[str, Any],
    *,
    workdir: Path,
    executables: dict[str, str],
    secrets: dict[str, dict[str, str]],
    port: int | None = None,
    pod_fields: dict[str, str] | None = None,
) -> LocalContainer:
    fields = {"status.podIP": "127.0.0.1", "metadata.name": "mlflow-0", **(pod_fields or {})}
    env = resolve_env(container, secrets, fields)
    argv = [
        _expand(a, env) for a in (container.get("command") or []) + (container.get("args") or [])
    ]
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        local = workdir / "volumes" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        mounts[mount["mountPath"]] = local

    def localise(text: str) -> str:
        for path in sorted(mounts, key=len, reverse=True):
            if text == path or text.startswith(path.rstrip("/") + "/"):
                return str(mounts[path]) + text[len(path.rstrip("/")) :]
        return text

    argv = [localise(a) for a in argv]
    env = {k: localise(v) for k, v in env.items()}
    if argv and argv[0] in executables:
        argv[0] = executables[argv[0]]
    argv = [_retarget(a, i, argv, port) for i, a in enumerate(argv)]
    return LocalContainer(argv=argv, env=env, mounts=mounts)


def _retarget(arg: str, index: int, argv: list[str], port: int | None) -> str:
    previous = argv[index - 1] if index else ""
    if previous in ("--host", "-h") and arg == "0.0.0.0":
        return "127.0.0.1"
    if previous in ("--port", "-p") and port is not None:
        return str(port)
    return arg


def process_env(container: LocalContainer, base: dict[str, str] | None = None) -> dict[str, str]:
    """The container's env over a minimal host env (PATH/HOME/LANG only) and `base`;
    a PYTHONPATH of both is joined, the container's first (a stand-in of the test's,
    such as cluster_dns's, stays importable beside the package the pod mounts)."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR"}}
    env = {**keep, **(base or {}), **container.env}
    if "PYTHONPATH" in (base or {}) and "PYTHONPATH" in container.env:
        env["PYTHONPATH"] = f"{container.env['PYTHONPATH']}:{base['PYTHONPATH']}"
    return env
