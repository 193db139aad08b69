"""NotebookClientStage: the user-pod ConfigMaps, created before JupyterHub mounts them.

Stage 07 (priority 70) configures JupyterHub to mount the notebook package's
ConfigMaps into every user pod (config validation put them in
`custom.extra-mounts`), and Nebari's profile code builds those volumes without
`optional`: a server spawned while one is missing waits in ContainerCreating
until KubeSpawner gives up. So they cannot come from the MLflow stage (85),
which may fail or run minutes later. This stage runs at 65, after stage 03
created the namespace and before stage 07, and holds nothing but the
ConfigMaps, so whatever happens to the MLflow stage, JupyterLab keeps spawning.

Being the first of the plugin's stages, and before JupyterHub's, it is also where
the deploy refuses volume changes a PersistentVolumeClaim cannot take (see
volumes.py), before anything of MLflow or JupyterHub has changed.

With the client off (or MLflow disabled) the stage applies nothing: ConfigMaps
that exist stay until `nebari destroy` (a few KB, mounted by nothing once stage
07 has run), so switching the client off cannot break a spawn between this
stage and stage 07 either; a fresh deployment with the client off creates none.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from _nebari.stages.base import NebariTerraformStage
from _nebari.stages.tf_objects import NebariKubernetesProvider, NebariTerraformState

from nebari_mlflow_plugin.assets import terraform_dir
from nebari_mlflow_plugin.config import naming
from nebari_mlflow_plugin.render import notebook_delivery


class NotebookClientStage(NebariTerraformStage):
    name = naming.CLIENT_STAGE_NAME
    # After 03-kubernetes-initialize (30, the namespace), before 07 (70, JupyterHub).
    priority = 65

    @property
    def template_directory(self) -> Path:
        return terraform_dir() / "notebook-client"

    def tf_objects(self) -> list[dict]:
        return [NebariTerraformState(self.name, self.config), NebariKubernetesProvider(self.config)]

    @property
    def delivered(self) -> bool:
        return notebook_delivery.delivered(self.config.mlflow)

    def input_vars(self, stage_outputs: dict[str, Any]) -> dict[str, Any]:
        return {
            "namespace": self.config.namespace,
            "config_maps": notebook_delivery.config_maps(self.config.mlflow),
        }

    def config_map_manifests(self) -> list[dict[str, Any]]:
        """The ConfigMaps as the Kubernetes API receives them from main.tf."""
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": self.config.namespace},
                "data": files,
            }
            for name, files in self.input_vars({})["config_maps"].items()
        ]

    def refuse_volume_changes(self, stage_outputs: dict[str, Any]) -> None:
        """Exit before anything is applied when the config asks for a volume change
        the cluster's existing claims cannot take."""
        from nebari_mlflow_plugin.lifecycle.kube_target import kube_target
        from nebari_mlflow_plugin.lifecycle.status import KubernetesSource
        from nebari_mlflow_plugin.lifecycle.volumes import planned_volumes, volume_problems
        from nebari_mlflow_plugin.providers import provider_for

        planned = planned_volumes(self.config.mlflow, provider_for(self.config.provider))
        if not planned:
            return
        try:
            target = kube_target(self.config, stage_outputs)
            source = KubernetesSource(self.config.namespace, target.kubeconfig, target.context)
            problems = volume_problems(source, planned)
        except Exception as exc:  # the check must not be what breaks a deploy
            print(f"WARNING: could not compare MLflow's volumes with the cluster: {exc}")
            return
        if problems:
            print("ERROR: nebari-mlflow-plugin refuses volume changes the cluster cannot make")
            print("(nothing of MLflow or JupyterHub has been changed by this deploy):")
            for problem in problems:
                print(f"  - {problem}")
            sys.exit(1)

    @contextlib.contextmanager
    def deploy(self, stage_outputs: dict[str, Any], disable_prompt: bool = False, **kwargs):
        if self.config.mlflow.enabled:
            self.refuse_volume_changes(stage_outputs)
        if not self.delivered:
            print(
                "MLflow notebook client is off: user-pod ConfigMaps not changed "
                "(existing ones stay until `nebari destroy`)."
            )
            yield
            return
        with super().deploy(stage_outputs, disable_prompt, **kwargs):
            yield
