"""`nebari mlflow backup|backups|restore` where nothing runs: registration, refusals
before anything is touched, and an unreachable cluster (tests/e2e/test_backups.py runs
the commands' Jobs for real)."""

from __future__ import annotations

import yaml
from _nebari.cli import create_cli
from support import nebari as nb
from support.k8s_api import write_kubeconfig
from support.k8s_cluster import FakeCluster, serving
from support.mlflow_server import free_port
from typer.testing import CliRunner


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(create_cli(), ["mlflow", *args], env={"COLUMNS": "300"},
                                catch_exceptions=False)  # fmt: skip
    return result.exit_code, " ".join(result.output.split())


def config_file(tmp_path, **mlflow) -> str:
    path = tmp_path / "nebari-config.yaml"
    path.write_text(yaml.safe_dump(nb.config_dict("local", mlflow)))
    return str(path)


def nowhere(tmp_path) -> str:
    """A kubeconfig whose API server is a closed loopback port."""
    url = f"http://127.0.0.1:{free_port()}"
    return str(write_kubeconfig(tmp_path / "kubeconfig", {"c": url}, current="c"))


def test_the_commands_are_registered():
    code, output = run("--help")
    assert code == 0
    for command in ("backup", "backups", "restore"):
        assert command in output


def test_an_unreachable_cluster_is_one_line(tmp_path):
    for command in (["backup"], ["backups"], ["restore", "--yes"]):
        code, output = run(*command, "-c", config_file(tmp_path), "--kubeconfig", nowhere(tmp_path))
        assert code == 1, output
        assert output.startswith("error: no cluster reachable"), output
        assert "Traceback" not in output


def test_an_external_database_is_not_backed_up_by_the_plugin(tmp_path):
    external = {"type": "external", "external_secret": {"name": "db"}}
    code, output = run("backup", "-c", config_file(tmp_path, database=external),
                       "--kubeconfig", nowhere(tmp_path))  # fmt: skip
    assert code == 1
    assert "mlflow.database.type is external" in output and "provider" in output


def backups_row(tmp_path, **mlflow) -> str:
    code, output = run("render", "-c", config_file(tmp_path, **mlflow), "-o", str(tmp_path / "o"))
    assert code == 0, output
    return output.split(" backups ", 1)[1].split(" kubernetes objects ", 1)[0]


def test_render_shows_schedule_retention_and_destination(tmp_path):
    row = backups_row(tmp_path, backup={"schedule": "15 1 * * *", "keep": 4})
    assert "15 1 * * * (UTC)" in row and "newest 4" in row
    assert "_backups of the artifact volume" in row and "deletes it with the namespace" in row
    external = {"type": "external", "external_secret": {"name": "db"}}
    assert "provider" in backups_row(tmp_path, database=external)


def test_a_cluster_without_the_backup_cronjob_is_named(tmp_path, render_chart):
    """A cluster answering, but MLflow deployed without this plugin's backup objects."""
    values = {"database": {"internal": {"passwordSecret": {"name": "mlflow-postgres"}}}}
    (server,) = [m for m in render_chart(values) if m["metadata"]["name"] == "mlflow"
                 and m["kind"] == "Deployment"]  # fmt: skip
    cluster = FakeCluster("dev", {}, server, kubelet=None)
    with serving(cluster) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"c": url}, current="c")
        code, output = run("backup", "-c", config_file(tmp_path), "--kubeconfig", str(kubeconfig))
    assert code == 1
    assert "no CronJob mlflow-backup in namespace dev" in output, output
    assert not cluster.jobs


def test_a_restore_into_an_external_database_needs_the_admins_own_undo(tmp_path):
    """The chart does not back up an external database, so no pre-restore backup can be
    written: the restore stops before reading the cluster until the admin says they took
    a snapshot; then it goes on (here to the unreachable cluster)."""
    external = {"type": "external", "external_secret": {"name": "db"}}
    config = config_file(tmp_path, database=external)
    code, output = run("restore", "--yes", "-c", config, "--kubeconfig", nowhere(tmp_path))
    assert code == 1
    assert "no pre-restore backup would be written" in output, output
    assert "--without-pre-restore-backup" in output and "nothing was changed" in output
    code, output = run("restore", "--yes", "--without-pre-restore-backup", "-c", config,
                       "--kubeconfig", nowhere(tmp_path))  # fmt: skip
    assert code == 1 and output.startswith("error: no cluster reachable"), output
    # The flag changes nothing for the chart's own database: it is always backed up first.
    code, output = run("restore", "--yes", "--without-pre-restore-backup", "-c",
                       config_file(tmp_path), "--kubeconfig", nowhere(tmp_path))  # fmt: skip
    assert code == 1 and output.startswith("error: no cluster reachable"), output
