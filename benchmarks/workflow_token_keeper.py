"""What keeping a workflow token (notebook/keeper.py) costs the thread that sends a request.

In a process set up as a JupyterLab server's (the hub's variables, a home with a token
file), timed with perf_counter_ns:

- every request: the notebook package's auth callable (auth.py: picks the token, adds
  the header) on one prepared request, with the keeper's hook as shipped and with it
  replaced by a no-op, interleaved; the added cost is the difference of the medians;
- the first request of a process: the hook when it starts the background check (a
  fresh keeper each time; the check finds the file fresh, or, with `--mint`, asks a hub
  that refuses the connection, as a failing mint would);
- the import the hook adds to `import mlflow` (auth.py is an entry point MLflow loads):
  keeper.py alone, after what auth.py imported before (-X importtime, median of runs;
  compiled each time: user pods mount the package read-only, without bytecode).

    .venv-mlflow/bin/python benchmarks/workflow_token_keeper.py [--requests 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SERVER = "http://mlflow.dev.svc:5000/mlflow"


def lab_env(home: Path, hub: str) -> None:
    os.environ.update(
        JUPYTERHUB_API_URL=hub, JUPYTERHUB_USER="alice", JUPYTERHUB_API_TOKEN="server-token",
        NEBARI_MLFLOW_SERVER=SERVER, NEBARI_MLFLOW_WORKFLOW_TOKEN_SECONDS=str(36 * 3600),
        NEBARI_MLFLOW_TOKEN_FILE=str(home / "workflow-token.json"),
    )  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def per_request(n: int) -> dict[str, float]:
    import requests

    from nebari_mlflow_plugin.notebook import auth

    prepared = requests.Request("GET", f"{SERVER}/api/2.0/mlflow/experiments/get").prepare()
    hook = auth.keep_fresh
    shipped, without = [], []
    call = auth.HubTokenAuth()
    for _ in range(n):
        for hooked, samples in ((hook, shipped), (lambda: None, without)):
            auth.keep_fresh = hooked
            prepared.headers.pop("Authorization", None)
            start = time.perf_counter_ns()
            call(prepared)
            samples.append((time.perf_counter_ns() - start) / 1000)
    auth.keep_fresh = hook
    return {
        "request_p50_us": statistics.median(shipped),
        "request_p95_us": percentile(shipped, 95),
        "request_without_hook_p50_us": statistics.median(without),
        "request_added_p50_us": statistics.median(shipped) - statistics.median(without),
    }


def first_request(n: int) -> dict[str, float]:
    from nebari_mlflow_plugin.notebook import keeper

    samples = []
    for _ in range(n):
        fresh = keeper.Keeper()
        start = time.perf_counter_ns()
        fresh.poke()
        samples.append((time.perf_counter_ns() - start) / 1000)
        fresh.done.wait(10)
    return {"first_p50_us": statistics.median(samples), "first_p95_us": percentile(samples, 95)}


def import_cost(runs: int = 15) -> float:
    package = "nebari_mlflow_plugin.notebook"
    code = (
        "import json, logging, os, threading, time, contextlib, pathlib, typing; "
        f"import {package}.tokens, {package}.tags; import {package}.keeper"
    )
    costs = []
    # No bytecode cache, as in user pods (the package is a read-only ConfigMap mount).
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    for _ in range(runs):
        argv = [sys.executable, "-B", "-X", "importtime", "-c", code]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stderr
        match = re.search(r"\|\s*(\d+) \| nebari_mlflow_plugin\.notebook\.keeper$", out, re.M)
        costs.append(int(match[1]) / 1000)
    return statistics.median(costs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--firsts", type=int, default=200)
    parser.add_argument("--mint", action="store_true", help="the check finds a mint due")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        lab_env(home, "http://127.0.0.1:9/hub/api")  # nothing listens on port 9
        import logging

        logging.getLogger("nebari_mlflow_plugin.notebook.keeper").setLevel(logging.ERROR)
        if not args.mint:
            fresh = {"token": "t", "expires_at": time.time() + 36 * 3600, "user": "alice"}
            (home / "workflow-token.json").write_text(json.dumps(fresh))
        result = {**per_request(args.requests), **first_request(args.firsts),
                  "import_ms": import_cost()}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key:32} {value:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
