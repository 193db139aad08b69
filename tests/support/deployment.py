"""The rendered deployment, run for real on loopback (tests and benchmarks).

The chart is rendered exactly as `nebari deploy` would apply it (stage input
vars -> Terraform's values -> Helm), then each container runs as a local
process: PostgreSQL from Debian's packages, the server pod's init containers in
order (the schema migration), the MLflow server from the MLflow virtualenv (same
MLflow version as the image), nginx configured from the IngressRoute with a
forward-auth stand-in.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nebari_mlflow_plugin.config import naming
from support import cluster_dns
from support import nebari as nb
from support.forward_auth import ForwardAuth
from support.jupyterhub import JupyterHub, hub_config, missing_hub, traitlets_config
from support.mlflow_server import free_port
from support.nginx import Nginx, nginx_binary, route_from_manifests
from support.podrun import LocalContainer, local_container, process_env
from support.postgres import Postgres, postgres_bin_dir
from support.release import find, render_release

REPO = Path(__file__).resolve().parents[2]
MLFLOW_VENV = Path(os.environ.get("MLFLOW_VENV", REPO / ".venv-mlflow"))
MLFLOW_BIN = MLFLOW_VENV / "bin"
FORWARD_AUTH = "traefik-forward-auth"
# Users of the local JupyterHub (auth on): groups as Nebari's Keycloak paths; ada is a
# Nebari admin (Keycloak /admin: JupyterHub admin).
HUB_GROUPS = {"/developer": ["alice", "bob"], "/analyst": ["dana"]}
HUB_ADMINS = {"ada"}
HUB_USERS = ("alice", "bob", "dana", "ada")
# In-cluster Services of Nebari the server calls (auth on): name -> port.
NEBARI_SERVICES = {"hub": 8081, "forwardauth-service": 4181}


def delivered_pythonpath(directory: Path) -> str:
    """PYTHONPATH of a process in the MLflow virtualenv that has the notebook package as
    user pods get it: the delivered dist-info (its `mlflow.*` entry points) and this
    checkout's code (the virtualenv's editable install may predate both)."""
    from nebari_mlflow_plugin.render import notebook_delivery

    dist_info = directory / "nebari_mlflow_notebook.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    for name, content in notebook_delivery.metadata_files().items():
        (dist_info / name).write_text(content)
    return f"{directory}:{REPO / 'src'}"


def missing_tools() -> str | None:
    """Why the deployment cannot run here, or None."""
    if not (MLFLOW_BIN / "mlflow").exists():
        return f"MLflow virtualenv missing at {MLFLOW_VENV} (run `make install`)"
    if postgres_bin_dir() is None:
        return "PostgreSQL server not installed (scripts/system-deps.sh installs it)"
    if nginx_binary() is None:
        return "nginx not installed (scripts/system-deps.sh installs it)"
    return missing_hub()  # auth (the default) needs Nebari's JupyterHub


def containers_of(workload: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    spec = workload["spec"]
    if workload.get("kind") == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    spec = spec["template"]["spec"]
    return spec.get("initContainers") or [], spec["containers"]


def env_value(container: dict, name: str) -> str | None:
    for item in container.get("env") or []:
        if item["name"] == name:
            return item.get("value")
    return None


def service_addresses(manifests: list[dict], namespace: str, local: dict[str, int]) -> dict:
    """DNS forms of in-cluster Services we run locally -> 127.0.0.1:<local port>."""
    addresses = {}
    for service in find(manifests, "Service"):
        name = service["metadata"]["name"]
        if name not in local:
            continue
        for port in service["spec"]["ports"]:
            for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                         f"{name}.{namespace}.svc.cluster.local"):  # fmt: skip
                addresses[f"{host}:{port['port']}"] = f"127.0.0.1:{local[name]}"
    return addresses


def nebari_addresses(namespace: str, local: dict[str, int]) -> dict[str, str]:
    """DNS forms of Nebari's Services (NEBARI_SERVICES) we run locally -> 127.0.0.1:<port>."""
    addresses = {}
    for name, port in NEBARI_SERVICES.items():
        if name in local:
            for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                         f"{name}.{namespace}.svc.cluster.local"):  # fmt: skip
                addresses[f"{host}:{port}"] = f"127.0.0.1:{local[name]}"
    return addresses


