"""Which artifact transfers user pods make straight to the store
(`mlflow.artifacts.direct_transfers`), as the plugin injects them into every pod's
environment, and what `nebari validate` refuses. The transfers themselves run against
the emulators in tests/e2e/test_direct_transfers.py.
"""

from __future__ import annotations

import pydantic
import pytest
from support import nebari as nb

UPLOAD = "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"
DOWNLOAD = "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"
MIB = 1024**2
S3_STORE = {"type": "s3", "s3": {"bucket": "models", "credentials_secret": "minio-creds",
                                 "endpoint_url": "http://minio.storage:9000"}}  # fmt: skip


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    nb.patch_cloud_lookups(monkeypatch)


def pod_env(provider: str, **artifacts) -> dict[str, str]:
    mlflow = {"artifacts": artifacts} if artifacts else {}
    config = nb.validate(nb.config_dict(provider, mlflow))
    return config.jupyterhub.overrides["singleuser"]["extraEnv"]


@pytest.mark.parametrize(
    ("provider", "upload", "download"),
    [("aws", "true", "true"), ("azure", "false", "false"), ("gcp", "false", "false"),
     ("local", "false", "false"), ("existing", "false", "false")],
)  # fmt: skip
def test_pods_are_told_either_way_never_left_to_mlflows_guess(provider, upload, download):
    """Unset, MLflow 3.17's client asks the server's /server-info, which says yes for
    every cloud store, including the two where the upload then fails."""
    env = pod_env(provider)
    assert (env[UPLOAD], env[DOWNLOAD]) == (upload, download)
    if upload == "true":
        # Below MLflow's 500 MiB default; parts of 10 MiB stay above S3's 5 MiB minimum.
        assert 10 * MIB <= int(env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"]) < 500 * MIB
        assert int(env["MLFLOW_MULTIPART_DOWNLOAD_MINIMUM_FILE_SIZE"]) < 500 * MIB
    else:
        assert "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE" not in env


def test_an_admin_turns_them_off():
    env = pod_env("aws", direct_transfers=False)
    assert (env[UPLOAD], env[DOWNLOAD]) == ("false", "false")


@pytest.mark.parametrize(
    ("provider", "why"),
    [("gcp", "private key"), ("azure", "block ids of different lengths"),
     ("local", "volume"), ("existing", "volume")],
)  # fmt: skip
def test_asking_for_them_where_they_cannot_work_is_refused(provider, why):
    with pytest.raises(pydantic.ValidationError) as refused:
        pod_env(provider, direct_transfers=True)
    message = str(refused.value)
    assert "mlflow.artifacts.direct_transfers: true" in message
    assert why in message and "Allowed here: false or null" in message, message


def test_an_admins_s3_compatible_store_is_opt_in():
    """Pods may not reach the admin's endpoint_url: off unless asked for."""
    assert pod_env("local", **S3_STORE)[UPLOAD] == "false"
    env = pod_env("existing", **S3_STORE, direct_transfers=True)
    assert (env[UPLOAD], env[DOWNLOAD]) == ("true", "true")


def test_an_admins_own_choice_in_the_pods_stays_theirs():
    data = nb.config_dict("aws", jupyterhub={"overrides": {"singleuser": {"extraEnv": {
        UPLOAD: "false"}}}})  # fmt: skip
    env = nb.validate(data).jupyterhub.overrides["singleuser"]["extraEnv"]
    assert env[UPLOAD] == "false" and env[DOWNLOAD] == "true"
