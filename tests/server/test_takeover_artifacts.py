"""server/takeover_artifacts.py on real stores (directories, through MLflow's artifact
repositories, as the old tracking volume is read): what is copied, what a re-run
skips, and what it reports. Against MinIO-like S3 and the old server itself:
tests/e2e/test_takeover.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nebari_mlflow_plugin.server import takeover_artifacts


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def take_over(source: Path, destination: Path, log: Path, monkeypatch) -> tuple[int, dict]:
    monkeypatch.setenv("TERMINATION_LOG", str(log))
    with pytest.raises(SystemExit) as exited:
        takeover_artifacts.main([str(source), str(destination)])
    return exited.value.code, json.loads(log.read_text())["artifacts"]


def test_the_old_servers_experiments_are_copied_once_and_verified(tmp_path, monkeypatch, capsys):
    source, destination, log = tmp_path / "old", tmp_path / "new", tmp_path / "termination-log"
    write(source, "1/run-a/artifacts/model/weights.bin", "w" * 100)
    write(source, "1/run-a/artifacts/notes.txt", "hello")
    write(source, "12/run-b/artifacts/plot.png", "png")
    write(source, "lost+found/junk", "not the server's")  # not an experiment folder
    write(source, "stray.txt", "not in a folder")
    destination.mkdir()
    code, report = take_over(source, destination, log, monkeypatch)
    assert code == 0
    assert report == {"source": str(source), "verified": True, "files": [3, 3], "bytes": 108,
                      "copied": 3, "skipped": 0, "experiments": 2}  # fmt: skip
    assert f"takeover: {json.dumps({'artifacts': report})}" in capsys.readouterr().out
    assert (destination / "1/run-a/artifacts/notes.txt").read_text() == "hello"
    assert not (destination / "lost+found").exists() and not (destination / "stray.txt").exists()
    marker = json.loads((destination / takeover_artifacts.MARKER).read_text())
    assert marker == report

    # A re-run (the pod restarted) copies only what differs.
    write(destination, "12/run-b/artifacts/plot.png", "truncated-and-longer")
    code, again = take_over(source, destination, log, monkeypatch)
    assert (code, again["copied"], again["skipped"]) == (0, 1, 2)
    assert (destination / "12/run-b/artifacts/plot.png").read_text() == "png"


def _files(root: Path) -> dict[str, int]:
    return {str(f.relative_to(root)): f.stat().st_size for f in root.rglob("*") if f.is_file()}


def test_a_copy_killed_part_way_resumes_copying_only_what_is_missing(tmp_path):
    """The container is killed (SIGKILL: OOM, a node drained) after some files have
    landed, the last one half-written (as a kill mid-write leaves it): no marker is
    left, and the restarted container copies only the files not there whole (the
    half-written one again), verifies every one and writes the marker."""
    source, destination = tmp_path / "old", tmp_path / "new"
    for experiment in range(1, 5):
        for run in range(50):
            write(source, f"{experiment}/run-{run}/artifacts/model.bin", f"{run:04d}" * 256)
    destination.mkdir()
    (tmp_path / "tmp").mkdir()
    src = str(Path(takeover_artifacts.__file__).parents[2])  # the code under test, as imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "TERMINATION_LOG": str(tmp_path / "termination-log"),
           "TMPDIR": str(tmp_path / "tmp")}  # fmt: skip
    argv = [sys.executable, "-m", "nebari_mlflow_plugin.server.takeover_artifacts",
            str(source), str(destination)]  # fmt: skip
    total = len(_files(source))
    container = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while container.poll() is None and len(_files(destination)) < 20:
        assert time.monotonic() < deadline, "no file landed"
        time.sleep(0.005)
    container.send_signal(signal.SIGKILL)
    output = container.communicate(timeout=60)[0].decode()
    assert container.returncode == -signal.SIGKILL, f"the copy ended before the kill: {output}"
    landed = _files(destination)
    assert 20 <= len(landed) < total and takeover_artifacts.MARKER not in landed
    cut = destination / max(landed)
    cut.write_bytes(cut.read_bytes()[:100])
    whole = [
        p
        for p in _files(destination)
        if (destination / p).read_bytes() == (source / p).read_bytes()
    ]

    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    report = json.loads((tmp_path / "termination-log").read_text())["artifacts"]
    assert report["verified"] is True and report["files"] == [total, total]
    assert (report["skipped"], report["copied"]) == (len(whole), total - len(whole))
    copied = {p: (destination / p).read_bytes() for p in _files(source)}
    assert copied == {p: (source / p).read_bytes() for p in _files(source)}
    assert json.loads((destination / takeover_artifacts.MARKER).read_text()) == report


def test_experiment_folders_are_the_numbered_directories_at_the_root():
    class Entry:
        def __init__(self, path: str, is_dir: bool) -> None:
            self.path, self.is_dir = path, is_dir

    entries = [Entry("3", True), Entry("10", True), Entry("models", True), Entry("7", False)]
    assert takeover_artifacts.experiment_folders(entries) == ["10", "3"]  # sorted as text


def test_arguments_are_the_two_stores():
    args = takeover_artifacts.parse(["s3://mlflow", "/mlartifacts"])
    assert (args.source, args.destination) == ("s3://mlflow", "/mlartifacts")
    with pytest.raises(SystemExit):
        takeover_artifacts.parse(["s3://mlflow"])