def project_config_maps(manifests: list[dict], pod: dict, volumes: Path) -> None:
    """Write a pod's ConfigMap volumes as the kubelet projects them (keys, or `items`
    paths), into the local directories its containers mount (`volumes/<name>`)."""
    for volume in pod.get("volumes") or []:
        ref = volume.get("configMap")
        if not ref:
            continue
        (config_map,) = find(manifests, "ConfigMap", ref["name"])
        data = config_map.get("data") or {}
        target = volumes / volume["name"]
        for item in ref.get("items") or [{"key": key, "path": key} for key in data]:
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]])


def relocate(container: LocalContainer, addresses: dict[str, str]) -> LocalContainer:
    def fix(text: str) -> str:
        for address in sorted(addresses, key=len, reverse=True):
            text = re.sub(rf"(?<=[@/]){re.escape(address)}", addresses[address], text)
        return text

    container.argv = [fix(a) for a in container.argv]
    container.env = {k: fix(v) for k, v in container.env.items()}
    return container


@dataclass
class Deployment:
    manifests: list[dict]
    config: Any
    server: LocalContainer
    server_port: int
    process: subprocess.Popen
    postgres: Postgres
    nginx: Nginx
    workdir: Path
    log: Path
    secret_values: dict[str, dict[str, str]]
    forward_auth: ForwardAuth
    hub: JupyterHub | None = None
    # JupyterHub API tokens of HUB_USERS (auth on), as their pods get them.
    tokens: dict[str, str] | None = None

    @property
    def auth_enabled(self) -> bool:
        return self.hub is not None

    @property
    def admin_credentials(self) -> tuple[str, str]:
        """MLflow's built-in admin (from the auth Secret Terraform generates)."""
        container = server_container(server_deployment(self.manifests))
        return env_value(container, "MLFLOW_AUTH_ADMIN_USERNAME"), self.server.env[
            "MLFLOW_AUTH_ADMIN_PASSWORD"
        ]

    def auth_header(self, user: str | None = None) -> dict[str, str]:
        """Authorization for `user`'s JupyterHub token, or (None) the built-in admin's."""
        if not self.auth_enabled:
            return {}
        if user is not None:
            return {"Authorization": f"Bearer {self.tokens[user]}"}
        basic = base64.b64encode(":".join(self.admin_credentials).encode()).decode()
        return {"Authorization": f"Basic {basic}"}

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def service_url(self) -> str:
        """The in-cluster tracking URI, as user pods get it."""
        return f"http://mlflow.{self.namespace}.svc:5000{self.config.mlflow.route_path}"

    @property
    def public_base(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"

    def client_env(self) -> dict[str, str]:
        """Environment of a Python process in the cluster: the Service's DNS names
        and port lead to the local server (see cluster_dns.py)."""
        names = (f"mlflow.{self.namespace}.svc", f"mlflow.{self.namespace}.svc.cluster.local",
                 f"mlflow.{self.namespace}", "mlflow")  # fmt: skip
        env = cluster_dns.client_env(self.workdir, {f"{n}:5000": self.server_port for n in names})
        if self.auth_enabled:
            # What KubeSpawner gives alice's pod (and Argo copies into her workflows).
            env.update(JUPYTERHUB_API_TOKEN=self.tokens["alice"], JUPYTERHUB_USER="alice")
        return env

    def token_env(self, user: str = "alice") -> dict[str, str]:
        """An explicit credential (MLFLOW_TRACKING_TOKEN = the user's JupyterHub token) for
        processes without the delivered notebook package; empty with auth off."""
        return {"MLFLOW_TRACKING_TOKEN": self.tokens[user]} if self.auth_enabled else {}

    def _call(self, path: str, body: bytes | None = None, user: str | None = None) -> bytes:
        """GET (POST with `body`) `<prefix>/<path>` with the Service's Host header,
        as pods reach MLflow; as `user` (their JupyterHub token) or the built-in admin."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.server_port}{self.config.mlflow.route_path}/{path}",
            data=body,
            headers={"Host": f"mlflow.{self.namespace}.svc:5000",
                     "Content-Type": "application/json", **self.auth_header(user)},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.read()

    def api(self, path: str, body: dict | None = None, user: str | None = None) -> dict:
        """MLflow's REST API: `api/2.0/mlflow/<path>` (as `user`, or the built-in admin)."""
        data = json.dumps(body).encode() if body is not None else None
        return json.loads(self._call(f"api/2.0/mlflow/{path}", data, user))

    def artifact(self, run_info: dict, path: str) -> str:
        """A run's artifact through the server's artifact proxy (mlflow-artifacts:/)."""
        root = run_info["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
        return self._call(f"api/2.0/mlflow-artifacts/artifacts/{root}/{path}").decode()

    def restart_server(self) -> None:
        self.stop_server()
        self.start_server()

    def stop_server(self, sig: int = 15) -> None:
        """Signal every process of the server (as a container's processes all die
        with it: uvicorn's workers would otherwise keep the port)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            # As the kubelet does after terminationGracePeriodSeconds (30): uvicorn waits
            # for open keep-alive connections, a background sender may hold one.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def start_server(self) -> None:
        self.process = launch(self.server, self.workdir, self.log)
        wait_http(self.probe_url(), timeout=120, process=self.process, log=self.log)

    def probe_status(self, probe: str = "livenessProbe") -> int:
        return wait_http(self.probe_url(probe), timeout=60, process=self.process, log=self.log)

    def probe_url(self, probe: str = "startupProbe") -> str:
        container = server_container(server_deployment(self.manifests))
        path = container[probe]["httpGet"]["path"]
        return f"http://127.0.0.1:{self.server_port}{path}"


def server_deployment(manifests: list[dict]) -> dict:
    """The MLflow server's Deployment (the monitoring add-on renders an exporter's too)."""
    (deployment,) = find(manifests, "Deployment", naming.RELEASE_NAME)
    return deployment


def server_container(deployment: dict) -> dict:
    _, containers = containers_of(deployment)
    return next(
        c for c in containers if "server" in (c.get("command") or []) + (c.get("args") or [])
    )


def launch(container: LocalContainer, workdir: Path, log: Path) -> subprocess.Popen:
    env = process_env(container)
    env["PATH"] = f"{MLFLOW_BIN}:{os.environ['PATH']}"
    return subprocess.Popen(
        container.argv, env=env, cwd=workdir, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def run_container(
    container: LocalContainer, workdir: Path, timeout: float
) -> subprocess.CompletedProcess:
    """Run a container's process to its end (as the kubelet runs an init container)."""
    env = process_env(container)
    env["PATH"] = f"{MLFLOW_BIN}:{os.environ['PATH']}"
    return subprocess.run(
        container.argv, env=env, cwd=workdir, capture_output=True, text=True, timeout=timeout
    )


def run_to_completion(container: LocalContainer, workdir: Path, timeout: float) -> str:
    result = run_container(container, workdir, timeout)
    assert result.returncode == 0, f"{container.shell()} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def wait_http(url: str, *, timeout: float, process=None, log: Path | None = None, headers=None):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()[-4000:] if log else ''}")
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"{url} not answering: {last}")


