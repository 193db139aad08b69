"""Another replica of the rendered server: the same container as another pod would run it."""

from __future__ import annotations

import shutil

from support.deployment import server_container
from support.podrun import LocalContainer
from support.release import find


def second_replica(dep, port: int) -> LocalContainer:
    """The same rendered container as another pod: its own port and emptyDirs, the same
    database and the same (ReadWriteMany) artifact volume; the same ConfigMaps, and
    what its own init containers write (the auth ini) into its emptyDirs."""
    (deployment,) = find(dep.manifests, "Deployment", "mlflow")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = server_container(deployment)["volumeMounts"]
    shared = {m["mountPath"] for m in mounts
              if m["name"] == "artifacts" or "configMap" in volumes[m["name"]]}  # fmt: skip
    written = {m["mountPath"] for m in mounts if m["name"] == "auth-config"}
    assert shared, "replicas share the artifact volume"
    replace = {}
    for mount_path, local in dep.server.mounts.items():
        if mount_path not in shared:
            own = dep.workdir / "replica-1" / local.name
            if mount_path in written:
                shutil.copytree(local, own, dirs_exist_ok=True)
            own.mkdir(parents=True, exist_ok=True)
            replace[str(local)] = str(own)

    def fix(text: str) -> str:
        for old, new in replace.items():
            text = text.replace(old, new)
        return text

    argv = [fix(a) for a in dep.server.argv]
    argv[argv.index("--port") + 1] = str(port)
    return LocalContainer(argv=argv, env={k: fix(v) for k, v in dep.server.env.items()})
