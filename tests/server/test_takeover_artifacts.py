"""server/takeover_artifacts.py on real stores (directories, through MLflow's artifact
repositories, as the old tracking volume is read): what is copied, what a re-run
skips, and what it reports. Against MinIO-like S3 and the old server itself:
tests/e2e/test_takeover.py."""

from __future__ import annotations

import json
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
