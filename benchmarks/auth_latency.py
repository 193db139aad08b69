"""Latency authentication adds to a request, on the server as the chart runs it.

The same config is rendered and run for real on loopback twice
(tests/support/deployment.py: rendered args, env, mounted auth package,
PostgreSQL, a real JupyterHub for auth on), once with `mlflow.auth.enabled:
false` and once with it on (1 worker, so every request meets the same cache),
both at once; one keep-alive connection to each, requests alternating:

- `GET experiments/get` (a read MLflow's permission check looks up) and
  `POST runs/log-metric` (a write);
- auth off: no credential; auth on, cache hit: alice's JupyterHub token, already
  verified; auth on, cache miss: a token never seen (each request a new one,
  minted beforehand), so every request asks JupyterHub twice (the token's
  owner, then their admin flag and groups) and keeps the user's MLflow row in step.

It prints p50/p95 per case and the added p50 (on minus off). Added on a hit
includes MLflow's own authorization (its gate, with its permission lookups
remembered: server/lookups.py), not only Nebari's authorization function; that
function alone on a hit is timed too, in
the MLflow virtualenv, inside Flask request contexts (a request's headers, a
verified identity in the cache).

    .venv/bin/python benchmarks/auth_latency.py [--requests 300] [--misses 60] [--json out.json]

Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import nebari as nb  # noqa: E402
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    """One keep-alive connection to the server at its in-cluster address."""

    def __init__(self, dep) -> None:
        self.dep = dep
        self.connection = http.client.HTTPConnection("127.0.0.1", dep.server_port, timeout=30)
        self.prefix = f"{dep.config.mlflow.route_path}/api/2.0/mlflow"
        self.used = 0.0

    def call(self, method: str, path: str, body: dict | None, auth: dict) -> tuple[int, float]:
        headers = {"Host": f"mlflow.{self.dep.namespace}.svc:5000",
                   "Content-Type": "application/json", **auth}  # fmt: skip
        data = json.dumps(body).encode() if body is not None else None
        if self.connection.sock is None or time.monotonic() - self.used > 2:
            # uvicorn closes a keep-alive connection idle for 5 s: start a fresh one.
            self.connection.close()
            self.connection.connect()
        self.used = time.monotonic()
        start = time.perf_counter()
        self.connection.request(method, f"{self.prefix}/{path}", body=data, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: {response.status} {payload[:300]!r}")
        return response.status, elapsed


def prepare(dep) -> tuple[Client, dict[str, tuple[str, str, dict | None]], dict[str, str]]:
    """A client, the requests (on an experiment and run of alice's) and alice's header."""
    client = Client(dep)
    user = "alice" if dep.auth_enabled else None
    owner = dep.auth_header("alice") if dep.auth_enabled else {}
    experiment = json.loads(dep._call(
        "api/2.0/mlflow/experiments/create", json.dumps({"name": "latency"}).encode(), user
    ))["experiment_id"]  # fmt: skip
    run = json.loads(dep._call(
        "api/2.0/mlflow/runs/create", json.dumps({"experiment_id": experiment}).encode(), user
    ))["run"]["info"]["run_id"]  # fmt: skip
    cases = {
        "read": ("GET", f"experiments/get?experiment_id={experiment}", None),
        "write": ("POST", "runs/log-metric",
                  {"run_id": run, "key": "m", "value": 1.0, "timestamp": 0}),
    }  # fmt: skip
    for method, path, body in cases.values():
        for _ in range(20):  # warm-up (caches, connection pools)
            client.call(method, path, body, owner)
    return client, cases, owner


def run(requests: int, misses: int) -> dict[str, dict[str, list[float]]]:
    """Both servers run at once and requests alternate between them, so load from
    elsewhere on the machine weighs on both alike."""
    results: dict[str, dict[str, list[float]]] = {"off": {}, "hit": {}, "miss": {}}
    with contextlib.ExitStack() as stack:
        prepared = {}
        for enabled in (False, True):
            block = {"workers": 1, "prometheus": False, "auth": {"enabled": enabled}}
            config = nb.validate(nb.config_dict("local", block))
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="auth-lat-")))
            dep = stack.enter_context(running_deployment(workdir, config))
            prepared[enabled] = (dep, *prepare(dep))
        _, off, off_cases, _ = prepared[False]
        dep, on, on_cases, owner = prepared[True]
        for name in off_cases:
            off_request, on_request = off_cases[name], on_cases[name]
            for _ in range(20):  # both warm again after the second one started
                off.call(*off_request, {})
                on.call(*on_request, owner)
            off_samples, hit_samples, miss_samples = [], [], []
            for _ in range(requests):
                off_samples.append(off.call(*off_request, {})[1])
                hit_samples.append(on.call(*on_request, owner)[1])
            tokens = [dep.hub.token("alice", note=f"miss-{i}")[0] for i in range(misses)]
            for token in tokens:
                off_samples.append(off.call(*off_request, {})[1])
                miss_samples.append(on.call(*on_request, {"Authorization": f"Bearer {token}"})[1])
            results["off"][name], results["hit"][name] = off_samples, hit_samples
            results["miss"][name] = miss_samples
    return results


FUNCTION_ON_A_HIT = """
import statistics, sys, time
from flask import Flask
from nebari_mlflow_plugin.server import auth, login
from nebari_mlflow_plugin.server.identity import Identity
app = Flask("bench")
headers = {"Authorization": "Bearer a-verified-token"}
_, cache = auth._state()
if sys.argv[2] == "session":  # a browser: the same token, in MLflow's sealed session cookie
    sealed = login.seal(login.LoginSettings.from_env().key, login.SESSION_COOKIE,
                        {"t": "a-verified-token", "e": time.time() + 3600})
    headers = {"Cookie": f"{login.SESSION_COOKIE}={sealed}"}
cache.put(cache.key("hub", "a-verified-token"), Identity("alice", groups=("/developer",)))
samples = []
for _ in range(int(sys.argv[1])):
    with app.test_request_context("/mlflow/api/2.0/mlflow/runs/log-metric", method="POST",
                                  headers=headers, json={"run_id": "r", "key": "m"}):
        start = time.perf_counter()
        assert auth.authenticate().username == "alice"
        samples.append((time.perf_counter() - start) * 1000)
samples.sort()
print(statistics.median(samples), samples[int(0.95 * len(samples))])
"""


def function_on_a_hit(calls: int, credential: str = "bearer") -> tuple[float, float]:
    """(p50, p95) ms of Nebari's authorization function alone, identity cached, for a
    JupyterHub token (`bearer`) or a browser's MLflow session (`session`)."""
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", FUNCTION_ON_A_HIT, str(calls), credential],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO / "src"),
             "NEBARI_MLFLOW_AUTH_CACHE_SECONDS": "600",
             # The browser sign-in as the chart configures it (login.py).
             "MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-secret",
             "NEBARI_MLFLOW_OAUTH_CLIENT_ID": "service-mlflow",
             "NEBARI_MLFLOW_OAUTH_REDIRECT_URI": "/mlflow/oauth_callback",
             "NEBARI_MLFLOW_OAUTH_AUTHORIZE_URL": "/hub/api/oauth2/authorize"},
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    p50, p95 = result.stdout.split()
    return float(p50), float(p95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--misses", type=int, default=60)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_tools()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    results = run(args.requests, args.misses)
    print(f"{'case':<10} {'request':<6} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'added p50':>10}")
    for case in ("off", "hit", "miss"):
        for name, samples in results[case].items():
            p50 = statistics.median(samples)
            added = p50 - statistics.median(results["off"][name]) if case != "off" else 0.0
            p95 = percentile(samples, 0.95)
            print(f"{case:<10} {name:<6} {len(samples):>4} {p50:>8.2f} {p95:>8.2f} {added:>+10.2f}")
    p50, p95 = function_on_a_hit(args.requests * 10)
    print(f"Nebari's authorization function alone, cache hit: p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    s50, s95 = function_on_a_hit(args.requests * 10, "session")
    print(f"  the same for a browser session cookie: p50 {s50:.3f} ms, p95 {s95:.3f} ms")
    if args.json:
        args.json.write_text(json.dumps({**results, "function_on_a_hit": [p50, p95],
                                         "function_on_a_session_hit": [s50, s95]}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
