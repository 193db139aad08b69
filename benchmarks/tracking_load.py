"""Tracking throughput and latency: our chart's server vs a default `mlflow server`.

In one run, against (a) the server exactly as the chart configures it (rendered
args and env, PostgreSQL, migrations; see tests/support/deployment.py) and (b) a
default `mlflow server` (SQLite, default workers):

- N client processes (default 16) call `log_batch` for T seconds (default 60);
  prints metric points/s, p50/p95/p99 request latency and errors, then checks
  that the metric rows stored equal what the clients were told succeeded;
- `search_runs` p95 latency with R runs (default 10,000) in one experiment.

    .venv/bin/python benchmarks/tracking_load.py [--clients 16] [--seconds 60]
        [--batch 100] [--runs 10000] [--json out.json]

Clients run in the MLflow virtualenv (.venv-mlflow) as separate processes; against
the chart's server (auth on) as processes in alice's pod (support/load.py `pod_env`).
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support import nebari as nb  # noqa: E402
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment  # noqa: E402
from support.load import client_env, collect, percentile, pod_env, start_clients  # noqa: E402
from support.mlflow_server import MlflowServer  # noqa: E402

SEARCH = textwrap.dedent(
    """
    import json, sys, time
    from concurrent.futures import ThreadPoolExecutor
    from mlflow import MlflowClient
    uri, runs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    client = MlflowClient(uri)
    experiment = client.create_experiment(f"search-{time.time_ns()}")
    def make(i):
        run = client.create_run(experiment, tags={"i": str(i)})
        client.log_metric(run.info.run_id, "score", i / runs)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(runs)))
    latencies = []
    for _ in range(40):
        start = time.perf_counter()
        client.search_runs([experiment], "metrics.score > 0.5", max_results=100,
                           order_by=["metrics.score DESC"])
        latencies.append(time.perf_counter() - start)
    json.dump({"latencies": latencies}, open(out, "w"))
    """
)


def load(uri: str, env: dict[str, str], args, workdir: Path) -> dict:
    procs, outputs, _ = start_clients(
        uri, env, clients=args.clients, seconds=args.seconds, batch=args.batch, workdir=workdir
    )
    return collect(procs, outputs, args.seconds, timeout=args.seconds + 300)


def search(uri: str, env: dict[str, str], runs: int, workdir: Path) -> dict:
    out = workdir / f"search-{time.time_ns()}.json"
    subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", SEARCH, uri, str(runs), str(out)],
        env=env, check=True, timeout=3600,
    )  # fmt: skip
    latencies = json.loads(out.read_text())["latencies"]
    return {"search_p50_ms": percentile(latencies, 0.5) * 1000,
            "search_p95_ms": percentile(latencies, 0.95) * 1000}  # fmt: skip


def stored_points_postgres(deployment, run_ids: list[str]) -> int:
    quoted = ",".join(f"'{run_id}'" for run_id in run_ids)  # hex ids from the server
    return int(
        deployment.postgres.query(f"SELECT count(*) FROM metrics WHERE run_uuid IN ({quoted})")
    )


def stored_points_sqlite(db: Path, run_ids: list[str]) -> int:
    marks = ",".join("?" * len(run_ids))
    with sqlite3.connect(db) as conn:
        return conn.execute(
            f"SELECT count(*) FROM metrics WHERE run_uuid IN ({marks})", run_ids
        ).fetchone()[0]


def report(name: str, figures: dict) -> None:
    print(
        f"{name:28} {figures['metric_points_per_s']:>12,.0f} {figures['p50_ms']:>8.1f} "
        f"{figures['p95_ms']:>8.1f} {figures['p99_ms']:>8.1f} {figures['errors']:>7} "
        f"{figures.get('search_p95_ms', float('nan')):>10.1f}  "
        f"stored {figures['stored_points']}/{figures['acked_points']} acked"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batch", type=int, default=100, help="metric points per log_batch")
    parser.add_argument("--runs", type=int, default=10_000, help="runs for the search test")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    reason = missing_tools()
    if reason:
        sys.exit(reason)
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tracking-load-") as tmp:
        workdir = Path(tmp)
        config = nb.validate(nb.config_dict("local", {}))
        with running_deployment(workdir / "chart", config) as deployment:
            # Clients as in alice's pod (her JupyterHub token, sent by the delivered
            # package), each log_batch acknowledged by the server (synchronous).
            env = pod_env(deployment, workdir, async_logging=False)
            result = load(deployment.service_url, env, args, workdir)
            result["stored_points"] = stored_points_postgres(deployment, result.pop("run_ids"))
            result.update(search(deployment.service_url, env, args.runs, workdir))
            figures["chart (PostgreSQL)"] = result
        default_dir = workdir / "default"
        with MlflowServer(default_dir, python=str(MLFLOW_BIN / "python"), workers=0) as server:
            env = client_env({})
            result = load(server.url, env, args, workdir)
            result["stored_points"] = stored_points_sqlite(
                default_dir / "mlflow.db", result.pop("run_ids")
            )
            result.update(search(server.url, env, args.runs, workdir))
            figures["default (SQLite)"] = result
    print(f"clients={args.clients} seconds={args.seconds} batch={args.batch} runs={args.runs} "
          f"cpus={os.cpu_count()}")  # fmt: skip
    print(f"{'server':28} {'points/s':>12} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'errors':>7} {'search p95':>10}")  # fmt: skip
    for name, result in figures.items():
        report(name, result)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    lost = [n for n, r in figures.items() if r["stored_points"] != r["acked_points"]]
    if lost:
        print(f"MISMATCH between acknowledged and stored metrics: {lost}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
