"""nginx in front of MLflow, configured from the chart's rendered Traefik objects.

Translates what Traefik would do with the IngressRoute and its Middlewares:
Host + PathPrefix routing, the forward-auth check (auth_request to a stand-in),
the redirectRegex middleware (the bare prefix gets a trailing slash), the
API route (a request whose `Authorization` matches its HeadersRegexp skips the
forward-auth middleware) and the compress middleware (gzip, see `gzip_config`).
With `hub_port`, Nebari's JupyterHub route (/hub/) on the Nebari domain too, which
may be another host than MLflow's (`mlflow.host`).
Optionally also listens with TLS on 127.0.0.1:443, so a browser's origin is
exactly `https://<host>`, as on a real Nebari (MLflow checks it on POSTs).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from support.mlflow_server import free_port


def worker_user() -> str:
    """Workers as the test's own user. Started as root (to listen on 443), nginx would
    run them as `nobody`, who cannot write the temp files it spills a response to when
    the client reads slower than the server sends (then it cuts the response)."""
    if os.geteuid() != 0:
        return ""  # workers run as the master's user already
    return f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};"


@dataclass
class Tls:
    """A TLS listener: certificate and key files (PEM), and the port (443 as Traefik's)."""

    cert: Path
    key: Path
    port: int = 443


@dataclass
class Route:
    host: str
    path_prefix: str
    redirect_regex: str | None
    redirect_replacement: str | None
    forward_auth: bool
    # The API route's HeadersRegexp on Authorization (Go regexp syntax, which PCRE
    # reads the same for what the chart renders); None: no API route.
    api_header_regex: str | None = None
    # A stripPrefix middleware's prefix (the takeover's route to the old server).
    strip_prefix: str | None = None
    # The Service the route sends to (the test maps it to a local port).
    service: str = ""
    # The compress Middleware's spec ({excludedContentTypes, minResponseBodyBytes}), or None.
    compress: dict | None = None


def route_from_manifests(manifests: list[dict], forward_auth_name: str) -> Route:
    (route_obj,) = [m for m in manifests if m["kind"] == "IngressRoute"]
    rule, *others = route_obj["spec"]["routes"]
    api = [re.search(r"HeadersRegexp\(`Authorization`, `([^`]+)`\)", r["match"]) for r in others]
    host = re.search(r"Host\(`([^`]+)`\)", rule["match"]).group(1)
    prefix = re.search(r"PathPrefix\(`([^`]+)`\)", rule["match"]).group(1)
    names = [mw["name"] for mw in rule.get("middlewares", [])]
    middlewares = {m["metadata"]["name"]: m["spec"] for m in manifests if m["kind"] == "Middleware"}
    redirect = next(
        (
            middlewares[n]["redirectRegex"]
            for n in names
            if "redirectRegex" in middlewares.get(n, {})
        ),
        None,
    )
    strips = [middlewares[n]["stripPrefix"]["prefixes"] for n in names
              if "stripPrefix" in middlewares.get(n, {})]  # fmt: skip
    if strips and (len(strips) > 1 or strips[0] != [prefix]):
        raise NotImplementedError(f"stripPrefix {strips} on route prefix {prefix}")
    compress = next(
        (middlewares[n]["compress"] for n in names if "compress" in middlewares.get(n, {})), None
    )
    return Route(
        host=host,
        path_prefix=prefix,
        redirect_regex=redirect["regex"] if redirect else None,
        redirect_replacement=redirect["replacement"] if redirect else None,
        forward_auth=forward_auth_name in names,
        api_header_regex=api[0].group(1) if api and api[0] else None,
        strip_prefix=strips[0][0] if strips else None,
        service=rule["services"][0]["name"],
        compress=compress,
    )


# What MLflow serves that gzip shrinks: its UI (HTML, scripts, styles, fonts, SVG) and
# API (JSON, text). nginx lists the types to compress where Traefik lists the ones not
# to: these, less the Middleware's excludedContentTypes.
COMPRESSIBLE = (
    "text/html", "text/css", "text/plain", "text/javascript", "application/javascript",
    "application/json", "application/xml", "text/xml", "image/svg+xml", "text/markdown",
    "application/x-yaml", "text/yaml", "font/ttf", "application/octet-stream",
    "application/vnd.ms-fontobject", "image/x-icon",
)  # fmt: skip


def gzip_config(compress: dict | None) -> str:
    """nginx's gzip as Traefik 2.9's compress Middleware does it: gzip at Go's default
    level, when the client accepts it, for responses of at least minResponseBodyBytes
    whose type is not excluded."""
    if compress is None:
        return ""
    excluded = set(compress.get("excludedContentTypes") or [])
    types = " ".join(t for t in COMPRESSIBLE if t not in excluded and t != "text/html")
    return (
        "gzip on;\n            gzip_comp_level 6;\n            gzip_proxied any;\n"
        f"            gzip_min_length {compress.get('minResponseBodyBytes', 1024)};\n"
        f"            gzip_types {types};"  # text/html is always on in nginx
    )


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


class Nginx:
    def __init__(
        self, workdir: Path, route: Route, upstream_port: int, auth_port: int,
        upstream_ports: list[int] | None = None, tls: Tls | None = None,
        hub_port: int | None = None, domain: str | None = None,
    ):  # fmt: skip
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("nginx not installed")
        self.binary = binary
        self.workdir = Path(workdir)
        self.route = route
        self.upstream_port = upstream_port
        # Several server pods: the endpoints Traefik balances over (round robin).
        self.upstream_ports = list(upstream_ports or [upstream_port])
        self.auth_port = auth_port
        self.port = free_port()
        self.tls = tls
        # Nebari's /hub route (JupyterHub) on `domain` (default: the route's host).
        self.hub_port = hub_port
        self.domain = domain or route.host
        self.proc: subprocess.Popen | None = None

    def _hub_locations(self) -> str:
        if not self.hub_port:
            return ""
        return f"""
        location /hub/ {{
            proxy_pass http://127.0.0.1:{self.hub_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto https;
        }}"""

    def config(self) -> str:
        r = self.route
        redirect = ""
        if r.redirect_regex:
            # Traefik matches the regex against the full URL; nginx sees the path.
            path_regex = re.sub(r"^\^\(https\?://\[\^/\]\+", "^(", r.redirect_regex)
            target = r.redirect_replacement.replace("${1}", "$1")
            redirect = f"""
        location ~ {path_regex} {{
            return 301 {target};
        }}"""
        auth = ""
        if r.forward_auth:
            # authResponseHeaders [X-Forwarded-User], as Nebari's Middleware: Traefik
            # replaces a client's value with forward-auth's.
            auth = (
                "auth_request /_forward_auth;\n            error_page 401 = @login;\n"
                "            auth_request_set $fa_user $upstream_http_x_forwarded_user;\n"
                "            proxy_set_header X-Forwarded-User $fa_user;"
            )
        api_map = ""
        skip_auth = ""
        if r.api_header_regex:
            # Traefik's API route has no forward-auth middleware: its requests pass.
            api_map = (
                f'map $http_authorization $api_client {{ default 0; "~{r.api_header_regex}" 1; }}'
            )
            skip_auth = "if ($api_client) { return 200; }"
        hub_here = self._hub_locations() if self.domain == r.host else ""
        listen = f"listen 127.0.0.1:{self.port};"
        if self.tls:
            listen += (
                f"\n        listen 127.0.0.1:{self.tls.port} ssl;"
                f"\n        ssl_certificate {self.tls.cert};"
                f"\n        ssl_certificate_key {self.tls.key};"
            )
        return f"""
daemon off;
{worker_user()}
pid {self.workdir}/nginx.pid;
error_log {self.workdir}/error.log warn;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '"$request" $status upstream=$upstream_addr';
    access_log {self.workdir}/access.log upstreams;
    client_body_temp_path {self.workdir}/body;
    proxy_temp_path {self.workdir}/proxy;
    fastcgi_temp_path {self.workdir}/fastcgi;
    uwsgi_temp_path {self.workdir}/uwsgi;
    scgi_temp_path {self.workdir}/scgi;
    client_max_body_size 0;
    # Traefik 2 without a retry middleware: no retry on another endpoint and no
    # passive marking of a failing one (Kubernetes removes it from the Endpoints).
    upstream mlflow {{
        {"".join(f"server 127.0.0.1:{p} max_fails=0; " for p in self.upstream_ports)}
    }}
    {api_map}
    server {{
        {listen}
        server_name {r.host};
        location = /_forward_auth {{
            internal;
            {skip_auth}
            proxy_pass http://127.0.0.1:{self.auth_port}/;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            # What Traefik's forwardAuth sends along.
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Proto https;
        }}{redirect}
        location {r.path_prefix} {{
            {auth}
            proxy_pass http://mlflow{"/" if r.strip_prefix else ""};
            proxy_next_upstream off;
            # Browsers reach Traefik on 443: the Host header carries no port.
            proxy_set_header Host {r.host};
            proxy_set_header X-Forwarded-Proto https;
            proxy_http_version 1.1;
            # Traefik streams bodies both ways (no buffering middleware in Nebari's),
            # copying 32 KiB at a time (Go's reverse proxy), not nginx's default page.
            proxy_request_buffering off;
            proxy_buffering off;
            client_body_buffer_size 32k;
            proxy_buffer_size 32k;
            proxy_buffers 8 32k;
            proxy_busy_buffers_size 64k;
            {gzip_config(r.compress)}
        }}
        location @login {{
            return 302 /_oauth/login?rd=$request_uri;
        }}
        location /_oauth/ {{
            proxy_pass http://127.0.0.1:{self.auth_port};
            proxy_set_header X-Forwarded-Host $host;
        }}
        location / {{
            return 404;
        }}{hub_here}
    }}{self._domain_server(listen)}
}}
"""

    def _domain_server(self, listen: str) -> str:
        """The Nebari domain, when MLflow has a host of its own: the hub and the login."""
        if self.domain == self.route.host:
            return ""
        return f"""
    server {{
        {listen}
        server_name {self.domain};
        location /_oauth/ {{
            proxy_pass http://127.0.0.1:{self.auth_port};
            proxy_set_header X-Forwarded-Host $host;
        }}
        location / {{
            return 404;
        }}{self._hub_locations()}
    }}"""

    def start(self) -> Nginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.workdir), "-c", str(conf)],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "stderr.log").open("wb"),
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_probe", timeout=1)
            except urllib.error.HTTPError:
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.workdir / "stderr.log").read_text()) from None
                time.sleep(0.1)
        raise TimeoutError("nginx did not start")

    def set_upstreams(self, ports: list[int]) -> None:
        """Change the endpoints, as Traefik follows the Service's Endpoints (reload)."""
        self.upstream_ports = list(ports)
        (self.workdir / "nginx.conf").write_text(self.config())
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # new workers take over; old ones finish their requests

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
