"""A rendered pod (a Job's, a CronJob's, the server's init containers) run as the kubelet
runs it: every container in order as a local process (podrun.py), the pod's volumes
one local directory each, shared by its containers; a volume may be given as an
existing directory (the artifact volume another pod also mounts), and ConfigMap
volumes hold what the release's ConfigMaps (`manifests`) hold."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from support.deployment import (
    MLFLOW_BIN,
    containers_of,
    project_config_maps,
    relocate,
    service_addresses,
)
from support.podrun import LocalContainer, local_container, process_env
from support.release import find


@dataclass
class Finished:
    name: str
    returncode: int
    output: str  # stdout then stderr, as `kubectl logs` shows both


@dataclass
class LocalPod:
    spec: dict  # a pod spec (initContainers, containers, volumes)
    workdir: Path
    secrets: dict[str, dict[str, str]]
    addresses: dict[str, str]  # in-cluster host:port -> 127.0.0.1:port
    env: dict[str, str] = field(default_factory=dict)  # what stands in for the cloud's identity
    volumes: dict[str, Path] = field(default_factory=dict)
    manifests: list[dict] = field(default_factory=list)  # the release (its ConfigMaps)

    def containers(self) -> list[tuple[str, LocalContainer]]:
        mounts = self.workdir / "volumes"
        mounts.mkdir(parents=True, exist_ok=True)
        project_config_maps(self.manifests, self.spec, mounts)
        for name, path in self.volumes.items():
            if not (mounts / name).exists():
                (mounts / name).symlink_to(path)
        return [
            (c["name"], relocate(local_container(c, workdir=self.workdir, executables={},
                                                 secrets=self.secrets), self.addresses))
            for c in (self.spec.get("initContainers") or []) + self.spec["containers"]
        ]  # fmt: skip

    def run(self, timeout: float = 300) -> list[Finished]:
        """Init containers then the main one, stopping at the first failure."""
        done = []
        for name, container in self.containers():
            env = process_env(container, base=self.env)
            env["PATH"] = f"{MLFLOW_BIN}:{os.environ['PATH']}"
            result = subprocess.run(container.argv, env=env, cwd=self.workdir,
                                    capture_output=True, text=True, timeout=timeout)  # fmt: skip
            done.append(Finished(name, result.returncode, result.stdout + result.stderr))
            if result.returncode != 0:
                break
        return done


def pod_spec(workload: dict) -> dict:
    spec = workload["spec"]
    if workload.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def database_addresses(manifests: list[dict], namespace: str, port: int) -> dict[str, str]:
    """The chart's PostgreSQL Service -> a local PostgreSQL on `port`."""
    service = next(s for s in find(manifests, "Service") if "5432" in str(s["spec"]["ports"]))
    return service_addresses(manifests, namespace, {service["metadata"]["name"]: port})


def database_secrets(workload: dict, password: str) -> dict[str, dict[str, str]]:
    """The database password Secret every container of `workload` refers to."""
    init, main = containers_of(workload)
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in init + main
        for e in c.get("env") or []
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    return {name: {key: password} for name, key in refs}


def last_json_line(output: str) -> dict:
    import json

    return json.loads(next(ln for ln in reversed(output.splitlines()) if ln.startswith("{")))