@dataclass
class Release:
    """The rendered release and the Secret values Terraform would create for it."""

    manifests: list[dict]
    secret_values: dict[str, dict[str, str]]
    namespace: str

    def postgres(self, workdir: Path) -> Postgres:
        """The in-cluster PostgreSQL as the StatefulSet configures it (not started)."""
        (statefulset,) = find(self.manifests, "StatefulSet")
        pg_container = containers_of(statefulset)[1][0]
        (password,) = [e for e in pg_container["env"] if e["name"] == "POSTGRES_PASSWORD"]
        ref = password["valueFrom"]["secretKeyRef"]
        return Postgres(
            workdir / "postgres",
            user=env_value(pg_container, "POSTGRES_USER"),
            password=self.secret_values[ref["name"]][ref["key"]],
            database=env_value(pg_container, "POSTGRES_DB"),
        )

    def addresses(self, postgres: Postgres) -> dict[str, str]:
        """The PostgreSQL Service's DNS names -> the local PostgreSQL."""
        service = next(
            s for s in find(self.manifests, "Service") if "5432" in str(s["spec"]["ports"])
        )
        return service_addresses(
            self.manifests, self.namespace, {service["metadata"]["name"]: postgres.port}
        )

    def init_containers(self, workdir: Path, postgres: Postgres) -> list[LocalContainer]:
        """The server pod's init containers, in the kubelet's order, with the rendered
        command and env; they share the pod's volumes with the server (`workdir/server`)."""
        deployment = server_deployment(self.manifests)
        project_config_maps(self.manifests, deployment["spec"]["template"]["spec"],
                            workdir / "server" / "volumes")  # fmt: skip
        return [
            relocate(
                # The pod's volumes are shared by its containers: one directory each.
                local_container(
                    c, workdir=workdir / "server", executables={}, secrets=self.secret_values
                ),
                self.addresses(postgres),
            )
            for c in containers_of(deployment)[0]
        ]

    def migration(self, workdir: Path, postgres: Postgres) -> LocalContainer:
        """The init container that migrates the schema (auth on, another writes its ini)."""
        deployment = server_deployment(self.manifests)
        names = [c["name"] for c in containers_of(deployment)[0]]
        return self.init_containers(workdir, postgres)[names.index("migrate-database")]

    def server(
        self, workdir: Path, postgres: Postgres, port: int, nebari: dict[str, int] | None = None
    ) -> LocalContainer:
        """The server container; `nebari` maps Nebari's Services it calls (hub,
        forward-auth) to the local ports of their stand-ins."""
        deployment = server_deployment(self.manifests)
        project_config_maps(self.manifests, deployment["spec"]["template"]["spec"],
                            workdir / "server" / "volumes")  # fmt: skip
        return relocate(
            local_container(server_container(deployment), workdir=workdir / "server",
                            executables={}, secrets=self.secret_values, port=port),
            {**self.addresses(postgres), **nebari_addresses(self.namespace, nebari or {})},
        )  # fmt: skip


