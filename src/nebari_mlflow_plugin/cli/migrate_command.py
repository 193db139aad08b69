"""`nebari mlflow migrate`: the takeover of a 2025.10.x deployment, before and after.

`--check` changes nothing: it reads the config (offline), the old deployment from
a state file (`--state`, e.g. `tofu state pull` of the stage) or, unless
`--offline`, from the cluster, and prints what the next deploy does, what the
config must say first, and how far a takeover already got. `--finish` removes the
old release only when every server pod's takeover init containers reported
verified counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.lifecycle import takeover, takeover_cluster

# What the old release created (Bitnami mlflow, postgresql and minio charts), removed
# by --finish in this order: (kubernetes client API class, resource as the client's
# method names spell it); PersistentVolumeClaims only with --delete-volumes.
RELEASE_KINDS = (
    ("AppsV1Api", "deployment"), ("AppsV1Api", "stateful_set"), ("BatchV1Api", "job"),
    ("CoreV1Api", "service"), ("CoreV1Api", "config_map"), ("CoreV1Api", "secret"),
    ("CoreV1Api", "service_account"), ("NetworkingV1Api", "network_policy"),
    ("PolicyV1Api", "pod_disruption_budget"),
)  # fmt: skip
VOLUMES = ("CoreV1Api", "persistent_volume_claim")


class MigrateError(ValueError):
    """An expected failure of the command, one line."""


def plan_lines(config: Any, old: takeover.OldDeployment | None) -> list[str]:
    """What the next deploy does, for people to read."""
    provider = str(getattr(config.provider, "value", config.provider))
    if old is None:
        return [
            "No deployment of nebari-mlflow-plugin 2025.10.x found: the next deploy is a "
            "fresh install; the takeover blocks in the rendered module do nothing."
        ]
    if old.release:
        found = f"Helm release {old.release!r} in namespace {old.namespace!r}"
    else:
        found = "no Helm release (it was disabled), its store"
    lines = [f"2025.10.x deployment found ({old.found_in}): {found}.",
             "Terraform on the next deploy:"]  # fmt: skip
    for fate in takeover.FATES["all"] + takeover.FATES.get(provider, []):
        lines.append(f"  {fate.address}: {fate.action}" + (f" ({fate.note})" if fate.note else ""))
    if not old.release:
        lines.append("Nothing to copy: the store is adopted as it is.")
        return lines
    database, artifacts = old.database(), old.artifacts()
    lines += [
        "The new server pod, before its schema migration (init containers):",
        f"  takeover-database: copy {database['name']} (user {database['user']}) from "
        f"{database['host']}:{database['port']} into the new internal PostgreSQL in one "
        "transaction, then compare the rows of every table (refused if the new database "
        "already holds tables)",
    ]
    if artifacts.get("source"):
        where = artifacts.get("s3EndpointUrl") or artifacts.get("claim") or "the cloud store"
        lines.append(
            f"  takeover-artifacts: copy the experiment folders of {artifacts['source']} "
            f"({where}) into the new artifact store, skipping files already there, then "
            "compare the file lists"
        )
        if artifacts.get("claim"):
            lines.append(
                f"    the claim {artifacts['claim']} is attached to the old tracking pod: "
                f"`kubectl -n {old.namespace} scale deployment {old.release}-tracking "
                "--replicas=0` before deploying (nothing is deleted)"
            )
    else:
        lines.append("  no artifacts to copy")
    lines.append(
        "Then: `nebari mlflow migrate --finish -c ...` reads the verified counts and "
        "removes the old release (its volumes are kept unless --delete-volumes)."
    )
    return lines


def old_from_state_file(path: Path) -> takeover.OldDeployment | None:
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MigrateError(
            f"{path} is not a state file (JSON of `tofu state pull`): {exc}"
        ) from None
    return takeover.from_state(state)


def check(
    config: Any, state_file: Path | None, offline: bool, cluster_target: dict[str, Any]
) -> tuple[list[str], bool]:
    """(lines to print, whether the next deploy may go ahead)."""
    lines: list[str] = []
    old = old_from_state_file(state_file) if state_file else None
    cluster = None
    if not offline:
        try:
            cluster = takeover_cluster.cluster_for(config, **cluster_target)
            if old is None:
                old = takeover_cluster.in_cluster(config, cluster)
        except Exception as exc:
            lines.append(f"cluster not read ({str(exc).splitlines()[0]}); --offline skips it")
            cluster = None
    lines += plan_lines(config, old)
    if old is None:
        return lines, True
    problems = takeover.config_problems(config, old)
    if not old.resources and str(getattr(config.provider, "value", config.provider)) != "local":
        lines.append(
            "Only the state knows the old KMS key and bucket location: run the check with "
            "--state (the deploy itself reads the state and refuses what does not match)"
        )
    if cluster is not None and old.release:
        actual = cluster.old_destination(old.release)
        if actual:
            lines.append(f"The old server's --artifacts-destination (cluster): {actual}")
        where = takeover_cluster.destination_problem(old, cluster)
        problems += [where] if where else []
    if problems:
        lines.append("Before deploying, change the config:")
        lines += [f"  - {problem}" for problem in problems]
    if cluster is not None and old.release:
        verified_all, verified = takeover_cluster.verification(cluster.server_pods())
        lines.append(
            "Takeover so far" + (" (verified: `--finish` may run):" if verified_all else ":")
        )
        lines += [f"  {line}" for line in verified]
    return lines, not problems


def finish(config: Any, delete_volumes: bool, cluster_target: dict[str, Any]) -> list[str]:
    """Remove the old release after verification; the lines say what was removed."""
    cluster = takeover_cluster.cluster_for(config, **cluster_target)
    release = takeover_cluster.old_release_name(config)
    if not cluster.helm_records(release):
        raise MigrateError(f"no Helm release {release!r} in namespace {config.namespace!r}: "
                           "nothing to finish")  # fmt: skip
    ok, verified = takeover_cluster.verification(cluster.server_pods())
    if not ok:
        raise MigrateError(
            f"the takeover is not verified, so {release!r} stays: " + "; ".join(verified)
        )
    lines = [f"verified: {line}" for line in verified]
    lines += remove_release(cluster, release, delete_volumes)
    lines.append("Now run `nebari deploy`: the server pod then no longer has the takeover "
                 "init containers.")  # fmt: skip
    return lines


def remove_release(cluster: Any, release: str, delete_volumes: bool) -> list[str]:
    """What `helm uninstall` would remove, through the Kubernetes API, volumes kept
    unless asked (Helm would delete the tracking and MinIO claims)."""
    from kubernetes import client

    selector = f"app.kubernetes.io/instance={release}"
    removed = []
    for api_class, kind in (*RELEASE_KINDS, *((VOLUMES,) if delete_volumes else ())):
        api = getattr(client, api_class)(cluster.api)
        found = getattr(api, f"list_namespaced_{kind}")(cluster.namespace, label_selector=selector)
        for item in found.items:
            getattr(api, f"delete_namespaced_{kind}")(
                item.metadata.name, cluster.namespace, propagation_policy="Background"
            )
            removed.append(f"removed {kind} {item.metadata.name}")
    for record in cluster.helm_records(release):
        name = record["metadata"]["name"]
        cluster.core.delete_namespaced_secret(name, cluster.namespace)
        removed.append(f"removed Helm record {name}")
    if not delete_volumes:
        removed.append(f"kept the PersistentVolumeClaims labelled {selector} "
                       "(--delete-volumes removes them)")  # fmt: skip
    return removed
