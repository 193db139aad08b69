"""Cell capture: config, redaction, idempotent spool delivery, and real kernels.

Kernel tests drive real ipykernels through jupyter_client against a real
MLflow server (conftest fixtures); every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_capture_support import (
    PACKAGE_EXTENSION,
    execute,
    start_kernel,
    stop_kernel,
    wait_for,
)

from nebari_mlflow_plugin.notebook import capture, kernel, spool

pytestmark = pytest.mark.timeout(300)


def _client(url: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=url)


def _runs(url: str, experiment: str) -> list:
    client = _client(url)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], max_results=1000)


def _kernel_env(tmp_path: Path, url: str, experiment: str, **extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": url,
        "NEBARI_MLFLOW_CAPTURE_EXPERIMENT": experiment,
        "NEBARI_MLFLOW_CAPTURE_SPOOL_DIR": str(tmp_path / "spool"),
        "NEBARI_MLFLOW_CAPTURE_DEBUG": "1",
        "NEBARI_MLFLOW_CAPTURE_MAX_BACKOFF": "1",
        "NEBARI_MLFLOW_CAPTURE_SENDER_LINGER": "5",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        **extra,
    }


# --------------------------------------------------------------------------- unit


def test_config_env_beats_old_kernel_json(tmp_path):
    old = tmp_path / "mlflow_kernel_config.json"
    old.write_text(
        json.dumps(
            {
                "mlflow_tracking_uri": "http://old:5000",
                "debug_enabled": True,
                "default_experiment_name": "old-exp",
            }
        )
    )
    base = {"NEBARI_MLFLOW_CAPTURE_CONFIG_FILE": str(old)}
    cfg = capture.load_config(base)
    assert (cfg.tracking_uri, cfg.experiment, cfg.debug) == ("http://old:5000", "old-exp", True)
    cfg = capture.load_config(
        {
            **base,
            "MLFLOW_TRACKING_URI": "http://env:5000",
            "NEBARI_MLFLOW_CAPTURE_EXPERIMENT": "cells",
            "NEBARI_MLFLOW_CAPTURE_DEBUG": "0",
            "NEBARI_MLFLOW_CAPTURE_MAX_OUTPUT_BYTES": "100",
            "NEBARI_MLFLOW_CAPTURE_REDACT": '["foo\\\\d+"]',
            "NEBARI_MLFLOW_CAPTURE_SPOOL_DIR": str(tmp_path / "s"),
            "NEBARI_MLFLOW_CAPTURE": "0",
        }
    )
    assert cfg.tracking_uri == "http://env:5000" and cfg.experiment == "cells"
    assert not cfg.debug and not cfg.enabled and cfg.max_output_bytes == 100
    assert cfg.redact == ["foo\\d+"] and cfg.spool_dir == tmp_path / "s"


def test_inert_in_an_environment_without_mlflow(monkeypatch, tmp_path):
    """Admins turn capture on for every kernel; one whose environment lacks MLflow
    records nothing (no hooks, no spool that no sender could deliver)."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("NEBARI_MLFLOW_CAPTURE_SPOOL_DIR", str(tmp_path / "spool"))
    before = list(shell.events.callbacks["pre_run_cell"])
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` finds nothing
    try:
        capture.load_ipython_extension(shell)
        assert capture._capture is None
        assert shell.events.callbacks["pre_run_cell"] == before
        shell.run_cell("x = 1")
        assert not (tmp_path / "spool").exists()
    finally:
        capture.unload_ipython_extension(shell)
        InteractiveShell.clear_instance()


def test_redaction_masks_env_secrets_and_patterns(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-123")
    monkeypatch.setenv("HARMLESS", "visible-value")
    red = capture.Redactor([r"card=(?P<secret>\d{4})"], [])
    out = red(
        "tok s3cr3t-value-123 and visible-value; card=1234 AKIAABCDEFGHIJKLMNOP password = hunter22"
    )
    assert "s3cr3t-value-123" not in out and "visible-value" in out
    assert "card=********" in out and "AKIA" not in out and "hunter22" not in out


def test_kernelspec_install_prefix(tmp_path):

    path = Path(kernel.install("mlflow-test", prefix=str(tmp_path)))
    spec = json.loads((path / "kernel.json").read_text())
    assert spec["display_name"] == "Python 3 (MLflow tracked)"
    assert spec["argv"][1:5] == ["-m", "ipykernel_launcher", "-f", "{connection_file}"]
    assert "nebari_mlflow_plugin.notebook.capture" in spec["argv"][-1]
    assert path == tmp_path / "share" / "jupyter" / "kernels" / "mlflow-test"


def test_spool_delivery_is_idempotent(tmp_path, mlflow_server):
    """A crash after the run was created but before the spool entry was removed: no duplicate."""
    root = tmp_path / "spool"
    session_id = uuid.uuid4().hex
    sdir = root / session_id
    (sdir / "records").mkdir(parents=True)
    now = time.time()
    meta = {
        "session_id": session_id,
        "pid": 2**22 + 7,  # no such process: the session counts as dead
        "start": now,
        "tracking_uri": mlflow_server.url,
        "experiment": "idempotent",
    }
    spool.write_json_atomic(sdir / "session.json", meta)

    def put_record() -> Path:
        rec_dir = sdir / "records" / "00000001-abc"
        (rec_dir / "artifacts").mkdir(parents=True, exist_ok=True)
        (rec_dir / "artifacts" / "code.py").write_text("x = 1\n")
        rec = {
            "record_id": "abc",
            "seq": 1,
            "execution_count": 1,
            "cell_id": None,
            "start": now,
            "end": now + 0.01,
            "duration_s": 0.01,
            "status": "FINISHED",
            "run_id": None,
            "code": "x = 1",
            "error": None,
        }
        spool.write_json_atomic(rec_dir / "record.json", rec)
        return rec_dir

    put_record()
    sender = spool.Sender(root)
    # The session is dead with its record delivered: the pass also closes it.
    assert sender.drain_once() == 0
    assert not sdir.exists()
    # Replay the same record as if the deletion had been lost.
    (sdir / "records").mkdir(parents=True)
    spool.write_json_atomic(sdir / "session.json", meta)
    put_record()
    assert spool.Sender(root).drain_once() == 0
    runs = _runs(mlflow_server.url, "idempotent")
    cells = [r for r in runs if r.data.tags.get(spool.TAG_RECORD_ID) == "abc"]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(cells) == 1 and len(parents) == 1
    assert parents[0].info.status == "KILLED" and cells[0].info.status == "FINISHED"


# --------------------------------------------------------------------------- kernels


def test_cells_recorded_with_outputs_errors_and_autolog(tmp_path, mlflow_server):
    env = _kernel_env(tmp_path, mlflow_server.url, "cells", MY_API_TOKEN="tok-9f8e7d6c5b")
    km, kc = start_kernel(PACKAGE_EXTENSION, env)
    try:
        # cell id from the execute_request metadata, as JupyterLab sends it
        msg = kc.session.msg(
            "execute_request",
            {"code": "print('hello', 'tok-9f8e7d6c5b')\nimport sys; print('warn', file=sys.stderr)",
             "silent": False, "store_history": True, "user_expressions": {},
             "allow_stdin": False, "stop_on_error": True},
            metadata={"cellId": "cell-abc"},
        )  # fmt: skip
        kc.shell_channel.send(msg)
        kc.get_shell_msg(timeout=30)
        execute(kc, "from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))")
        execute(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);")
        reply, msgs, _ = execute(kc, "def f():\n    return 1 / 0\nf()")
        assert reply["content"]["status"] == "error"
        [err] = [m for m in msgs if m["msg_type"] == "error"]
        assert err["content"]["ename"] == "ZeroDivisionError"
        plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err["content"]["traceback"]))
        assert "1 / 0" in plain and "ZeroDivisionError" in plain  # the normal traceback
        # MLflow used inside a cell: logging attaches to that cell's run
        _, msgs, _ = execute(
            kc,
            "import mlflow\nmlflow.log_metric('acc', 0.5)\n"
            "print('CELL', mlflow.active_run().info.run_id)",
        )
        out = "".join(m["content"].get("text", "") for m in msgs)
        cell_run_id = re.search(r"CELL (\w+)", out).group(1)
        # the user's own run keeps working and is left to the user
        _, msgs, _ = execute(
            kc,
            "r = mlflow.start_run(run_name='mine')\nmlflow.log_param('p', 1)\nmlflow.end_run()\n"
            "print('OWN', r.info.run_id, mlflow.active_run().info.run_id != r.info.run_id)",
        )
        out = "".join(m["content"].get("text", "") for m in msgs)
        match = re.search(r"OWN (\w+) (\w+)", out)
        assert match, [m["content"] for m in msgs if m["msg_type"] != "status"]
        own_run_id, after = match.groups()
        assert after == "True"  # after end_run, the cell's own run is the active one again
    finally:
        stop_kernel(km, kc)

    def complete():
        runs = _runs(mlflow_server.url, "cells")
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        done = parents and parents[0].info.status == "FINISHED"
        return runs if done and len(runs) == 7 else None

    runs = wait_for(complete, 150, what="7 runs, parent finished")
    client = _client(mlflow_server.url)
    by_count = {r.data.tags.get("nebari.cell.execution_count"): r for r in runs}
    parent_id = by_count[None].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for k, r in by_count.items() if k)

    first = by_count["1"]
    assert first.data.tags["nebari.cell.id"] == "cell-abc"
    assert first.info.status == "FINISHED" and "cell_duration_s" in first.data.metrics
    stdout = client.download_artifacts(first.info.run_id, "stdout.txt", str(tmp_path / "d1"))
    text = Path(stdout).read_text()
    assert "hello" in text and "tok-9f8e7d6c5b" not in text and "********" in text
    arts = {a.path for a in client.list_artifacts(first.info.run_id)}
    assert {"code.py", "stdout.txt", "stderr.txt"} <= arts
    assert {a.path for a in client.list_artifacts(by_count["2"].info.run_id, "outputs")} == {
        "outputs/output-01.html"
    }
    assert any(
        a.path.endswith(".png") for a in client.list_artifacts(by_count["3"].info.run_id, "outputs")
    )
    failed = by_count["4"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["nebari.cell.error"].startswith("ZeroDivisionError")
    tb = client.download_artifacts(failed.info.run_id, "traceback.txt", str(tmp_path / "d4"))
    assert "1 / 0" in Path(tb).read_text()
    autolog = by_count["5"]
    assert autolog.info.run_id == cell_run_id and autolog.data.metrics["acc"] == 0.5
    assert autolog.info.status == "FINISHED"
    own = client.get_run(own_run_id)
    assert own.info.status == "FINISHED" and "mlflow.parentRunId" not in own.data.tags
    assert own_run_id not in {r.info.run_id for r in runs}


def test_server_down_cells_fast_then_all_delivered_once(tmp_path, make_mlflow_server):
    from support.mlflow_server import free_port

    server = make_mlflow_server(port=free_port())
    km, kc = start_kernel(PACKAGE_EXTENSION, _kernel_env(tmp_path, server.url, "down"))
    try:
        execute(kc, "pass")  # warm-up outside the measurement
        latencies = []
        for i in range(100):
            reply, _, dt = execute(kc, f"x = {i} * 2\nprint('cell', x)")
            assert reply["content"]["status"] == "ok"
            latencies.append(dt)
        # a bound, not a benchmark: the down server never makes a cell wait
        assert max(latencies) < 0.5, sorted(latencies)[-5:]
        server.start()

        def delivered():
            cells = [r for r in _runs(server.url, "down") if "mlflow.parentRunId" in r.data.tags]
            done = [r for r in cells if r.info.status == "FINISHED"]
            return cells if len(done) >= 101 else None

        cells = wait_for(delivered, 150, interval=1.0, what="101 cell runs")
    finally:
        stop_kernel(km, kc)
    record_ids = [r.data.tags[spool.TAG_RECORD_ID] for r in cells]
    # the 100 cells plus the warm-up cell, each exactly once
    assert len(cells) == 101 and len(set(record_ids)) == 101
    assert sorted(int(r.data.tags["nebari.cell.execution_count"]) for r in cells) == list(
        range(1, 102)
    )
    client = _client(server.url)
    for run in cells[::33]:
        assert {"code.py", "stdout.txt"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_killed_kernel_spool_delivered_by_next_session(tmp_path, make_mlflow_server):
    from support.mlflow_server import free_port

    server = make_mlflow_server(port=free_port())
    kernel_env = _kernel_env(tmp_path, server.url, "killed")
    root = tmp_path / "spool"
    km, kc = start_kernel(PACKAGE_EXTENSION, kernel_env)
    try:
        for i in range(10):
            execute(kc, f"print({i})")
        wait_for(lambda: spool.pending_count(root) == 10, 60, 0.2, "10 spooled records")
        # kill the kernel and its sender mid-spool, as a pod eviction would
        sender_pid = int((root / ".sender.lock").read_text() or 0)
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        if sender_pid:
            os.kill(sender_pid, signal.SIGKILL)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    server.start()
    km, kc = start_kernel(PACKAGE_EXTENSION, kernel_env)
    try:
        execute(kc, "print('new session')")

        def old_delivered():
            runs = _runs(server.url, "killed")
            killed = [r for r in runs if r.info.status == "KILLED"]
            cells = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
            return runs if killed and len(cells) >= 10 else None

        runs = wait_for(old_delivered, 150, what="the killed session's runs")
    finally:
        stop_kernel(km, kc)
    [killed_parent] = [r for r in runs if r.info.status == "KILLED"]
    old_cells = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == killed_parent.info.run_id
    ]
    assert len(old_cells) == 10
    assert len({r.data.tags[spool.TAG_RECORD_ID] for r in old_cells}) == 10
