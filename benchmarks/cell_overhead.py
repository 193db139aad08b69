"""Per-cell latency added by cell capture: plain ipykernel vs the MLflow-tracked kernel.

Starts a local MLflow server (tests/support/mlflow_server.py), a plain ipykernel
and a tracked kernel with jupyter_client, and runs the same cells on both,
interleaved cell by cell so machine noise hits both alike: empty, print, small
computation, and every 10th an inline matplotlib figure. Latency is the client's
wall time from execute_request to the idle status (what a user waits for).
After warm-up the tracked kernel's sender (a separate process) has imported
mlflow; the measured cells then overlap with its delivering earlier cells, as
in real use. The server (elsewhere in a deployment) runs at nice 10 so it does
not steal the kernels' cores, as the sender does by itself. Finally waits
(bounded) until every cell run is in MLflow.

    .venv-mlflow/bin/python benchmarks/cell_overhead.py [--cells 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "notebook")]

from support.mlflow_server import MlflowServer  # noqa: E402
from test_capture_support import (  # noqa: E402
    PACKAGE_EXTENSION,
    execute,
    start_kernel,
    stop_kernel,
    wait_for,
)

FIGURE = "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot(range({i}), range({i}))\nplt.show()"


def cell_code(i: int) -> str:
    if i % 10 == 9:
        return FIGURE.format(i=i + 2)
    return ("", f"print('cell {i}')", f"sum(k * k for k in range({1000 + i}))")[i % 3]


def kinds(n: int) -> dict[str, list[int]]:
    """Cell indexes per kind, for a per-kind breakdown of the added latency."""
    out: dict[str, list[int]] = {"empty": [], "print": [], "compute": [], "figure": []}
    for i in range(n):
        kind = "figure" if i % 10 == 9 else ("empty", "print", "compute")[i % 3]
        out[kind].append(i)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(pct(ms, 95), 2),
        "max_ms": round(max(ms), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200, help="measured cells per kernel")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured cells first")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cell-overhead-"))
    experiment = "benchmark-cells"
    with MlflowServer(tmp / "server") as server:
        # in a deployment the server runs elsewhere; here it shares 2 cores with the kernels
        if server.proc is not None:
            os.setpriority(os.PRIO_PGRP, server.proc.pid, 10)
        env = {
            "MLFLOW_TRACKING_URI": server.url,
            "NEBARI_MLFLOW_CAPTURE_EXPERIMENT": experiment,
            "NEBARI_MLFLOW_CAPTURE_SPOOL_DIR": str(tmp / "spool"),
        }
        plain = start_kernel(None, {"MLFLOW_TRACKING_URI": server.url})
        tracked = start_kernel(PACKAGE_EXTENSION, env)
        kernels = {"plain": plain, "tracked": tracked}
        times: dict[str, list[float]] = {"plain": [], "tracked": []}
        try:
            setup = "%matplotlib inline\nimport matplotlib.pyplot as plt"
            for _, kc in kernels.values():
                execute(kc, setup)
                for i in range(args.warmup):
                    execute(kc, cell_code(i))
            time.sleep(5)  # let the sender process start and import mlflow
            for i in range(args.cells):
                order = ("plain", "tracked") if i % 2 == 0 else ("tracked", "plain")
                for name in order:
                    reply, _, dt = execute(kernels[name][1], cell_code(i))
                    if reply["content"]["status"] != "ok":
                        raise RuntimeError(f"cell {i} failed on {name}: {reply['content']}")
                    times[name].append(dt * 1000)
        finally:
            for km, kc in kernels.values():
                stop_kernel(km, kc)

        # IPython runs no events for an empty cell, so it is not recorded
        codes = [setup] + [cell_code(i) for i in range(args.warmup)]
        codes += [cell_code(i) for i in range(args.cells)]
        expected = sum(1 for code in codes if code.strip())
        t0 = time.monotonic()

        def delivered() -> int | None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(server.url)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                return None
            runs = client.search_runs([exp.experiment_id], max_results=2000)
            cells = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
            done = [r for r in cells if r.info.status != "RUNNING"]
            return len(done) if len(done) >= expected else None

        try:
            count = wait_for(delivered, 300, interval=1.0, what="all cell runs")
        except TimeoutError:
            count = 0
        delivery_s = time.monotonic() - t0

    plain_s, tracked_s = summary(times["plain"]), summary(times["tracked"])
    paired = [t - p for t, p in zip(times["tracked"], times["plain"], strict=True)]
    result = {
        "cells": args.cells,
        "plain": plain_s,
        "tracked": tracked_s,
        "added": {
            "p50_ms": round(tracked_s["p50_ms"] - plain_s["p50_ms"], 2),
            "p95_ms": round(tracked_s["p95_ms"] - plain_s["p95_ms"], 2),
            "paired_p50_ms": round(statistics.median(paired), 2),
            "paired_p95_ms": round(pct(paired, 95), 2),
        },
        "added_p50_by_kind_ms": {
            kind: round(
                statistics.median(times["tracked"][i] for i in idx)
                - statistics.median(times["plain"][i] for i in idx),
                2,
            )
            for kind, idx in kinds(args.cells).items()
        },
        "runs_delivered": count,
        "runs_expected": expected,
        "delivery_wait_after_last_cell_s": round(delivery_s, 1),
    }
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{'kernel':<10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
        for name, s in (("plain", plain_s), ("tracked", tracked_s)):
            print(f"{name:<10}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['max_ms']:>10.2f}")
        added = result["added"]
        print(f"{'added':<10}{added['p50_ms']:>10.2f}{added['p95_ms']:>10.2f}")
        print(
            f"paired per-cell difference: p50 {added['paired_p50_ms']:.2f} ms, "
            f"p95 {added['paired_p95_ms']:.2f} ms"
        )
        by_kind = ", ".join(f"{k} {v:.2f}" for k, v in result["added_p50_by_kind_ms"].items())
        print(f"added p50 by kind (ms): {by_kind}")
        print(
            f"runs in MLflow: {count}/{expected} "
            f"(all delivered {delivery_s:.1f} s after the last cell)"
        )
    met = result["added"]["p50_ms"] <= 2 and result["added"]["p95_ms"] <= 10
    # Timing varies with the machine: the target is reported; a lost run fails.
    print(f"target (added p50 <= 2 ms, p95 <= 10 ms): {'met' if met else 'MISSED'}")
    return 0 if count == expected else 1


if __name__ == "__main__":
    sys.exit(main())
