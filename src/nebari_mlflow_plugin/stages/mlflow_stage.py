"""MlflowStage: the Terraform stage nebari renders, applies and checks."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _nebari.provider import opentofu
from _nebari.stages.base import NebariTerraformStage
from _nebari.stages.tf_objects import (
    NebariHelmProvider,
    NebariKubernetesProvider,
    NebariTerraformState,
)

from nebari_mlflow_plugin.__about__ import __version__
from nebari_mlflow_plugin.assets import chart_dir, stamped_chart_yaml, terraform_dir
from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.config.hub_access import keycloak_role
from nebari_mlflow_plugin.config.scheduling import node_selector
from nebari_mlflow_plugin.config.schema import DatabaseType
from nebari_mlflow_plugin.config.stage_outputs import DOMAIN, FORWARD_AUTH, KEYCLOAK_REALM
from nebari_mlflow_plugin.providers import Provider, provider_for
from nebari_mlflow_plugin.render.values import build_values
from nebari_mlflow_plugin.stages.inputs import InputSchema

CHECK_TIMEOUT_SECONDS = 600
CHECK_POLL_SECONDS = 5


def _files(source: Path, dest: Path) -> Iterator[tuple[Path, Path]]:
    for path in sorted(source.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".terraform" not in path.parts:
            yield path, dest / path.relative_to(source)


class MlflowStage(NebariTerraformStage):
    name = naming.STAGE_NAME
    # After 07-kubernetes-services (70, Traefik forward-auth) and 08 tf-extensions (80).
    priority = 85
    input_schema = InputSchema
    # The 2025.10.x deployment being taken over (takeover.py); set by deploy().
    takeover_from = None

    @property
    def provider(self) -> Provider:
        return provider_for(self.config.provider)

    @property
    def template_directory(self) -> Path:
        return terraform_dir()

    def tf_objects(self) -> list[dict]:
        return [
            NebariTerraformState(self.name, self.config),
            NebariKubernetesProvider(self.config),
            NebariHelmProvider(self.config),
        ]

    def layout(self) -> list[tuple[Path, Path]]:
        """(source, destination) pairs: the provider's root module is the shared root
        files plus the provider's own, next to the shared module and the chart."""
        tf = terraform_dir()
        prefix = self.stage_prefix
        sources = [
            (tf / "root", prefix),
            *((tf / folder, prefix) for folder in self.provider.terraform_dirs),
            (tf / "modules" / "mlflow", prefix / "modules" / "mlflow"),
            (tf / "modules" / "hub-access", prefix / "modules" / "hub-access"),
            (chart_dir(), prefix / "chart" / "mlflow"),
        ]
        return [pair for source, dest in sources for pair in _files(source, dest)]

    def render(self) -> dict[Path, str | bytes]:
        contents: dict[Path, str | bytes] = {
            self.stage_prefix / "_nebari.tf.json": opentofu.tf_render_objects(self.tf_objects())
        }
        for source, dest in self.layout():
            contents[dest] = source.read_bytes()
            if source == chart_dir() / "Chart.yaml":
                contents[dest] = stamped_chart_yaml(source.read_text(), __version__)
        return contents

    def state_imports(self) -> list[tuple[str, str]]:
        """Nothing for nebari to import: its imports swallow every failure (and time
        out after 30 s); deploy() adopts kept storage itself."""
        return []

    @contextlib.contextmanager
    def deploy(
        self, stage_outputs: dict[str, Any], disable_prompt: bool = False, tofu_init: bool = True
    ):
        """nebari's deploy, with two steps between `tofu init` and apply. First the kept
        storage: adopted when MLflow is enabled (a previous destroy or disable forgot
        it), forgotten when it is disabled (data kept, unless mlflow.force_destroy).
        Then, unless mlflow.force_destroy, a plan that deletes data stops the deploy
        (state_guard). Either failing stops it before anything is applied. Before
        both, a 2025.10.x deployment to take over is detected (takeover_cluster)."""
        from nebari_mlflow_plugin.lifecycle import adoption, state_guard, takeover_cluster

        mlflow = self.config.mlflow
        directory = str(self.output_directory / self.stage_prefix)
        if tofu_init:
            opentofu.init(directory)
        try:
            self.takeover_from = takeover_cluster.detect(self.config, directory, stage_outputs)
        except ValueError as exc:
            print(f"ERROR: {exc}")
            sys.exit(1)
        if self.takeover_from is not None:
            from nebari_mlflow_plugin.lifecycle.takeover import held_replicas

            held = held_replicas(self.config, self.takeover_from)
            if held:
                print(f"WARNING: {held}")
        with tempfile.NamedTemporaryFile("w", suffix=".tfvars.json") as var_file:
            json.dump(self.input_vars(stage_outputs), var_file)
            var_file.flush()
            try:
                # The state is listed once; adoption and forgetting keep the set current.
                in_state = adoption.state_addresses(directory)
                if mlflow.enabled:
                    imports = self.provider.state_imports(self.config)
                    in_state |= set(adoption.adopt(directory, var_file.name, imports, in_state))
                elif not mlflow.force_destroy:
                    in_state -= set(self.forget_retained(in_state))
                if not mlflow.force_destroy:
                    state_guard.check(directory, var_file.name, in_state)
            except (adoption.AdoptionError, state_guard.DataLossRefused) as exc:
                print(f"ERROR: {exc}")
                sys.exit(1)
        with super().deploy(stage_outputs, disable_prompt, tofu_init=False):
            yield

    @contextlib.contextmanager
    def destroy(
        self, stage_outputs: dict[str, Any], status: dict[str, bool], ignore_errors: bool = True
    ):
        """nebari destroy: first a verified pre-destroy backup of the in-cluster
        database to a store that survives, or, where data would be lost anyway (volumes
        in Nebari's namespace, which stage 03 deletes), a stop before anything is
        deleted (final_backup). Then, unless mlflow.force_destroy, storage holding data
        is removed from the state (not from the cloud), so OpenTofu leaves it alone and
        the stage is destroyed cleanly; the next deploy adopts it again."""
        with super().destroy(stage_outputs, status, ignore_errors):
            self.back_up_before_destroy(stage_outputs)
            yield
            if not self.config.mlflow.force_destroy:
                self.forget_retained()

    def back_up_before_destroy(self, stage_outputs: dict[str, Any]) -> None:
        """final_backup.check, its failures one message and a SystemExit: nebari then
        unwinds every stage it entered without deleting (an Exception would make it
        destroy the stages before this one, stage 03's namespace with them)."""
        from nebari_mlflow_plugin.lifecycle import final_backup
        from nebari_mlflow_plugin.lifecycle.backup_jobs import BackupError, cluster_message

        try:
            final_backup.check(self.config, stage_outputs)
        except (final_backup.DestroyRefused, BackupError) as exc:
            print(f"ERROR: {exc}")
        except Exception as exc:
            message = cluster_message(exc)
            if message is None:
                raise SystemExit(f"ERROR: the pre-destroy backup failed: {exc!r}") from None
            print(f"ERROR: the pre-destroy backup failed: {message}")
        else:
            return
        print(
            "ERROR: nebari destroy stopped before deleting anything (docs/admin/survival.md). "
            "To destroy without a final backup: mlflow.force_destroy: true deletes MLflow's "
            "data too."
        )
        sys.exit(1)

    def forget_retained(self, in_state: set[str] | None = None) -> list[str]:
        """Remove the kept storage from the state (`in_state`: its addresses, when the
        caller has listed them); return what was forgotten."""
        retained = self.provider.retained_addresses()
        if not retained:
            return []
        from nebari_mlflow_plugin.lifecycle.adoption import state_addresses

        directory = str(self.output_directory / self.stage_prefix)
        if in_state is None:
            in_state = state_addresses(directory)
        forget = [address for address in retained if address in in_state]
        if forget:
            opentofu.run_tofu_subprocess(["state", "rm", *forget], cwd=directory, prefix="tofu")
            print(f"Kept MLflow data (mlflow.force_destroy is false): {', '.join(forget)}")
        return forget

    def input_vars(self, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        mlflow = self.config.mlflow
        values = build_values(
            mlflow,
            self.provider,
            node_selector(mlflow, stage_outputs),
            nebari_monitoring=self.config.monitoring.enabled,
        )
        takeover_values = self.takeover_from.chart_values() if self.takeover_from else None
        if takeover_values:
            values["takeover"] = takeover_values
            if self.takeover_from.single_node_claim():  # migrate --check says so
                values["replicaCount"] = 1
        access_role = keycloak_role(mlflow) if mlflow.enabled and mlflow.auth.enabled else None
        if mlflow.enabled:
            domain = DOMAIN.read(stage_outputs)
            middleware = FORWARD_AUTH.read(stage_outputs)
        else:
            domain = DOMAIN.get(stage_outputs, "")
            middleware = ""
        realm = KEYCLOAK_REALM.read(stage_outputs) if access_role else ""
        return {
            "enabled": mlflow.enabled,
            "name": naming.RELEASE_NAME,
            "namespace": self.config.namespace,
            "domain": domain,
            "host": mlflow.host or "",
            "route_path": mlflow.route_path,
            "service_port": naming.SERVICE_PORT,
            "forward_auth_middleware": middleware,
            "internal_database": mlflow.database.type == DatabaseType.internal,
            "helm_values": json.dumps(values),
            # A takeover's copy takes as long as the old store is big: not in Helm's wait.
            "helm_wait": not takeover_values,
            "helm_overrides": json.dumps(mlflow.overrides),
            # MLflow's JupyterHub access role in Keycloak (config/hub_access.py).
            "keycloak_realm_id": realm or KEYCLOAK_REALM.get(stage_outputs, ""),
            "hub_access_role": access_role,
            **self.provider.terraform_vars(self.config, stage_outputs),
        }

    def check(self, stage_outputs: dict[str, Any], disable_prompt: bool = False) -> None:
        if not self.config.mlflow.enabled:
            print("MLflow is disabled (mlflow.enabled: false); its data was kept.")
            return
        if self.takeover_from is not None and self.takeover_from.release:
            # The server pods copy in their init containers for as long as the old store
            # is big; the old server serves the route meanwhile (not waited for).
            release = self.takeover_from.release
            domain = DOMAIN.get(stage_outputs, "<domain>")
            print(
                f"Taking over 2025.10.x release {release!r}: its server keeps serving "
                f"{naming.public_url(domain, self.config.mlflow.route_path)} "
                "while the new server pods copy its database and artifacts. Follow the copy "
                "with `nebari mlflow migrate --check -c <config>`; once it says verified, "
                "`nebari mlflow migrate --finish -c <config>` routes to the new server and "
                "removes the old release."
            )
            return
        from nebari_mlflow_plugin.lifecycle.kube_target import kube_target
        from nebari_mlflow_plugin.lifecycle.status import KubernetesSource, deployment_problems

        namespace = self.config.namespace
        target = kube_target(self.config, stage_outputs)
        source = KubernetesSource(namespace, target.kubeconfig, target.context)
        deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
        while True:
            _, problems = deployment_problems(source, namespace)
            if not problems:
                break
            if time.monotonic() > deadline:
                print(f"ERROR: MLflow in namespace {namespace!r} is not available:")
                for problem in problems:
                    print(f"  - {problem}")
                sys.exit(1)
            time.sleep(CHECK_POLL_SECONDS)
        domain = DOMAIN.get(stage_outputs, "<domain>")
        route = self.config.mlflow.route_path
        host = self.config.mlflow.host or domain
        print(f"MLflow is available at {naming.public_url(host, route)}")
        print(f"In-cluster tracking URI: {naming.internal_tracking_uri(namespace, route)}")
