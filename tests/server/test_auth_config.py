"""server/auth_config.py: the ini MLflow reads and the built-in admin's password, on a
real (SQLite) permission store."""

from __future__ import annotations

import configparser
import stat

from nebari_mlflow_plugin.server import auth_config

ENV = {"AUTH_DEFAULT_PERMISSION": "READ", "MLFLOW_AUTH_ADMIN_USERNAME": "mlflow-admin",
       "MLFLOW_AUTH_ADMIN_PASSWORD": "this-deployments"}  # fmt: skip


def read_ini(path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()  # as mlflow.server.auth.config reads it
    parser.read(path)
    return parser["mlflow"]


def test_the_ini_keeps_a_uri_with_percent_signs_and_only_its_owner_reads_it(tmp_path):
    uri = "postgresql://mlflow:p%40ss%25word@db:5432/mlflow"
    path = tmp_path / "basic_auth.ini"
    auth_config.write_private(str(path), auth_config.ini_text(uri, "NO_PERMISSIONS"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ini = read_ini(path)
    assert ini["database_uri"] == uri
    assert ini["default_permission"] == "NO_PERMISSIONS"
    assert ini["authorization_function"] == "nebari_mlflow_server.auth:authenticate"
    assert "admin_password" not in ini  # the password stays in its Secret


def test_an_admin_from_an_earlier_deployment_gets_this_ones_password(tmp_path, monkeypatch, capsys):
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{tmp_path / 'auth.db'}"
    ini = tmp_path / "basic_auth.ini"
    for name, value in {**ENV, "MLFLOW_BACKEND_STORE_URI": uri,
                        "MLFLOW_AUTH_CONFIG_PATH": str(ini)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    auth_config.main()  # a new database: MLflow creates the admin itself later
    assert "built-in admin" not in capsys.readouterr().out
    store = SqlAlchemyStore()
    store.init_db(uri)
    assert not store.has_user("mlflow-admin")
    store.create_user("mlflow-admin", "the-old-deployments", is_admin=False)
    auth_config.main()
    assert "built-in admin mlflow-admin: password set from its Secret" in capsys.readouterr().out
    assert store.authenticate_user("mlflow-admin", "this-deployments")
    assert not store.authenticate_user("mlflow-admin", "the-old-deployments")
    assert store.get_user("mlflow-admin").is_admin
    assert read_ini(ini)["database_uri"] == uri
