"""The `mlflow:` block through nebari's own combined config class."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pydantic
import pytest
from nebari.plugins import nebari_plugin_manager
from support import nebari as nb

from nebari_mlflow_plugin.stages.mlflow_stage import MlflowStage


@pytest.fixture(autouse=True)
def _offline_cloud(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def user_env(config) -> dict:
    extra_env = config.jupyterhub.overrides.get("singleuser", {}).get("extraEnv", {})
    if isinstance(extra_env, list):
        return {item["name"]: item.get("value") for item in extra_env}
    return dict(extra_env)


def test_nebari_discovers_the_stage_after_core_services():
    stages = nebari_plugin_manager.ordered_stages
    assert MlflowStage in stages
    priorities = {stage.name: stage.priority for stage in stages}
    assert priorities["mlflow"] > priorities["07-kubernetes-services"]
    assert "mlflow" in nebari_plugin_manager.config_schema.model_fields


@pytest.mark.parametrize("provider", ["local", "existing"])
@pytest.mark.parametrize("block", [None, {}, {"replicas": 1, "workers": 2}])
def test_supported_providers_validate_with_and_without_block(provider, block):
    config = nb.validate(nb.config_dict(provider, block))
    assert config.mlflow.enabled
    assert user_env(config)["MLFLOW_TRACKING_URI"] == "http://mlflow.dev.svc:5000/mlflow"


@pytest.mark.parametrize("provider", nb.PROVIDERS)
def test_every_provider_validates_with_the_plugin_disabled(provider):
    config = nb.validate(nb.config_dict(provider, {"enabled": False}))
    assert not config.mlflow.enabled
    assert "MLFLOW_TRACKING_URI" not in user_env(config)


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_cloud_providers_validate_with_the_block(provider):
    config = nb.validate(nb.config_dict(provider, {}))
    assert config.mlflow.enabled
    assert user_env(config)["MLFLOW_TRACKING_URI"] == "http://mlflow.dev.svc:5000/mlflow"


def test_azure_without_workload_identity_fails_early():
    data = nb.config_dict("azure", {})
    data["azure"]["workload_identity_enabled"] = False
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(data)
    assert "workload_identity_enabled: true" in str(err.value)


def test_replicas_on_a_cloud_bucket_need_no_shared_volume():
    config = nb.validate(nb.config_dict("gcp", {"replicas": 3}))
    assert config.mlflow.replicas == 3


def test_a_full_block_round_trips():
    block = {
        "image": {"repository": "registry.example.com/mlflow", "tag": "v3.17.2-full"},
        "replicas": 2,
        "workers": 8,
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "database": {"type": "external", "external_secret": {"name": "mlflow-db", "key": "url"}},
        "artifacts": {
            "type": "s3",
            "s3": {
                "endpoint_url": "http://minio.storage.svc:9000",
                "bucket": "mlflow-artifacts",
                "credentials_secret": "minio-creds",
            },
        },
        "force_destroy": True,
        "route_path": "/tracking",
        "overrides": {"podAnnotations": {"team": "ml"}},
    }
    config = nb.validate(nb.config_dict("existing", block))
    assert config.mlflow.database.external_secret.key == "url"
    assert config.mlflow.artifacts.s3.prefix == "mlflow"
    assert user_env(config)["MLFLOW_TRACKING_URI"].endswith(":5000/tracking")


# --- JupyterHub injection ------------------------------------------------------


def with_extra_env(extra_env) -> dict:
    return nb.config_dict(jupyterhub={"overrides": {"singleuser": {"extraEnv": extra_env}}})


def test_injection_into_absent_overrides():
    config = nb.validate(nb.config_dict())
    assert config.jupyterhub.overrides["singleuser"]["extraEnv"] == {
        "MLFLOW_TRACKING_URI": "http://mlflow.dev.svc:5000/mlflow",
        "NEBARI_PROJECT": "demo",
        "NEBARI_NAMESPACE": "dev",
        # auth on (the default): each user's own experiment, the delivered request-auth
        # provider, for this server only
        "MLFLOW_EXPERIMENT_NAME": "users/{unescaped_username}",
        "MLFLOW_TRACKING_AUTH": "nebari-jupyterhub",
        "NEBARI_MLFLOW_SERVER": "http://mlflow.dev.svc:5000/mlflow",
        # what the notebook package's workflow tokens are made with
        "NEBARI_MLFLOW_HUB_SERVICE": "MLflow",
        "NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS": "129600",
        "NEBARI_MLFLOW_WORKFLOW_TOKENS": "auto",
        "PYTHONPATH": "/opt/nebari-mlflow/python",
        # async logging on (the default), batched
        "MLFLOW_ENABLE_ASYNC_LOGGING": "true",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
        "MLFLOW_REGISTRY_URI": "http://mlflow.dev.svc:5000/mlflow",
        # artifacts on a volume: every byte through the server, said explicitly
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    }


def test_async_logging_is_on_by_default_and_can_be_turned_off():
    default = user_env(nb.validate(nb.config_dict()))
    assert default["MLFLOW_ENABLE_ASYNC_LOGGING"] == "true"
    assert int(default["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"]) >= 1
    off = user_env(nb.validate(nb.config_dict(mlflow={"notebook": {"async_logging": False}})))
    assert not {"MLFLOW_ENABLE_ASYNC_LOGGING", "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS",
                "MLFLOW_REGISTRY_URI"} & set(off)  # fmt: skip
    # The registry is named as MLflow would derive it (see test_async_logging for why).
    assert default["MLFLOW_REGISTRY_URI"] == default["MLFLOW_TRACKING_URI"]
    # An admin's own choice in the pods stays theirs.
    kept = user_env(nb.validate(with_extra_env({"MLFLOW_ENABLE_ASYNC_LOGGING": "false"})))
    assert kept["MLFLOW_ENABLE_ASYNC_LOGGING"] == "false"
    with pytest.raises(pydantic.ValidationError, match="async_logging"):
        nb.validate(nb.config_dict(mlflow={"notebook": {"async_logging": "sometimes"}}))


def test_injection_keeps_other_overrides():
    data = nb.config_dict(
        jupyterhub={"overrides": {"singleuser": {"cpu": {"limit": 2}}, "hub": {"x": 1}}}
    )
    config = nb.validate(data)
    overrides = config.jupyterhub.overrides
    assert overrides["hub"]["x"] == 1  # kept; hub.services gets the menu link
    assert overrides["singleuser"]["cpu"] == {"limit": 2}
    assert "MLFLOW_TRACKING_URI" in overrides["singleuser"]["extraEnv"]


def test_injection_appends_to_list_form():
    config = nb.validate(with_extra_env([{"name": "TEAM", "value": "ml"}]))
    extra_env = config.jupyterhub.overrides["singleuser"]["extraEnv"]
    assert isinstance(extra_env, list)
    assert extra_env[0] == {"name": "TEAM", "value": "ml"}
    assert user_env(config)["MLFLOW_TRACKING_URI"].startswith("http://mlflow.dev.svc")


def test_injection_adds_to_dict_form():
    config = nb.validate(with_extra_env({"TEAM": "ml"}))
    assert user_env(config) == {
        "TEAM": "ml",
        "MLFLOW_TRACKING_URI": "http://mlflow.dev.svc:5000/mlflow",
        "NEBARI_PROJECT": "demo",
        "NEBARI_NAMESPACE": "dev",
        # auth on (the default): each user's own experiment, the delivered request-auth
        # provider, for this server only
        "MLFLOW_EXPERIMENT_NAME": "users/{unescaped_username}",
        "MLFLOW_TRACKING_AUTH": "nebari-jupyterhub",
        "NEBARI_MLFLOW_SERVER": "http://mlflow.dev.svc:5000/mlflow",
        # what the notebook package's workflow tokens are made with
        "NEBARI_MLFLOW_HUB_SERVICE": "MLflow",
        "NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS": "129600",
        "NEBARI_MLFLOW_WORKFLOW_TOKENS": "auto",
        "PYTHONPATH": "/opt/nebari-mlflow/python",
        # async logging on (the default), batched
        "MLFLOW_ENABLE_ASYNC_LOGGING": "true",
        "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
        "MLFLOW_REGISTRY_URI": "http://mlflow.dev.svc:5000/mlflow",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    }


@pytest.mark.parametrize(
    "extra_env",
    [
        {"MLFLOW_TRACKING_URI": "http://elsewhere:5000"},
        [{"name": "MLFLOW_TRACKING_URI", "value": "http://elsewhere:5000"}],
    ],
)
def test_admin_value_is_kept(extra_env):
    config = nb.validate(with_extra_env(copy.deepcopy(extra_env)))
    assert user_env(config)["MLFLOW_TRACKING_URI"] == "http://elsewhere:5000"
    # The admin's entry is the only MLFLOW_TRACKING_URI; the others are added.
    extra = config.jupyterhub.overrides["singleuser"]["extraEnv"]
    names = [e["name"] for e in extra] if isinstance(extra, list) else list(extra)
    assert names.count("MLFLOW_TRACKING_URI") == 1
    assert "NEBARI_PROJECT" in names


@pytest.mark.parametrize("block", [{"enabled": False}, {"inject_env": False}])
def test_nothing_injected_when_off(block):
    config = nb.validate(nb.config_dict(mlflow=block))
    # The hub's services menu link (test_operate_config.py) does not touch user pods.
    assert set(config.jupyterhub.overrides) <= {"hub"}


def test_injection_follows_namespace_and_route():
    config = nb.validate(nb.config_dict(namespace="prod", mlflow={"route_path": "/ml/tracking"}))
    assert user_env(config)["MLFLOW_TRACKING_URI"] == "http://mlflow.prod.svc:5000/ml/tracking"


def test_injection_is_idempotent_and_configs_do_not_share_state():
    first = nb.validate(nb.config_dict())
    once = copy.deepcopy(first.jupyterhub.overrides["singleuser"]["extraEnv"])
    # Revalidating (nebari re-validates on assignment) must not add a second entry.
    first.namespace = "dev"
    second = nb.validate(nb.config_dict(mlflow={"enabled": False}))
    assert user_env(first)["MLFLOW_TRACKING_URI"] == "http://mlflow.dev.svc:5000/mlflow"
    assert first.jupyterhub.overrides["singleuser"]["extraEnv"] == once
    assert len(first.jupyterhub.overrides["custom"]["extra-mounts"]) == 2
    assert second.jupyterhub.overrides == {}


def test_per_user_experiment_is_injected_for_the_spawner_to_expand():
    from support.userpod import expand_user

    config = nb.validate(nb.config_dict(mlflow={"user_experiment": "users/{username}"}))
    assert expand_user(user_env(config)["MLFLOW_EXPERIMENT_NAME"], "bob") == "users/bob"
    # Unset: the user's own experiment with auth on (the default), MLflow's Default off.
    default = user_env(nb.validate(nb.config_dict()))
    assert expand_user(default["MLFLOW_EXPERIMENT_NAME"], "bob") == "users/bob"
    off = nb.validate(nb.config_dict(mlflow={"auth": {"enabled": False}}))
    assert "MLFLOW_EXPERIMENT_NAME" not in user_env(off)


PYDIR = "/opt/nebari-mlflow/python"


def mounts(config) -> dict:
    return config.jupyterhub.overrides.get("custom", {}).get("extra-mounts", {})


def test_notebook_package_is_mounted_by_default():
    config = nb.validate(nb.config_dict())
    mounted = mounts(config)
    assert {volume["name"] for volume in mounted.values()} == {
        "mlflow-notebook-package", "mlflow-notebook-metadata",
    }  # fmt: skip
    assert all(v["kind"] == "configmap" and v["namespace"] == "dev" for v in mounted.values())
    python_dir = user_env(config)["PYTHONPATH"]
    # The package and its metadata sit directly on PYTHONPATH, where imports find them.
    assert {str(Path(path).parent) for path in mounted} == {
        python_dir,
        python_dir + "/nebari_mlflow_plugin",
    }
    assert "NEBARI_MLFLOW_CAPTURE" not in user_env(config)


@pytest.mark.parametrize(
    "block",
    [
        {"notebook": {"client": False}, "auth": {"enabled": False}},
        {"inject_env": False},
        {"enabled": False},
    ],
)
def test_no_mounts_or_pythonpath_when_off(block):
    config = nb.validate(nb.config_dict(mlflow=block))
    assert not mounts(config)
    assert "PYTHONPATH" not in user_env(config)


def test_cell_capture_adds_the_ipython_config_and_its_settings():
    config = nb.validate(nb.config_dict(mlflow={"notebook": {
        "capture_cells": True, "capture_experiment": "users/{username}/cells",
        "capture_redact": [r"sk-[A-Za-z0-9]{20,}", r"pin=(?P<secret>\d+)"],
    }}))  # fmt: skip
    env = user_env(config)
    assert env["NEBARI_MLFLOW_CAPTURE"] == "1"
    from support.userpod import expand_user

    assert expand_user(env["NEBARI_MLFLOW_CAPTURE_EXPERIMENT"], "alice") == "users/alice/cells"
    # What the kernel reads after KubeSpawner's str.format over every env value.
    assert json.loads(env["NEBARI_MLFLOW_CAPTURE_REDACT"].format(username="alice")) == [
        r"sk-[A-Za-z0-9]{20,}", r"pin=(?P<secret>\d+)",
    ]  # fmt: skip
    assert mounts(config)["/usr/local/etc/ipython"]["name"] == "mlflow-notebook-ipython"


@pytest.mark.parametrize(
    ("extra_env", "expected"),
    [
        ({"PYTHONPATH": "/srv/lib"}, f"/srv/lib:{PYDIR}"),
        ([{"name": "PYTHONPATH", "value": "/srv/lib:"}], f"/srv/lib:{PYDIR}"),
        (
            {"PYTHONPATH": "/opt/nebari-mlflow/python:/srv/lib"},
            "/opt/nebari-mlflow/python:/srv/lib",
        ),
    ],
)
def test_admin_pythonpath_is_extended_once(extra_env, expected):
    config = nb.validate(with_extra_env(copy.deepcopy(extra_env)))
    config.namespace = "dev"  # re-validation must not append twice
    assert user_env(config)["PYTHONPATH"] == expected


def test_pythonpath_from_a_secret_cannot_be_extended():
    extra_env = [{"name": "PYTHONPATH", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(with_extra_env(extra_env))
    assert "PYTHONPATH" in str(err.value) and "mlflow.notebook.client" in str(err.value)


def test_admin_extra_mounts_are_kept():
    theirs = {"/data/shared-models": {"name": "models", "kind": "persistentvolumeclaim"}}
    data = nb.config_dict(jupyterhub={"overrides": {"custom": {"extra-mounts": dict(theirs)}}})
    mounted = mounts(nb.validate(data))
    assert mounted["/data/shared-models"] == theirs["/data/shared-models"]
    assert len(mounted) == 3


# --- Invalid values: each error names the field and what is allowed --------------

INVALID = [
    ({"enabled": "maybe"}, "mlflow.enabled"),
    ({"replicas": 0}, "mlflow.replicas"),
    ({"workers": 100}, "mlflow.workers"),
    ({"route_path": "mlflow"}, "mlflow.route_path"),
    ({"route_path": "/mlflow/"}, "mlflow.route_path"),
    ({"route_path": "/hub"}, "mlflow.route_path"),
    ({"route_path": "/conda-store/mlflow"}, "mlflow.route_path"),
    ({"image": {"tag": "v3 latest"}}, "mlflow.image.tag"),
    ({"image": {"repository": "Registry/MLflow"}}, "mlflow.image.repository"),
    ({"image": {"pull_policy": "Sometimes"}}, "mlflow.image.pull_policy"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "mlflow.resources.requests.cpu"),
    ({"resources": {"limits": {"memory": "2GB"}}}, "mlflow.resources.limits.memory"),
    ({"database": {"type": "mysql"}}, "mlflow.database.type"),
    ({"database": {"type": "external"}}, "mlflow.database.external_secret"),
    ({"database": {"size": "20GB"}}, "mlflow.database.size"),
    ({"database": {"storage_class": "Fast_SSD"}}, "mlflow.database.storage_class"),
    (
        {"database": {"external_secret": {"name": "Bad Name"}}},
        "mlflow.database.external_secret.name",
    ),
    ({"artifacts": {"type": "gcs"}}, "mlflow.artifacts.type"),
    ({"artifacts": {"type": "s3"}}, "mlflow.artifacts.s3"),
    (
        {"artifacts": {"type": "s3", "s3": {"bucket": "Bad_Bucket", "credentials_secret": "c"}}},
        "mlflow.artifacts.s3.bucket",
    ),
    (
        {"artifacts": {"type": "s3", "s3": {"bucket": "ok-bucket"}}},
        "mlflow.artifacts.s3.credentials_secret",
    ),
    (
        {
            "artifacts": {
                "type": "s3",
                "s3": {"bucket": "ok", "credentials_secret": "c", "endpoint_url": "minio:9000"},
            }
        },
        "mlflow.artifacts.s3.endpoint_url",
    ),
    ({"artifacts": {"access_mode": "ReadOnlyMany"}}, "mlflow.artifacts.access_mode"),
    ({"replicas": 2}, "mlflow.artifacts.access_mode"),
    ({"force_destroy": "yes please"}, "mlflow.force_destroy"),
    ({"overrides": ["not", "a", "mapping"]}, "mlflow.overrides"),
    ({"unknown_key": 1}, "mlflow.unknown_key"),
    ({"user_experiment": "users/{user}"}, "mlflow.user_experiment"),
    ({"user_experiment": ""}, "mlflow.user_experiment"),
    ({"user_experiment": "team-}"}, "mlflow.user_experiment"),
    ({"user_experiment": "users/{username"}, "mlflow.user_experiment"),
    ({"notebook": {"client": "sometimes"}}, "mlflow.notebook.client"),
    ({"notebook": {"capture_cells": True, "client": False}}, "mlflow.notebook.client"),
    ({"notebook": {"capture_cells": True}, "inject_env": False}, "mlflow.inject_env"),
    ({"notebook": {"capture_experiment": "cells/{user}"}}, "mlflow.notebook.capture_experiment"),
    ({"notebook": {"capture_redact": ["(unclosed"]}}, "mlflow.notebook.capture_redact[0]"),
    ({"notebook": {"capture_redact": "password"}}, "mlflow.notebook.capture_redact"),
    ({"notebook": {"capture": True}}, "mlflow.notebook.capture"),
]


@pytest.mark.parametrize(("block", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_values_name_the_field(block, field):
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(nb.config_dict(mlflow=block))
    assert field in str(err.value)


def test_invalid_extra_env_type_is_explained():
    with pytest.raises(pydantic.ValidationError) as err:
        nb.validate(with_extra_env("MLFLOW_TRACKING_URI=x"))
    assert "jupyterhub.overrides.singleuser.extraEnv" in str(err.value)


@pytest.mark.parametrize("example", sorted(nb.EXAMPLES_DIR.glob("*/nebari-config.yaml")), ids=str)
def test_shipped_examples_validate(example):
    from _nebari.utils import yaml

    config = nb.validate(yaml.load(example.read_text()))
    assert config.mlflow.enabled
    assert "MLFLOW_TRACKING_URI" in user_env(config)


@pytest.mark.parametrize("user", ["alice", "Alice.Smith@example.com"])
def test_per_user_experiments_are_named_for_the_person_not_the_pod_slug(user):
    """KubeSpawner expands `{username}` to an escaped slug; people read their own name."""
    from support.userpod import expand_user, kubespawner_slug

    notebook = {"capture_cells": True, "capture_experiment": "cells/{username}"}
    config = nb.validate(
        nb.config_dict("local", {"user_experiment": "users/{username}", "notebook": notebook})
    )
    env = user_env(config)
    assert expand_user(env["MLFLOW_EXPERIMENT_NAME"], user) == f"users/{user}"
    assert expand_user(env["NEBARI_MLFLOW_CAPTURE_EXPERIMENT"], user) == f"cells/{user}"
    if user != user.lower():
        assert kubespawner_slug(user) != user  # the slug is not what the user reads
