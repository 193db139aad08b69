"""The monitoring add-on against a real Prometheus (Debian's `prometheus` 2.42 and its
`promtool`) scraping the rendered deployment on loopback.

Prometheus scrapes the MLflow server started with the rendered args (the `deployment`
fixture) and the PostgreSQL exporter started from the rendered exporter container
against the test's PostgreSQL, with a scrape config built from the rendered
ServiceMonitors: their path, the port their Service names, and the `job`/`namespace`
labels the Prometheus Operator gives such targets (job = the Service's name). Then every
PromQL expression of the dashboard and of the alert rules is evaluated through
Prometheus's HTTP query API.

The exporter binary is Debian's `prometheus-postgres-exporter` 0.11.1 in place of the
image's 0.20.1: the flags the chart passes and the metric names the dashboard and rules
use (pg_up, pg_stat_database_numbackends, pg_database_size_bytes,
pg_settings_max_connections) are the same in both.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support import nebari as nb
from support.deployment import server_deployment, wait_http
from support.mlflow_server import free_port
from support.podrun import local_container, process_env
from support.release import find, render_release

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
POSTGRES_EXPORTER = shutil.which("prometheus-postgres-exporter")
SCRAPE_INTERVAL_S = 1
# The address a pod has in the cluster: Prometheus dials <pod IP>:<port>, so that is the
# Host header MLflow's host check sees.
POD_IP = "10.42.0.17"
# Grafana's $__rate_interval, for a 1 s scrape interval.
RATE_INTERVAL = "15s"
# Matchers whose series exist only on an unhealthy system (no 5xx happens here).
UNHEALTHY_ONLY_MATCHERS = (r',\s*status=~"5.."',)
# Expressions that are legitimately empty on a healthy system, and why. For these the
# inner series selectors are evaluated instead (each must return series).
EMPTY_WHEN_HEALTHY = {
    "MLflowServerDown": "the server is up",
    "MLflowHighErrorRate": "no request fails with 5xx",
    "MLflowHighLatency": "requests are faster than the threshold",
    "MLflowDatabaseDown": "PostgreSQL answers",
    "MLflowBackupStale": "the last backup succeeded an hour ago",
    "5xx error ratio": "no request fails with 5xx",
}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")


def missing() -> str | None:
    for name, path in (("prometheus", PROMETHEUS), ("promtool", PROMTOOL),
                       ("prometheus-postgres-exporter", POSTGRES_EXPORTER)):  # fmt: skip
        if path is None:
            return f"{name} not installed (scripts/system-deps.sh installs it)"
    return None


def component(manifests: list[dict], kind: str, name: str) -> dict:
    (found,) = [
        m
        for m in find(manifests, kind)
        if m["metadata"]["labels"].get("app.kubernetes.io/component") == name
    ]
    return found


def rule_groups(manifests: list[dict]) -> list[dict]:
    (rule,) = find(manifests, "PrometheusRule")
    return rule["spec"]["groups"]


def dashboard(manifests: list[dict]) -> dict:
    (cm,) = [
        m for m in find(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    (body,) = cm["data"].values()
    return json.loads(body)


# -- loopback helpers -----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def pod_address_proxy(upstream: int, host: str) -> type[http.server.BaseHTTPRequestHandler]:
    """Forwards GETs to the local server with the Host header a scrape of the pod carries
    (Prometheus 2.42 cannot set one; on loopback it would send 127.0.0.1:<random port>)."""

    class Proxy(_Handler):
        def do_GET(self) -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{upstream}{self.path}", headers={"Host": host}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status, body, ctype = response.status, response.read(), response.headers
            except urllib.error.HTTPError as error:
                status, body, ctype = error.code, error.read(), error.headers
            self.send_response(status)
            self.send_header("Content-Type", ctype.get("Content-Type", "text/plain"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Proxy


def static_exposition(files: dict[str, str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Static(_Handler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write((body or "").encode())

    return Static


DAY = 86400


def backup_cronjob(manifests: list[dict]) -> dict:
    return component(manifests, "CronJob", "backup")


def database_claim(manifests: list[dict]) -> str:
    """The claim the PostgreSQL pod mounts (a claim of its own, see pvc.yaml)."""
    (sts,) = find(manifests, "StatefulSet")
    volumes = sts["spec"]["template"]["spec"]["volumes"]
    (claim,) = [
        v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v
    ]
    return claim


def cluster_series(manifests: list[dict], namespace: str) -> dict[str, str]:
    """Kubelet and kube-state-metrics series for the rendered objects, which loopback has
    no kubelet for: names and labels as kube-prometheus-stack 58.4.0 collects them
    (kubelet `/metrics` volume stats and `/metrics/cadvisor` network counters, kube-state-
    metrics restarts), objects named as Kubernetes names them (the database's claim as its
    StatefulSet's pod mounts it, a Deployment's pod `<name>-<rs hash>-<suffix>`).
    Proves the dashboard and rules use those metric names and select these objects'
    labels; not that a kubelet reports them (that is the kubelet's contract)."""
    (sts,) = find(manifests, "StatefulSet")
    db_claim = database_claim(manifests)
    claims = {c["metadata"]["name"]: 0.1 for c in find(manifests, "PersistentVolumeClaim")}
    claims[db_claim] = 0.85  # above the 80 % alert threshold: the alert must fire
    capacity = 20 * 2**30
    kubelet = [
        "# TYPE kubelet_volume_stats_capacity_bytes gauge",
        "# TYPE kubelet_volume_stats_used_bytes gauge",
        "# TYPE kubelet_volume_stats_available_bytes gauge",
    ]
    for claim, used in claims.items():
        labels = f'namespace="{namespace}",persistentvolumeclaim="{claim}"'
        kubelet += [
            f"kubelet_volume_stats_capacity_bytes{{{labels}}} {capacity}",
            f"kubelet_volume_stats_used_bytes{{{labels}}} {int(capacity * used)}",
            f"kubelet_volume_stats_available_bytes{{{labels}}} {int(capacity * (1 - used))}",
        ]
    pods = {f"{d['metadata']['name']}-7d9f8b6c5d-x2x9z": d for d in find(manifests, "Deployment")}
    pods[f"{sts['metadata']['name']}-0"] = sts
    counter = int(time.time())  # grows between scrapes of a long-lived process
    cadvisor = ["# TYPE container_network_receive_bytes_total counter",
                "# TYPE container_network_transmit_bytes_total counter"]  # fmt: skip
    ksm = ["# TYPE kube_pod_container_status_restarts_total counter"]
    for pod, workload in pods.items():
        net = f'container="",interface="eth0",namespace="{namespace}",pod="{pod}"'
        cadvisor += [f"container_network_receive_bytes_total{{{net}}} {counter}",
                     f"container_network_transmit_bytes_total{{{net}}} {counter}"]  # fmt: skip
        for c in workload["spec"]["template"]["spec"]["containers"]:
            ksm.append(
                f'kube_pod_container_status_restarts_total{{namespace="{namespace}",pod="{pod}",'
                f'container="{c["name"]}",uid="0"}} 0'
            )
    # The backup CronJob, created a week ago, run daily, last run (and success) an hour ago.
    now, cronjob = int(time.time()), backup_cronjob(manifests)["metadata"]["name"]
    cron = f'namespace="{namespace}",cronjob="{cronjob}"'
    ksm += [
        f"kube_cronjob_created{{{cron}}} {now - 7 * DAY}",
        f"kube_cronjob_status_last_schedule_time{{{cron}}} {now - 3600}",
        f"kube_cronjob_status_last_successful_time{{{cron}}} {now - 3500}",
        f"kube_cronjob_next_schedule_time{{{cron}}} {now - 3600 + DAY}",
    ]
    return {
        "/kubelet/metrics": "\n".join(kubelet) + "\n",
        "/kubelet/metrics/cadvisor": "\n".join(cadvisor) + "\n",
        "/kube-state-metrics/metrics": "\n".join(ksm) + "\n",
    }


@dataclass
class Prometheus:
    url: str
    namespace: str
    job: str

    def query(self, expr: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            answer = json.load(response)
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def targets(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=30) as response:
            return json.load(response)["data"]["activeTargets"]

    def dashboard_expr(self, expr: str) -> str:
        """Grafana's variables as this deployment's dashboard would resolve them."""
        return (
            expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$namespace", self.namespace)
            .replace("$job", self.job)
        )


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def postgres_exporter(deployment, workdir: Path) -> Iterator[int]:
    """The rendered exporter container, run locally against the test's PostgreSQL."""
    manifests = deployment.manifests
    exporter = component(manifests, "Deployment", "postgres-exporter")
    (container,) = exporter["spec"]["template"]["spec"]["containers"]
    (sts,) = find(manifests, "StatefulSet")
    (pg,) = sts["spec"]["template"]["spec"]["containers"]
    ref = next(e for e in pg["env"] if e["name"] == "POSTGRES_PASSWORD")["valueFrom"][
        "secretKeyRef"
    ]
    secrets = {ref["name"]: {ref["key"]: deployment.postgres.password}}
    local = local_container(
        container, workdir=workdir, secrets=secrets,
        executables={container["command"][0]: POSTGRES_EXPORTER},
    )  # fmt: skip
    (pg_service,) = [
        s for s in find(manifests, "Service") if s["metadata"]["name"] == sts["spec"]["serviceName"]
    ]
    in_cluster = f"{pg_service['metadata']['name']}:{pg_service['spec']['ports'][0]['port']}"
    assert local.env["DATA_SOURCE_URI"].startswith(in_cluster + "/")
    local.env["DATA_SOURCE_URI"] = local.env["DATA_SOURCE_URI"].replace(
        in_cluster, f"127.0.0.1:{deployment.postgres.port}"
    )
    port = free_port()
    argv = [re.sub(r"^--web\.listen-address=.*", f"--web.listen-address=127.0.0.1:{port}", a)
            for a in local.argv]  # fmt: skip
    process = start(argv, process_env(local), workdir / "exporter.log")
    try:
        wait_http(
            f"http://127.0.0.1:{port}/", timeout=30, process=process, log=workdir / "exporter.log"
        )
        yield port
    finally:
        stop(process)


def scrape_jobs(manifests: list[dict], local_ports: dict[str, int], namespace: str) -> list[dict]:
    """One scrape job per rendered ServiceMonitor endpoint, as the Prometheus Operator
    generates it: the Service it selects, the pods behind it, the endpoint's path."""
    jobs = []
    for monitor in find(manifests, "ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in find(manifests, "Service")
                      if selector.items() <= s["metadata"]["labels"].items()]  # fmt: skip
        (workload,) = [d for d in find(manifests, "Deployment")
                       if service["spec"]["selector"].items()
                       <= d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        for i, endpoint in enumerate(monitor["spec"]["endpoints"]):
            (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
            jobs.append({
                "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/{i}",
                "metrics_path": endpoint["path"],
                "static_configs": [{
                    "targets": [f"127.0.0.1:{local_ports[workload['metadata']['name']]}"],
                    "labels": {"job": service["metadata"]["name"], "namespace": namespace,
                               "service": service["metadata"]["name"],
                               "endpoint": endpoint["port"], "port_name": str(port["targetPort"])},
                }],
            })  # fmt: skip
    return jobs


@pytest.fixture(scope="module")
def prometheus(deployment, tmp_path_factory) -> Iterator[Prometheus]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    manifests, namespace = deployment.manifests, deployment.namespace
    workdir = tmp_path_factory.mktemp("monitoring")
    server = server_deployment(manifests)
    (mlflow_container,) = server["spec"]["template"]["spec"]["containers"]
    container_port = mlflow_container["ports"][0]["containerPort"]
    with contextlib.ExitStack() as stack:
        exporter_port = stack.enter_context(postgres_exporter(deployment, workdir))
        proxy_port = stack.enter_context(
            serve(pod_address_proxy(deployment.server_port, f"{POD_IP}:{container_port}"))
        )
        cluster_port = stack.enter_context(
            serve(static_exposition(cluster_series(manifests, namespace)))
        )
        exporter = component(manifests, "Deployment", "postgres-exporter")
        local_ports = {server["metadata"]["name"]: proxy_port,
                       exporter["metadata"]["name"]: exporter_port}  # fmt: skip
        static = [
            ("kubelet", "/kubelet/metrics", {"job": "kubelet", "metrics_path": "/metrics"}),
            ("kubelet-cadvisor", "/kubelet/metrics/cadvisor",
             {"job": "kubelet", "metrics_path": "/metrics/cadvisor"}),
            ("kube-state-metrics", "/kube-state-metrics/metrics", {"job": "kube-state-metrics"}),
        ]  # fmt: skip
        config = {
            "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_jobs(manifests, local_ports, namespace) + [
                {"job_name": name, "metrics_path": path, "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{cluster_port}"], "labels": labels}]}
                for name, path, labels in static
            ],
        }  # fmt: skip
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = workdir / "prometheus.log"
        process = start(
            [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1h"],
            {"PATH": os.environ["PATH"]}, log,
        )  # fmt: skip
        stack.callback(stop, process)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", timeout=60, process=process, log=log)
        yield Prometheus(url, namespace, server["metadata"]["name"])


def generate_traffic(deployment) -> None:
    """Tracking calls, an artifact through the proxy, and client errors (404)."""
    experiment = deployment.api("experiments/create", {"name": f"monitoring-{time.time_ns()}"})
    run = deployment.api(
        "runs/create", {"experiment_id": experiment["experiment_id"], "start_time": 0}
    )["run"]
    for step in range(5):
        deployment.api(
            "runs/log-metric",
            {"run_id": run["info"]["run_id"], "key": "loss", "value": 1 / (step + 1),
             "timestamp": 0, "step": step},
        )  # fmt: skip
        deployment.api("experiments/search", {"max_results": 10})
    root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")
    upload = urllib.request.Request(
        f"http://127.0.0.1:{deployment.server_port}{deployment.config.mlflow.route_path}"
        f"/api/2.0/mlflow-artifacts/artifacts/{root}/notes.txt",
        data=b"x" * 4096, method="PUT",
        headers={"Host": f"{POD_IP}:5000", **deployment.auth_header()},
    )  # fmt: skip
    with urllib.request.urlopen(upload, timeout=30) as response:
        assert response.status == 200
    assert deployment.artifact(run["info"], "notes.txt") == "x" * 4096
    for _ in range(3):
        with pytest.raises(urllib.error.HTTPError):
            deployment.api("experiments/get?experiment_id=999999999")


@pytest.fixture(scope="module")
def scraped(prometheus, deployment) -> Prometheus:
    """Prometheus after traffic: every target up, and request counters seen rising (the
    traffic keeps coming until then: a counter created before the first scrape would
    show no increase)."""
    deadline = time.monotonic() + 90
    while True:
        generate_traffic(deployment)
        targets = prometheus.targets()
        healthy = [t for t in targets if t["health"] == "up"]
        rated = prometheus.query(
            f'rate(mlflow_http_request_total{{job="{prometheus.job}"}}[{RATE_INTERVAL}]) > 0'
        )
        if len(healthy) == len(targets) and rated:
            time.sleep(3 * SCRAPE_INTERVAL_S)
            return prometheus
        assert time.monotonic() < deadline, [(t["scrapeUrl"], t["lastError"]) for t in targets]
        time.sleep(SCRAPE_INTERVAL_S)


def selectors(expr: str) -> list[str]:
    return [m.group(0) for m in SELECTOR.finditer(expr)]


def assert_returns_series(prometheus: Prometheus, name: str, expr: str) -> None:
    if prometheus.query(expr):
        return
    assert name in EMPTY_WHEN_HEALTHY, f"{name}: no series for {expr}"
    for selector in selectors(expr):
        if not prometheus.query(selector):
            # Only a matcher for an unhealthy value may empty it: the same series without
            # that matcher exist (so the metric and its other labels are right).
            relaxed = selector
            for matcher in UNHEALTHY_ONLY_MATCHERS:
                relaxed = re.sub(matcher, "", relaxed)
            assert relaxed != selector, f"{name}: no series for {selector}"
            series = prometheus.query(relaxed)
            assert series, f"{name}: no series for {relaxed}"
            assert all("status" in s["metric"] for s in series), relaxed


def test_every_target_of_the_service_monitors_is_scraped(scraped):
    jobs = {t["labels"]["job"]: t["health"] for t in scraped.targets()}
    assert jobs[scraped.job] == "up"
    assert jobs[f"{scraped.job}-postgres-exporter"] == "up"
    assert scraped.query(f'mlflow_exporter_info{{job="{scraped.job}"}}')
    assert scraped.query(f'pg_up{{job="{scraped.job}-postgres-exporter"}} == 1')


def test_every_dashboard_expression_returns_series(scraped, deployment):
    panels = dashboard(deployment.manifests)["panels"]
    assert panels
    for panel in panels:
        for target in panel["targets"]:
            assert_returns_series(scraped, panel["title"], scraped.dashboard_expr(target["expr"]))


def test_dashboard_variables_find_this_deployment(scraped, deployment):
    """The `label_values(metric{...}, label)` queries behind the namespace and job pickers."""
    resolved = {}
    for variable in dashboard(deployment.manifests)["templating"]["list"]:
        metric, label = re.fullmatch(
            r"label_values\((.+), (\w+)\)", variable["query"]["query"]
        ).groups()
        series = scraped.query(scraped.dashboard_expr(metric))
        resolved[variable["name"]] = {s["metric"][label] for s in series}
    assert resolved == {"namespace": {scraped.namespace}, "job": {scraped.job}}


def test_every_alert_expression_returns_series(scraped, deployment):
    for group in rule_groups(deployment.manifests):
        for rule in group["rules"]:
            assert_returns_series(scraped, rule["alert"], rule["expr"])


def test_database_volume_alert_fires_above_its_threshold(scraped, deployment):
    """The exposition puts the database claim at 85 % (and the artifact volume at 10 %)."""
    (rule,) = [r for g in rule_groups(deployment.manifests) for r in g["rules"]
               if r["alert"] == "MLflowDatabaseVolumeFilling"]  # fmt: skip
    (series,) = scraped.query(rule["expr"])
    assert float(series["value"][1]) == pytest.approx(0.85, abs=0.01)


@pytest.fixture(scope="module", params=["auth on", "auth off"])
def rendered(request, tmp_path_factory) -> list[dict]:
    """The release as `nebari deploy` renders it (Nebari's monitoring on by default); with
    auth off the latency rule falls back to MLflow's own histogram."""
    config = nb.validate(nb.config_dict("local", {"auth": {"enabled": request.param == "auth on"}}))
    return render_release(nb.stage_for(config, tmp_path_factory.mktemp("render")), nb.STAGE_OUTPUTS)


def promtool(*args: str) -> subprocess.CompletedProcess:
    if PROMTOOL is None:
        pytest.skip("promtool not installed (scripts/system-deps.sh installs prometheus)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rendered_rules(rendered, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(rendered)}))
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def alert_cases(rendered: list[dict]) -> dict[str, tuple[dict[str, str], set[str]]]:
    """Named `promtool test rules` cases: 20 minutes of input series (labels from the
    rendered ServiceMonitors and objects) and the alerts that must fire at minute 19;
    every other alert must not. Times are seconds from the test's start (promtool's
    clock starts at 0), the backup CronJob runs daily."""
    jobs = {j["static_configs"][0]["labels"]["endpoint"]: j["static_configs"][0]["labels"]
            for j in scrape_jobs(rendered, collections.defaultdict(int), "")}  # fmt: skip
    server, database = jobs["http"], jobs["metrics"]
    (sts,) = find(rendered, "StatefulSet")
    namespace = sts["metadata"]["namespace"]
    cronjob = backup_cronjob(rendered)
    srv = f'job="{server["job"]}", namespace="{namespace}"'
    pg = f'job="{database["job"]}", namespace="{namespace}"'
    pvc = f'namespace="{namespace}", persistentvolumeclaim="{database_claim(rendered)}"'
    cron = f'namespace="{namespace}", cronjob="{cronjob["metadata"]["name"]}"'
    request = "mlflow_http_request_total"
    mlflow_bucket = "mlflow_http_request_duration_seconds_bucket"
    route_bucket = "mlflow_nebari_request_duration_seconds_bucket"

    def latency(route: str, fast: str) -> dict[str, str]:
        """60 requests a minute on `route`, `fast` of them under 0.5 s."""
        return {
            f'{route_bucket}{{{srv}, route="{route}", le="0.5"}}': fast,
            f'{route_bucket}{{{srv}, route="{route}", le="5"}}': "0+60x20",
            f'{route_bucket}{{{srv}, route="{route}", le="+Inf"}}': "0+60x20",
        }

    def backup(succeeded_at: int | None, created_at: int = -30 * DAY) -> dict[str, str]:
        """The daily CronJob as kube-state-metrics reports it: last run at minute 10."""
        series = {
            f"kube_cronjob_created{{{cron}}}": f"{created_at}x20",
            f"kube_cronjob_status_last_schedule_time{{{cron}}}": "600x20",
            f"kube_cronjob_next_schedule_time{{{cron}}}": f"{600 + DAY}x20",
        }
        if succeeded_at is not None:
            series[f"kube_cronjob_status_last_successful_time{{{cron}}}"] = f"{succeeded_at}x20"
        return series

    def system(healthy: bool, backups: dict[str, str] | None = None) -> dict[str, str]:
        # Per minute: 60 requests; broken: half of them 5xx, all slower than 0.5 s.
        ok, failed, fast = ("0+60x20", "0+0x20", "0+60x20") if healthy else (
            "0+30x20", "0+30x20", "0+0x20")  # fmt: skip
        return {
            f"up{{{srv}}}": "1x20" if healthy else "0x20",
            f'{request}{{{srv}, method="GET", status="200"}}': ok,
            f'{request}{{{srv}, method="GET", status="500"}}': failed,
            f'{mlflow_bucket}{{{srv}, le="0.5"}}': fast,
            f'{mlflow_bucket}{{{srv}, le="5"}}': "0+60x20",
            f'{mlflow_bucket}{{{srv}, le="+Inf"}}': "0+60x20",
            **latency("api", fast),
            f"pg_up{{{pg}}}": "1x20" if healthy else "0x20",
            f"kubelet_volume_stats_capacity_bytes{{{pvc}}}": "100x20",
            f"kubelet_volume_stats_used_bytes{{{pvc}}}": "50x20" if healthy else "90x20",
            **(backups or backup(succeeded_at=900 if healthy else -3 * DAY)),
        }

    everything = {
        "MLflowServerDown", "MLflowHighErrorRate", "MLflowHighLatency",
        "MLflowDatabaseDown", "MLflowDatabaseVolumeFilling", "MLflowBackupStale",
    }  # fmt: skip
    return {
        "broken": (system(healthy=False), everything),
        "healthy": (system(healthy=True), set()),
        # Every large upload slow, every tracking call fast: nothing to page about.
        "slow artifact transfers only": (
            {**system(healthy=True), **latency("artifacts", "0+0x20")}, set()),
        # Exporters and kube-state-metrics report nothing at all: the up-style rules and
        # the backup rule cannot see a healthy system, so they say so (absent()).
        "nothing reported": ({"unrelated_metric": "1x20"},
                             {"MLflowServerDown", "MLflowDatabaseDown", "MLflowBackupStale"}),
        # Never succeeded: counted from the CronJob's creation (3 days > 2 x 1 day) ...
        "backup never succeeded": (
            system(True, backup(None, created_at=-3 * DAY)), {"MLflowBackupStale"}),
        # ... but a CronJob created an hour ago has not missed anything yet.
        "backup new": (system(True, backup(None, created_at=-3600)), set()),
        # Last success 1.5 days ago: within twice the daily period.
        "backup missed once": (system(True, backup(-DAY - DAY // 2)), set()),
    }  # fmt: skip


def expected_labels(rendered: list[dict], alert: str, case: str) -> dict[str, str]:
    """The labels each alert carries: its aggregation's (or absent()'s matchers)."""
    jobs = {j["static_configs"][0]["labels"]["endpoint"]: j["static_configs"][0]["labels"]
            for j in scrape_jobs(rendered, collections.defaultdict(int), "")}  # fmt: skip
    (sts,) = find(rendered, "StatefulSet")
    cronjob = backup_cronjob(rendered)
    namespace = sts["metadata"]["namespace"]
    server_absent = case == "nothing reported"
    return {
        "MLflowServerDown": (
            {"job": jobs["http"]["job"], "namespace": namespace} if server_absent else {}
        ),
        "MLflowHighErrorRate": {},
        "MLflowHighLatency": {},
        "MLflowDatabaseDown": {"job": jobs["metrics"]["job"], "namespace": namespace},
        "MLflowDatabaseVolumeFilling": {
            "namespace": namespace, "persistentvolumeclaim": database_claim(rendered)},
        "MLflowBackupStale": {"namespace": namespace, "cronjob": cronjob["metadata"]["name"]},
    }[alert]  # fmt: skip


def alert_tests(rendered: list[dict]) -> dict:
    severity = {
        r["alert"]: r["labels"]["severity"] for g in rule_groups(rendered) for r in g["rules"]
    }
    tests = []
    for case, (series, firing) in alert_cases(rendered).items():
        assert firing <= set(severity), case
        tests.append({
            "name": case,
            "interval": "1m",
            "input_series": [{"series": k, "values": v} for k, v in series.items()],
            "alert_rule_test": [
                {"eval_time": "19m", "alertname": name,
                 "exp_alerts": [{"exp_labels": {**expected_labels(rendered, name, case),
                                                "severity": severity[name]}}]
                 if name in firing else []}
                for name in severity
            ],
        })  # fmt: skip
    assert set(severity) == set().union(*(f for _, f in alert_cases(rendered).values()))
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


def write_rules(rendered: list[dict], directory: Path) -> None:
    """The rules without annotations (promtool compares their rendered text; `promtool
    check rules` checks them)."""
    groups = copy.deepcopy(rule_groups(rendered))
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (directory / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))


def test_alerts_fire_when_they_should_and_only_then(rendered, tmp_path):
    """Each alert's expression and `for` against series that must fire it and series
    that must not, evaluated by Prometheus's own rule engine (promtool)."""
    write_rules(rendered, tmp_path)
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(alert_tests(rendered)))
    result = promtool("test", "rules", str(tmp_path / "tests.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_scrape_from_outside_the_allowed_pod_ranges_is_refused(deployment):
    """Why mlflow.allowed_hosts_extra exists: the real server refuses a scrape whose Host
    is a pod IP outside 10/8, 172.16/12, 192.168/16 (EKS custom networking's 100.64/10),
    which Prometheus shows as the target down (tests/plugin/test_pod_hosts.py: the field
    admits it)."""

    def scrape(host: str) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{deployment.server_port}/metrics", headers={"Host": host}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert scrape(f"{POD_IP}:5000") == 200
    assert scrape("100.64.3.7:5000") == 403
