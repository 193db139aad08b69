"""What the plugin adds to every nebari command's start-up.

nebari imports every installed plugin on every command, so this runs
`nebari --help` (and `nebari mlflow --help`) repeatedly with and without the
plugin visible and prints the median wall time of each and the difference.
"Without" hides this plugin's distribution from pluggy's entry-point scan
through a sitecustomize that both variants load, so the only difference is the
plugin itself.

    .venv/bin/python benchmarks/nebari_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITECUSTOMIZE = """
import os
if os.environ.get("HIDE_NEBARI_MLFLOW_PLUGIN"):
    import importlib.metadata as md
    _distributions = md.distributions
    def distributions(**kwargs):
        for dist in _distributions(**kwargs):
            if (dist.metadata["Name"] or "").lower() != "nebari-mlflow-plugin":
                yield dist
    md.distributions = distributions
"""


def time_command(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    nebari = str(Path(sys.executable).with_name("nebari"))
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "sitecustomize.py").write_text(SITECUSTOMIZE)
        base = {**os.environ, "PYTHONPATH": tmp, "PYTHONWARNINGS": "ignore"}
        without_env = {**base, "HIDE_NEBARI_MLFLOW_PLUGIN": "1"}
        # Warm the file cache and check the hiding works before measuring.
        listing = subprocess.run(
            [nebari, "--help"], env=without_env, capture_output=True, text=True
        )
        assert " mlflow " not in listing.stdout, "plugin still visible when hidden"
        time_command([nebari, "--help"], base, 2)
        rows = []
        # Interleaved, so drifting machine load hits both variants alike.
        without, with_plugin = [], []
        for _ in range(args.runs):
            without += time_command([nebari, "--help"], without_env, 1)
            with_plugin += time_command([nebari, "--help"], base, 1)
        sub = time_command([nebari, "mlflow", "--help"], base, args.runs)
        rows.append(("nebari --help without plugin", without))
        rows.append(("nebari --help with plugin", with_plugin))
        rows.append(("nebari mlflow --help", sub))
    print(f"{'command':36} {'median ms':>10} {'min ms':>8} {'max ms':>8}  (runs={args.runs})")
    for name, samples in rows:
        print(
            f"{name:36} {statistics.median(samples) * 1000:10.0f} {min(samples) * 1000:8.0f} "
            f"{max(samples) * 1000:8.0f}"
        )
    added = (statistics.median(with_plugin) - statistics.median(without)) * 1000
    paired = statistics.median(w - o for w, o in zip(with_plugin, without, strict=True)) * 1000
    print(f"added by the plugin: {added:+.0f} ms (medians), {paired:+.0f} ms (median of pairs)")
    every, config = plugin_import_ms(nebari)
    print(f"plugin's imports on every command: {every:.1f} ms (python -X importtime; budget 30 ms)")
    print(f"plugin's imports in commands that read the config: {config:.1f} ms")


# nebari imports the hooks module on every command and calls `nebari_subcommand` (the
# CLI) to build its typer app; it calls `nebari_stage` (the stages, the `mlflow:`
# schema) only in commands that read nebari-config.yaml or list the stages (deploy,
# destroy, render, validate, info, upgrade, ...), which then spend seconds on the rest.
EVERY_COMMAND = (
    "from nebari_mlflow_plugin import plugin; import typer;plugin.nebari_subcommand(typer.Typer())"
)
CONFIG_COMMANDS = EVERY_COMMAND + ";plugin.nebari_stage()"
# What nebari itself has imported before it loads any plugin.
NEBARI_FIRST = "import _nebari.stages.base, _nebari.stages.tf_objects, nebari.plugins, typer"


def top_level_plugin_ms(importtime: str) -> float:
    """Cumulative time of the plugin's modules that nothing of the plugin imported:
    the plugin's cost including what it alone pulls in (rich, say)."""
    lines = []
    for line in importtime.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            lines.append((len(name) - len(name.lstrip()), name.strip(), int(parts[1])))
    total = 0
    # -X importtime prints a module after the modules it imported, one level deeper.
    for i, (depth, name, cumulative) in enumerate(lines):
        if not name.startswith("nebari_mlflow_plugin"):
            continue
        parent = next((n for d, n, _ in lines[i + 1 :] if d < depth), "")
        if not parent.startswith("nebari_mlflow_plugin"):
            total += cumulative
    return total / 1000


def plugin_import_ms(nebari: str) -> tuple[float, float]:
    """What loading the plugin costs nebari: on every command, and in the commands
    that read the config, measured after nebari's own modules are imported."""
    python = str(Path(nebari).with_name("python"))
    costs = []
    for code in (EVERY_COMMAND, CONFIG_COMMANDS):
        err = subprocess.run(
            [python, "-X", "importtime", "-c", f"{NEBARI_FIRST};{code}"],
            capture_output=True, text=True, check=True,
        ).stderr  # fmt: skip
        costs.append(top_level_plugin_ms(err))
    return costs[0], costs[1]


if __name__ == "__main__":
    main()
