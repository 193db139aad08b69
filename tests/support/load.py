"""Tracking load from separate client processes (MLflow virtualenv), shared by the
fault tests and benchmarks/tracking_load.py.

Each client creates a run and calls log_batch until its time is up, recording
per-request latency, how many metric points the server acknowledged, and errors
left after MLflow's own retries.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

from support.deployment import MLFLOW_BIN, delivered_pythonpath

CLIENT = textwrap.dedent(
    """
    import json, sys, time
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    uri, experiment, seconds, batch, out = sys.argv[1:6]
    seconds, batch = float(seconds), int(batch)
    client = MlflowClient(uri)
    run_id = client.create_run(experiment).info.run_id
    latencies, acked, errors, step, seen = [], 0, 0, 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = int(time.time() * 1000)
        metrics = [Metric(f"m{i % 10}", float(i), now, step) for i in range(batch)]
        start = time.perf_counter()
        try:
            client.log_batch(run_id, metrics=metrics)
            acked += batch
        except Exception as exc:
            errors += 1
            if len(seen) < 3:
                seen.append(repr(exc)[:500])
        latencies.append(time.perf_counter() - start)
        step += 1
    json.dump({"run_id": run_id, "latencies": latencies, "acked": acked, "errors": errors,
               "error_messages": seen}, open(out, "w"))
    """
)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def client_env(extra: dict[str, str], **retry: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # MLflow's own retry settings, as a client in a user pod would have them.
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
    env.update(settings, **retry, **extra)
    return env


def pod_env(dep, workdir: Path, *, async_logging: bool | None = None) -> dict[str, str]:
    """A process in alice's pod: the env the plugin injects (tracking URI, the delivered
    package's JupyterHub-token auth, async logging as configured), the delivered
    notebook package, her token; the Service's name leads to the local server.
    `async_logging` False/True overrides the injected setting."""
    from nebari_mlflow_plugin.render.injection import user_env

    injected = {k: v for k, v in user_env(dep.config).items() if "{" not in v}
    injected.pop("PYTHONPATH", None)  # the pod's mount: here the delivered copy below
    env = client_env({**dep.client_env(), **injected})
    env["PYTHONPATH"] = f"{delivered_pythonpath(workdir / 'pod-python')}:{env['PYTHONPATH']}"
    if async_logging is False:
        env.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)
        env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    return env


def start_clients(uri: str, env: dict[str, str], *, clients: int, seconds: float, batch: int,
                  workdir: Path) -> tuple[list[subprocess.Popen], list[Path], str]:  # fmt: skip
    python = str(MLFLOW_BIN / "python")
    experiment = subprocess.run(
        [python, "-c", "import sys, time; from mlflow import MlflowClient; "
         "print(MlflowClient(sys.argv[1]).create_experiment(f'load-{time.time_ns()}'))", uri],
        env=env, check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    outputs = [workdir / f"client-{experiment}-{i}.json" for i in range(clients)]
    procs = [
        subprocess.Popen(
            [python, "-c", CLIENT, uri, experiment, str(seconds), str(batch), str(out)], env=env
        )
        for out in outputs
    ]
    return procs, outputs, experiment


def collect(
    procs: list[subprocess.Popen], outputs: list[Path], seconds: float, timeout: float
) -> dict:
    for proc in procs:
        proc.wait(timeout=timeout)
    results = [json.loads(out.read_text()) for out in outputs]
    latencies = [x for r in results for x in r["latencies"]]
    acked = sum(r["acked"] for r in results)
    return {
        "metric_points_per_s": acked / seconds,
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "errors": sum(r["errors"] for r in results),
        "error_messages": [m for r in results for m in r.get("error_messages", [])],
        "acked_points": acked,
        "run_ids": [r["run_id"] for r in results],
    }
