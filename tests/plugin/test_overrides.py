"""`mlflow.overrides` as an admin writes it: refused at `nebari validate` when Helm
would refuse it, or when it would break what user pods and Traefik were given."""

from __future__ import annotations

import pydantic
import pytest
from support import nebari as nb
from support.release import find, render_release

from nebari_mlflow_plugin.config.naming import internal_tracking_uri


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def refusal(overrides: dict, provider: str = "local") -> str:
    with pytest.raises(pydantic.ValidationError) as caught:
        nb.validate(nb.config_dict(provider, {"overrides": overrides}))
    (error,) = caught.value.errors()
    return error["msg"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"podAnnotaions": {"team": "ml"}}, "'podAnnotaions' was unexpected"),
        ({"server": {"workerz": 2}}, "mlflow.overrides.server"),
        ({"service": {"type": "Magic"}}, "mlflow.overrides.service.type: 'Magic' is not one of"),
        ({"replicaCount": 2}, "use mlflow.replicas"),
    ],
)
def test_values_helm_would_refuse_fail_validation_naming_the_key(overrides, named):
    assert named in refusal(overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"fullnameOverride": "tracking"},
        {"nameOverride": "tracking"},
        {"service": {"port": 80}},
        {"server": {"staticPrefix": "/other"}},
        {"server": {"allowedHosts": ["*"]}},
        {"ingressRoute": {"middlewares": []}},
        {"ingressRoute": {"enabled": False}},
        {"database": {"internal": {"passwordSecret": {"name": "mine"}}}},
        {"keepVolumes": False},
        {"auth": {"enabled": False}},  # use mlflow.auth.enabled
        {"auth": {"package": {"auth.py": "def authenticate(): ..."}}},
    ],
    ids=lambda o: ".".join(str(k) for k in _first_path(o)),
)
def test_what_pods_and_traefik_depend_on_cannot_be_overridden(overrides):
    message = refusal(overrides)
    path = _first_path(overrides)
    # Named as set, or by the protected value that contains it.
    assert any(f"mlflow.overrides.{'.'.join(path[:n])} cannot be overridden" in message
               for n in range(1, len(path) + 1)), message  # fmt: skip


def _first_path(value) -> list[str]:
    path = []
    while isinstance(value, dict) and value:
        key = next(iter(value))
        path.append(key)
        value = value[key]
    return path


def rendered(tmp_path, overrides: dict) -> list[dict]:
    config = nb.validate(nb.config_dict("local", {"overrides": overrides}))
    return render_release(nb.stage_for(config, tmp_path), nb.STAGE_OUTPUTS)


def test_an_admins_middleware_is_added_after_the_login(tmp_path):
    manifests = rendered(tmp_path, {"ingressRoute": {"extraMiddlewares": [{"name": "rate-limit"}]}})
    (route,) = find(manifests, "IngressRoute")
    names = [m["name"] for m in route["spec"]["routes"][0]["middlewares"]]
    forward_auth = nb.STAGE_OUTPUTS["stages/07-kubernetes-services"]["forward-auth-middleware"]
    assert names.index(forward_auth["value"]["name"]) < names.index("rate-limit")


def test_an_admins_env_does_not_replace_the_platforms(tmp_path):
    """Helm replaces lists: the cloud env Terraform sets lives in its own list."""
    admin_env = [{"name": "MLFLOW_LOGGING_LEVEL", "value": "DEBUG"}]
    config = nb.validate(nb.config_dict("aws", {"overrides": {"server": {"extraEnv": admin_env}}}))
    stage = nb.stage_for(config, tmp_path)
    aws_env = {"AWS_REGION": "us-west-2"}
    manifests = render_release(stage, nb.STAGE_OUTPUTS, {
        "artifacts_destination": "s3://b/artifacts", "service_account_annotations": {},
        "pod_labels": {}, "server_env": aws_env})  # fmt: skip
    (deployment,) = find(manifests, "Deployment", "mlflow")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in server["env"]}
    assert env["AWS_REGION"] == "us-west-2" and env["MLFLOW_LOGGING_LEVEL"] == "DEBUG"


def test_allowed_overrides_render_and_keep_the_names_pods_use(tmp_path):
    manifests = rendered(tmp_path, {"podAnnotations": {"team": "ml"}, "networkPolicy": {
        "enabled": True}})  # fmt: skip
    (service,) = find(manifests, "Service", "mlflow")
    (port,) = service["spec"]["ports"]
    assert internal_tracking_uri("dev", "/mlflow") == (
        f"http://{service['metadata']['name']}.dev.svc:{port['port']}/mlflow"
    )
    (deployment,) = find(manifests, "Deployment", "mlflow")
    assert deployment["spec"]["template"]["metadata"]["annotations"]["team"] == "ml"
