"""What `mlflow.log_metric` costs a training loop: synchronous vs MLflow's asynchronous
logging as user pods get it (`mlflow.notebook.async_logging`).

The server runs as the chart renders it, auth on (tests/support/deployment.py); the
client is a process as in alice's pod: the in-cluster tracking URI, her JupyterHub
token sent by the delivered notebook package, the env the plugin injects. Each mode
runs a loop of `--steps` `log_metric` calls in its own process, `--repeat` times,
modes taking turns: the per-step cost (p50/p95), the loop's total, how long
`end_run` then blocks, and whether every point arrived (read back from the server).

- sync: MLflow's default, one authenticated request per call;
- async, unbatched: MLFLOW_ENABLE_ASYNC_LOGGING alone (each call still its own
  request, sent by a thread pool);
- async, batched (the plugin's default): plus MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS.

    .venv/bin/python benchmarks/async_logging.py [--steps 2000] [--repeat 3] [--json out.json]

Targets (issue #22): batched per-step p50 <= 0.1 ms, `end_run` of 2,000 points <= 1 s.
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]

from support import nebari as nb  # noqa: E402
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment  # noqa: E402
from support.load import pod_env  # noqa: E402

LOOP = textwrap.dedent(
    """
    import json, sys, time
    import mlflow
    steps = int(sys.argv[1])
    mlflow.set_experiment(sys.argv[2])
    run = mlflow.start_run()
    costs = []
    for step in range(steps):
        start = time.perf_counter()
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        costs.append(time.perf_counter() - start)
    start = time.perf_counter()
    mlflow.end_run()
    end_run = time.perf_counter() - start
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    print(json.dumps({"costs": costs, "end_run": end_run, "arrived": len(history)}))
    """
)

MODES = {
    "sync": {"MLFLOW_ENABLE_ASYNC_LOGGING": "false"},
    "async, unbatched": {"MLFLOW_ENABLE_ASYNC_LOGGING": "true"},
    "async, batched": {},  # as injected (the default config)
}


def run_loop(env: dict[str, str], steps: int, experiment: str) -> dict:
    result = subprocess.run(
        [str(MLFLOW_BIN / "python"), "-c", LOOP, str(steps), experiment],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_tools()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="async-logging-") as tmp:
        workdir = Path(tmp)
        config = nb.validate(nb.config_dict("local", {"prometheus": False}))
        with running_deployment(workdir / "chart", config) as dep:
            base = pod_env(dep, workdir)
            assert base.get("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"), "not injected"
            for _ in range(args.repeat):
                for mode, change in MODES.items():
                    env = {**base, **change}
                    if mode != "async, batched":
                        env.pop("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", None)
                    results[mode].append(run_loop(env, args.steps, "users/alice"))
    print(f"steps={args.steps} repeat={args.repeat} cpus={os.cpu_count()}")
    print(f"{'mode':<18} {'step p50 ms':>11} {'step p95 ms':>11} {'loop s':>7} "
          f"{'end_run s':>9} {'arrived':>9}")  # fmt: skip
    lost = []
    summary = {}
    for mode, runs in results.items():
        costs = sorted(c * 1000 for r in runs for c in r["costs"])
        p50, p95 = statistics.median(costs), costs[int(0.95 * (len(costs) - 1))]
        loop = statistics.median(sum(r["costs"]) for r in runs)
        end_run = statistics.median(r["end_run"] for r in runs)
        arrived = min(r["arrived"] for r in runs)
        print(f"{mode:<18} {p50:>11.3f} {p95:>11.3f} {loop:>7.2f} {end_run:>9.2f} "
              f"{arrived:>5}/{args.steps}")  # fmt: skip
        summary[mode] = {"step_p50_ms": p50, "step_p95_ms": p95, "loop_s": loop,
                         "end_run_s": end_run, "arrived_min": arrived}  # fmt: skip
        if any(r["arrived"] != args.steps for r in runs):
            lost.append(mode)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": results}))
    if lost:
        print(f"POINTS MISSING in: {lost}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
