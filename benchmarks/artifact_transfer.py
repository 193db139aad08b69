"""Artifact upload and download speed: the chart's server vs a default `mlflow server`.

In one run, against (a) the server as the chart renders it (auth on, `--static-prefix
/mlflow`, artifacts on the local volume; tests/support/deployment.py), reached at its
in-cluster URL with alice's JupyterHub token and through the route (nginx as Traefik)
with her browser session (signed in through JupyterHub), and (b) a default `mlflow
server` (no prefix, no auth, local artifacts), directly and behind the same proxy as
the route (a second nginx configured like the route, without the login), each size
is uploaded (PUT, streamed from a file) and downloaded (GET, streamed to nothing)
`--repeat` times, targets taking turns so load from elsewhere on the machine weighs on
all alike. Every download is checked (bytes and sha256). Prints MiB/s (median), the
ratio to the default server reached the same way (directly for the in-cluster URL,
through the proxy for the route: what the chart costs, not what the extra hop on
this machine's two cores costs), and how much one server process's peak memory
(VmHWM) grew over the transfers of that size.

    .venv/bin/python benchmarks/artifact_transfer.py [--sizes 256,2048] [--repeat 3]
        [--json out.json]

Files go to a temporary directory (about 3x the largest size); everything listens on
127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import nebari as nb  # noqa: E402
from support import transfer  # noqa: E402
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment  # noqa: E402
from support.mlflow_server import MlflowServer  # noqa: E402
from support.nginx import Nginx  # noqa: E402
from support.signin import session_header  # noqa: E402

MiB = transfer.MiB


@dataclass
class Target:
    """Where a client sends artifact requests: address, headers, the run's files URL."""

    name: str
    port: int
    host: str
    headers: dict[str, str]
    artifacts: str  # <prefix>/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts
    pgid: int
    # The default server's row this one is compared with (reached the same way).
    baseline: str = "default mlflow server"
    up: list[float] = field(default_factory=list)
    down: list[float] = field(default_factory=list)
    growth: float = 0.0


PROXIED_DEFAULT = "default, same proxy"


def default_proxy(dep, default: MlflowServer, workdir: Path) -> Nginx:
    """nginx in front of the default server as the route's is configured (streaming,
    32 KiB copies, the same compression), without the login."""
    route = replace(dep.nginx.route, host="localhost", path_prefix="/api/",
                    redirect_regex=None, redirect_replacement=None, forward_auth=False,
                    api_header_regex=None, strip_prefix=None)  # fmt: skip
    return Nginx(workdir, route, upstream_port=default.port, auth_port=default.port)


def create_run(base: str, host: str, headers: dict[str, str]) -> str:
    """A new run (REST API); its artifacts' path under the artifact proxy."""

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
            headers={"Host": host, "Content-Type": "application/json", **headers},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    experiment = post("experiments/create", {"name": f"transfer-{time.time_ns()}"})
    run = post("runs/create", {"experiment_id": experiment["experiment_id"]})["run"]
    return run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/").strip("/")


def targets(dep, default: MlflowServer, proxy: Nginx) -> list[Target]:
    prefix = dep.config.mlflow.route_path
    service_host = f"mlflow.{dep.namespace}.svc:5000"
    alice = dep.auth_header("alice")
    root = create_run(f"http://127.0.0.1:{dep.server_port}{prefix}", service_host, alice)
    artifacts = f"{prefix}/api/2.0/mlflow-artifacts/artifacts/{root}"
    route_host = dep.nginx.route.host
    session = session_header(dep, "alice", route_host)
    default_host = f"127.0.0.1:{default.port}"
    default_root = create_run(default.url, default_host, {})
    default_artifacts = f"/api/2.0/mlflow-artifacts/artifacts/{default_root}"
    return [
        Target("default mlflow server", default.port, default_host, {}, default_artifacts,
               default.proc.pid),
        Target(PROXIED_DEFAULT, proxy.port, proxy.route.host, {}, default_artifacts,
               default.proc.pid),
        Target("chart, in-cluster URL", dep.server_port, service_host, alice, artifacts,
               dep.process.pid),
        Target("chart, through the route", dep.nginx.port, route_host, session, artifacts,
               dep.process.pid, baseline=PROXIED_DEFAULT),
    ]  # fmt: skip


def measure(all_targets: list[Target], source: Path, digest: str, repeat: int) -> None:
    size = source.stat().st_size
    for target in all_targets:  # warm-up: each worker's first request imports and connects
        for _ in range(4):
            url = f"{target.artifacts}/warm-up.bin"
            transfer.put(target.port, url, target.headers, target.host, size=MiB)
            transfer.get(target.port, url, target.headers, target.host, keep=False)
    before = {t.pgid: transfer.peak_rss_mib(transfer.group_processes(t.pgid)) for t in all_targets}
    for _ in range(repeat):
        for target in all_targets:
            url = f"{target.artifacts}/{source.name}"
            start = time.perf_counter()
            status, body = transfer.put(target.port, url, target.headers, target.host,
                                        source=source)  # fmt: skip
            target.up.append(size / MiB / (time.perf_counter() - start))
            if status != 200:
                raise RuntimeError(f"{target.name}: upload answered {status} {body[:300]!r}")
            start = time.perf_counter()
            status, _, received, got = transfer.get(target.port, url, target.headers,
                                                    target.host, keep=False)  # fmt: skip
            target.down.append(size / MiB / (time.perf_counter() - start))
            if status != 200 or received != size or got != digest:
                raise RuntimeError(f"{target.name}: download {status}, {received}/{size} bytes")
    for target in all_targets:
        after = transfer.peak_rss_mib(transfer.group_processes(target.pgid))
        target.growth = transfer.growth_mib(before[target.pgid], after)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,2048", help="MiB, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_tools()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    sizes = [float(s) for s in args.sizes.split(",")]
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="transfer-")))
        config = nb.validate(nb.config_dict("local", {"prometheus": False}))
        dep = stack.enter_context(running_deployment(workdir / "chart", config))
        default = stack.enter_context(
            MlflowServer(
                workdir / "default",
                python=str(MLFLOW_BIN / "python"),
                workers=0,
                start_timeout=300,
            )
        )
        proxy = default_proxy(dep, default, workdir / "default-proxy").start()
        stack.callback(proxy.stop)
        print(f"sizes={args.sizes} MiB repeat={args.repeat}")
        print(f"{'size':>9} {'target':<26} {'up MiB/s':>9} {'x dflt':>7} "
              f"{'down MiB/s':>10} {'x dflt':>7} {'peak +MiB':>9}")  # fmt: skip
        for size_mib in sizes:
            source = workdir / f"file-{size_mib:g}MiB.bin"
            digest = transfer.write_file(source, int(size_mib * MiB))
            all_targets = targets(dep, default, proxy)
            measure(all_targets, source, digest, args.repeat)
            source.unlink()
            by_name = {t.name: t for t in all_targets}
            for t in all_targets:
                up, down = statistics.median(t.up), statistics.median(t.down)
                base_up = statistics.median(by_name[t.baseline].up)
                base_down = statistics.median(by_name[t.baseline].down)
                print(f"{size_mib:>6g}MiB {t.name:<26} {up:>9.0f} {up / base_up:>7.2f} "
                      f"{down:>10.0f} {down / base_down:>7.2f} {t.growth:>9.0f}")  # fmt: skip
                results[f"{size_mib:g}MiB {t.name}"] = {
                    "up_mib_s": t.up, "down_mib_s": t.down, "up_ratio": up / base_up,
                    "down_ratio": down / base_down, "peak_growth_mib": t.growth,
                }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
