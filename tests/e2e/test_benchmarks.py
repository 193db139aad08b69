"""Every benchmark runs: each script in benchmarks/ with tiny parameters, auth on where
it runs the chart's server. No timing is asserted (this machine's speed varies); what
is checked is that the command completes, prints its table, and its own accounting
holds (every acknowledged point stored, every run delivered: the scripts return
non-zero otherwise).

Starting the rendered release (PostgreSQL, init containers, JupyterHub, the server) is
what a tiny run costs most, so the scripts that start one run in this process, their
`running_deployment` handing them one release started for the module whenever they ask
for the same authentication (auth_latency's auth-off server is its own, and
server_memory, which measures a fresh server and kills it, starts its own). The scripts
that need another interpreter (cell_overhead, workflow_token_keeper: the MLflow venv)
or none of the release (nebari_startup) run as commands.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import nebari as nb
from support.browser import missing_browser_tools, port_443_unavailable
from support.deployment import MLFLOW_BIN, missing_tools, running_deployment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"

# script -> (tiny arguments, lines the output must contain)
IN_PROCESS = {
    "artifact_transfer.py": (
        ["--sizes", "1", "--repeat", "1"],
        ["default mlflow server", "default, same proxy", "chart, in-cluster URL",
         "chart, through the route"],
    ),
    "async_logging.py": (
        ["--steps", "20", "--repeat", "1"], ["sync", "async, unbatched", "async, batched", "20/20"],
    ),
    "auth_latency.py": (
        ["--requests", "5", "--misses", "2"],
        ["off", "hit", "miss", "authorization function alone"],
    ),
    "server_memory.py": (
        ["--workers", "1", "--seconds", "2", "--clients", "1"], ["workers=1"],
    ),
    "tracking_load.py": (
        ["--clients", "2", "--seconds", "2", "--batch", "10", "--runs", "10"],
        ["chart (PostgreSQL)", "default (SQLite)", "acked"],
    ),
    "ui_load.py": (["--rounds", "1", "--loads", "1"], ["compressed", "uncompressed"]),
}  # fmt: skip
# Releases a script starts itself: auth_latency's auth-off one; server_memory's (never
# shared: it measures a fresh server and kills it).
OWN_RELEASES = {"auth_latency.py": 1, "server_memory.py": 1}
NEVER_SHARED = {"server_memory.py"}
# script -> (interpreter, tiny arguments, lines the output must contain)
COMMANDS = {
    "cell_overhead.py": (
        str(MLFLOW_BIN / "python"), ["--cells", "10", "--warmup", "1"], ["runs in MLflow:"],
    ),
    "nebari_startup.py": (sys.executable, ["--runs", "1"], ["added by the plugin"]),
    "workflow_token_keeper.py": (
        str(MLFLOW_BIN / "python"), ["--requests", "200", "--firsts", "5"],
        ["request_added_p50_us", "first_p95_us", "import_ms"],
    ),
}  # fmt: skip


def test_every_benchmark_has_a_smoke_run():
    assert {p.name for p in BENCHMARKS.glob("*.py")} == set(IN_PROCESS) | set(COMMANDS)


@pytest.fixture(scope="module")
def shared_release(tmp_path_factory):
    """One release for the scripts (one worker: the smoke runs need no more)."""
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    config = nb.validate(nb.config_dict("local", {"workers": 1, "prometheus": False}))
    with running_deployment(tmp_path_factory.mktemp("bench"), config) as dep:
        yield dep


def load_script(name: str, monkeypatch):
    """The script as a module (registered while the test runs: its dataclasses look
    their module up)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(name).stem}", BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", sorted(IN_PROCESS))
def test_benchmark_runs(script, shared_release, tmp_path, monkeypatch, capsys):
    if script == "ui_load.py":
        reason = missing_browser_tools() or port_443_unavailable()
        if reason:
            pytest.skip(reason)
    args, expected = IN_PROCESS[script]
    module = load_script(script, monkeypatch)
    own_release = module.running_deployment
    started: list[str] = []

    @contextlib.contextmanager
    def release_for(workdir, config, **kwargs):
        same = config.mlflow.auth.enabled == shared_release.config.mlflow.auth.enabled
        if same and not kwargs and script not in NEVER_SHARED:
            yield shared_release
            return
        started.append(str(workdir))
        with own_release(workdir, config, **kwargs) as dep:
            yield dep

    monkeypatch.setattr(module, "running_deployment", release_for)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [script, *args, "--json", str(tmp_path / "out.json")])
    assert module.main() == 0, capsys.readouterr()
    output = capsys.readouterr().out
    for line in expected:
        assert line in output, f"{line!r} missing from:\n{output}"
    assert len(started) == OWN_RELEASES.get(script, 0), started


@pytest.mark.timeout(300)
@pytest.mark.parametrize("script", sorted(COMMANDS))
def test_benchmark_command_runs(script, tmp_path):
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    python, args, expected = COMMANDS[script]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [python, str(BENCHMARKS / script), *args],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    for line in expected:
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"
