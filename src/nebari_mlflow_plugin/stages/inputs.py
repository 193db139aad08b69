"""The stage's `input_schema`: the `mlflow:` block checked against the whole config.

Nebari builds one config class by multiple inheritance of every stage's
`input_schema`, so `InputSchema` is mixed into that class: its `model_validator`
sees the whole config (provider, other extensions' routes, jupyterhub) and is where
the JupyterHub user-pod environment is injected (stage 07 deploys JupyterHub before
any plugin stage).
"""

from __future__ import annotations

from typing import Any

from nebari import schema
from pydantic import model_validator

from nebari_mlflow_plugin.config import routes
from nebari_mlflow_plugin.config.schema import MLflow


class InputSchema(schema.Base):
    mlflow: MLflow = MLflow()

    @model_validator(mode="after")
    def _check_provider_and_inject_user_pods(self) -> Any:
        # Imported here: this module is imported on every nebari command.
        from nebari_mlflow_plugin.config import overrides
        from nebari_mlflow_plugin.providers import provider_for
        from nebari_mlflow_plugin.render.injection import (
            add_hub_service,
            add_server_token_scopes,
            inject_user_pods,
        )
        from nebari_mlflow_plugin.render.values import NEBARI_CLIENTS, build_values

        taken = routes.collisions(self.mlflow.route_path, routes.extension_rules(self))
        if taken:
            raise ValueError(routes.route_error(self.mlflow.route_path, taken))
        domain = getattr(self, "domain", None)
        if self.mlflow.host and domain and self.mlflow.host == domain.lower():
            raise ValueError(
                f"mlflow.host {self.mlflow.host!r} is the Nebari domain: give a host of "
                f"MLflow's own (e.g. 'mlflow.{domain}'), or remove mlflow.host to serve it at "
                f"https://{domain}{self.mlflow.route_path}/"
            )
        provider = getattr(self, "provider", None)
        self.mlflow._replicas_need_shared_storage(getattr(provider, "value", provider))
        builder = provider_for(provider if provider is not None else "local")
        if self.mlflow.enabled and self.mlflow.overrides:
            # What Helm would refuse at deploy time, refused now: before stage 07
            # reconfigures JupyterHub, before anything is created.
            overrides.check(self.mlflow.overrides, build_values(self.mlflow, builder),
                            NEBARI_CLIENTS)  # fmt: skip
        if self.mlflow.enabled and provider is not None:
            builder.check_config(self)
            builder.direct_transfers(self)
            builder.preflight(self)
        inject_user_pods(self)
        add_hub_service(self)
        add_server_token_scopes(self)
        return self