def server_volume(workdir: Path, name: str) -> Path:
    """Where the server container's volume `name` lives locally (see podrun.py)."""
    return workdir / "server" / "volumes" / name


def render(
    config: Any, workdir: Path, *, is_upgrade: bool = False, takeover_from: Any = None,
    provider_locals: dict | None = None,
) -> Release:  # fmt: skip
    """The release `nebari deploy` would apply (an install, or an upgrade); with
    `takeover_from`, what the stage detected as a 2025.10.x deployment to take over;
    `provider_locals`: a cloud provider's Terraform locals (emulators.provider_locals)."""
    stage = nb.stage_for(config, workdir)
    stage.takeover_from = takeover_from
    manifests = render_release(stage, nb.STAGE_OUTPUTS, provider_locals, is_upgrade=is_upgrade)
    # The Secret Terraform creates from random_password.
    (secret_ref,) = {
        item["valueFrom"]["secretKeyRef"]["name"]
        for w in find(manifests, "StatefulSet")
        for c in containers_of(w)[1]
        for item in c.get("env") or []
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    secret_values = {secret_ref: {"password": secrets.token_hex(16)}}
    # Every other Secret Terraform generates (random_password), e.g. the crypto passphrase.
    for workload in manifests:
        if workload.get("kind") not in ("Deployment", "StatefulSet", "Job", "CronJob"):
            continue
        init, main = containers_of(workload)
        for container in init + main:
            for item in container.get("env") or []:
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_values.setdefault(ref["name"], {}).setdefault(
                        ref["key"], secrets.token_hex(24)
                    )
    return Release(manifests, secret_values, config.namespace)


def keycloak_client_roles(config: Any, workdir: Path) -> list[dict]:
    """The Keycloak client roles on `jupyterhub` the stage's Terraform creates (its input
    variable `hub_access_role`), as Nebari's authenticator would read them."""
    role = nb.stage_for(config, workdir).input_vars(nb.STAGE_OUTPUTS)["hub_access_role"]
    return [role] if role else []


def mlflow_access_role(services: list[dict]) -> dict:
    """What every user signing in through the browser holds in these tests (as a Keycloak
    client role of their groups would give them): access to the MLflow hub service,
    which its OAuth sign-in requires."""
    (mlflow,) = [s for s in services if s.get("oauth_redirect_uri")]
    return {"name": "test-mlflow-access", "description": "Sign in to MLflow",
            "scopes": [f"access:services!service={mlflow['name']}"]}  # fmt: skip


def launch_hub(
    release: Release, config: Any, workdir: Path, sso_url: str | None = None
) -> JupyterHub:
    """The JupyterHub the plugin configures, launched (`wait` for it): services, roles and
    hub.config from jupyterhub.overrides, the MLflow service's token as z2jh keeps it in
    its Secret `hub`, and the Keycloak role the stage creates, as Nebari applies it; with
    `sso_url`, browsers signed in to "Keycloak" are logged in to it."""
    container = server_container(server_deployment(release.manifests))
    (ref,) = [e["valueFrom"]["secretKeyRef"] for e in container["env"]
              if e["name"] == "NEBARI_MLFLOW_HUB_TOKEN"]  # fmt: skip
    overrides = config.jupyterhub.overrides
    services, roles = hub_config(overrides, release.secret_values[ref["name"]])
    login_roles = [mlflow_access_role(services)] if sso_url else []
    return JupyterHub(
        workdir, services, roles, admins=HUB_ADMINS, groups=HUB_GROUPS,
        managed_roles=keycloak_client_roles(config, workdir / "stage"),
        traitlets=traitlets_config(overrides), sso_url=sso_url, login_roles=login_roles,
    ).launch()  # fmt: skip


@contextlib.contextmanager
def running_deployment(
    workdir: Path, config: Any, *, release: Release | None = None,
    postgres: Postgres | None = None, server_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:  # fmt: skip
    """Start everything the rendered release describes; stop it all on exit.

    `release` and a started `postgres` (holding a database from before) stand for a
    deployment onto kept data; by default a fresh install on an empty database. With
    auth on (the default), Nebari's JupyterHub and forward-auth run too, and the
    server reaches them at their in-cluster names. `server_env` is added to the
    server's (a store emulator's endpoint and test credentials)."""
    release = release or render(config, workdir)
    manifests = release.manifests
    route = route_from_manifests(manifests, FORWARD_AUTH)
    # Nebari sets forward-auth's COOKIE_DOMAIN to its domain (a host of MLflow's own is
    # a subdomain of it).
    auth = ForwardAuth(cookie_domain=config.domain).__enter__()
    hub = None
    with contextlib.ExitStack() as stack:
        stack.callback(auth.__exit__)
        if config.mlflow.auth.enabled:
            # It boots while the database and the init containers do.
            hub = launch_hub(release, config, workdir / "jupyterhub", sso_url=auth.url)
            stack.callback(hub.stop)
        if postgres is None:
            postgres = release.postgres(workdir)
            postgres.__enter__()
            stack.callback(postgres.__exit__)
        # The server pod's init containers in order, then the server, as the kubelet runs them.
        for init in release.init_containers(workdir, postgres):
            run_to_completion(init, workdir, timeout=300)
        port = free_port()
        if hub:
            hub.wait()
        nebari = {"forwardauth-service": auth.port, **({"hub": hub.port} if hub else {})}
        server = release.server(workdir, postgres, port, nebari)
        server.env.update(server_env or {})
        log = workdir / "server.log"
        process = launch(server, workdir, log)
        nginx = Nginx(workdir / "nginx", route, upstream_port=port, auth_port=auth.port,
                      hub_port=hub.port if hub else None, domain=config.domain)  # fmt: skip
        tokens = {user: hub.token(user)[0] for user in HUB_USERS} if hub else None
        dep = Deployment(manifests, config, server, port, process, postgres, nginx, workdir,
                         log, release.secret_values, auth, hub, tokens)  # fmt: skip
        stack.callback(dep.stop_server)
        wait_http(dep.probe_url(), timeout=180, process=process, log=log)
        nginx.start()
        stack.callback(nginx.stop)
        yield dep
