"""Every benchmark runs: each script in benchmarks/ with tiny parameters, auth on where
it runs the chart's server. No timing is asserted (this machine's speed varies); what
is checked is that the command completes, prints its table, and its own accounting
holds (every acknowledged point stored, every run delivered: the scripts exit
non-zero otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.browser import missing_browser_tools, port_443_unavailable
from support.deployment import MLFLOW_BIN, missing_tools

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"

# script -> (interpreter, tiny arguments, lines the output must contain)
SMOKE = {
    "artifact_transfer.py": (
        sys.executable, ["--sizes", "1", "--repeat", "1"],
        ["default mlflow server", "chart, in-cluster URL", "chart, through the route"],
    ),
    "async_logging.py": (
        sys.executable, ["--steps", "20", "--repeat", "1"],
        ["sync", "async, unbatched", "async, batched", "20/20"],
    ),
    "auth_latency.py": (
        sys.executable, ["--requests", "5", "--misses", "2"],
        ["off", "hit", "miss", "authorization function alone"],
    ),
    "cell_overhead.py": (
        str(MLFLOW_BIN / "python"), ["--cells", "10", "--warmup", "1"], ["runs in MLflow:"],
    ),
    "nebari_startup.py": (sys.executable, ["--runs", "1"], ["added by the plugin"]),
    "server_memory.py": (
        sys.executable, ["--workers", "1", "--seconds", "3", "--clients", "1"], ["workers=1"],
    ),
    "tracking_load.py": (
        sys.executable, ["--clients", "2", "--seconds", "3", "--batch", "10", "--runs", "20"],
        ["chart (PostgreSQL)", "default (SQLite)", "acked"],
    ),
    "ui_load.py": (
        sys.executable, ["--rounds", "1", "--loads", "1"], ["compressed", "uncompressed"],
    ),
}  # fmt: skip


def test_every_benchmark_has_a_smoke_run():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(SMOKE)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_runs(script, tmp_path):
    reason = missing_tools()
    if script == "ui_load.py":
        reason = reason or missing_browser_tools() or port_443_unavailable()
    if reason:
        pytest.skip(reason)
    python, args, expected = SMOKE[script]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [python, str(BENCHMARKS / script), *args, "--json", str(tmp_path / "out.json")]
        if script not in ("nebari_startup.py", "cell_overhead.py") else
        [python, str(BENCHMARKS / script), *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    for line in expected:
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"
