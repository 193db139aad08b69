"""The backup the server pod takes before its init container upgrades the schema: when
it fails, the upgrade does not start. (That the backup is taken, and only when the
schema changes: tests/e2e/test_migrations.py, on the public plugin's database.)

The database is the public plugin's (created by MLflow 3.3.2, `.venv-mlflow-3.3.2`);
the server pod's init containers run as rendered, in the kubelet's order
(support/pods.py), stopping at the first failure as the kubelet does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import nebari as nb
from support.deployment import render, server_deployment
from support.mlflow_server import free_port
from support.pods import LocalPod, pod_spec
from test_migrations import CREATE_OLD_SCHEMA, OLD_PYTHON, old_mlflow, revision, schema_head

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not OLD_PYTHON.exists(), reason=f"{OLD_PYTHON} missing (make install)"),
]


def init_pod(release, workdir: Path, postgres, artifacts: Path, **secrets) -> LocalPod:
    """The server pod without its server: its init containers only."""
    spec = {**pod_spec(server_deployment(release.manifests)), "containers": []}
    return LocalPod(spec, workdir, {**release.secret_values, **secrets},
                    release.addresses(postgres), env={"AWS_MAX_ATTEMPTS": "1"},
                    volumes={"artifacts": artifacts}, manifests=release.manifests)  # fmt: skip


def test_a_failed_pre_upgrade_backup_stops_the_upgrade(tmp_path):
    # An S3-compatible store nobody answers at: the upload fails.
    store = {"type": "s3", "s3": {"bucket": "mlflow-store", "credentials_secret": "store",
                                  "endpoint_url": f"http://127.0.0.1:{free_port()}"}}  # fmt: skip
    config = nb.validate(nb.config_dict("local", {"workers": 1, "artifacts": store}))
    release = render(config, tmp_path, is_upgrade=True)
    old_head = schema_head(OLD_PYTHON)
    with release.postgres(tmp_path) as postgres:
        old_mlflow(CREATE_OLD_SCHEMA, postgres.uri)
        credentials = {"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}
        pod = init_pod(release, tmp_path / "pod", postgres, tmp_path, store=credentials)
        finished = pod.run()
        assert [f.name for f in finished] == ["pre-upgrade-check", "pre-upgrade-dump",
                                              "pre-upgrade-backup"]  # fmt: skip
        failed = finished[-1]
        assert failed.returncode != 0
        last = failed.output.strip().splitlines()[-1]
        assert last.startswith("mlflow backup upload failed: could not write s3://mlflow-store/")
        assert "the schema upgrade waits for this backup" in last
        assert revision(postgres) == [old_head]  # migrate-database never ran
