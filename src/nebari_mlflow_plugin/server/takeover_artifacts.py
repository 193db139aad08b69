"""Taking over a deployment of nebari-mlflow-plugin 2025.10.x: its artifacts (the
server pod's init container `takeover-artifacts`, after `takeover-database`):

    python -m nebari_mlflow_server.takeover_artifacts SOURCE DESTINATION

SOURCE is the old server's --artifacts-destination (its MinIO, a cloud bucket, or
its tracking volume mounted read-only), DESTINATION ours. The old server proxied
artifacts (mlflow-artifacts:/<experiment id>/...): its experiments are the numbered
folders at SOURCE's root, copied into DESTINATION; files already there with the
same size are skipped, so a re-run resumes. Once every file is verified, the
marker nebari-takeover.json at DESTINATION's root records it, so a restart after
the old store is gone (`nebari mlflow migrate --finish`) starts the server.

The result is one JSON line `{"artifacts": {...}}`, printed and written to the
termination message (TERMINATION_LOG, default /dev/termination-log), which
`nebari mlflow migrate --finish` reads before it removes the old release.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import shutil
import sys
import tempfile
from collections.abc import Iterable
from typing import Any, NoReturn

MARKER = "nebari-takeover.json"  # at the destination's root, once verified


def report(message: dict[str, Any], code: int = 0) -> NoReturn:
    text = json.dumps({"artifacts": message})
    print(f"takeover: {text}", flush=True)
    with open(os.environ.get("TERMINATION_LOG", "/dev/termination-log"), "w") as log:
        log.write(text)
    sys.exit(code)


def files(repo: Any, path: str) -> dict[str, int | None]:
    """{path: size} of every file under `path`."""
    found: dict[str, int | None] = {}
    for item in repo.list_artifacts(path):
        if item.is_dir:
            found.update(files(repo, item.path))
        else:
            found[item.path] = item.file_size
    return found


def experiment_folders(entries: Iterable[Any]) -> list[str]:
    """The old server's experiments among the entries at its root: numbered folders
    (anything else there is not its own)."""
    return sorted(item.path for item in entries if item.is_dir and item.path.isdigit())


def copy(source: Any, destination: Any, experiments: list[str], scratch: str) -> dict[str, int]:
    """Copy what `destination` lacks (or holds with another size); counts and bytes."""
    copied = skipped = size = 0
    for experiment in experiments:
        present = files(destination, experiment)
        for path, length in sorted(files(source, experiment).items()):
            size += length or 0
            if present.get(path) == length:
                skipped += 1
                continue
            local = source.download_artifacts(path, dst_path=scratch)
            destination.log_artifact(local, posixpath.dirname(path))
            os.remove(local)
            copied += 1
    return {"copied": copied, "skipped": skipped, "bytes": size}


def verify(source: Any, destination: Any, experiments: list[str]) -> tuple[int, list[str]]:
    """(the source's files, those not in `destination` with the same size)."""
    expected = {path: n for e in experiments for path, n in files(source, e).items()}
    landed = {path: n for e in experiments for path, n in files(destination, e).items()}
    return len(expected), sorted(path for path, n in expected.items() if landed.get(path) != n)


def parse(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nebari_mlflow_server.takeover_artifacts")
    parser.add_argument("source", help="the old server's --artifacts-destination")
    parser.add_argument("destination", help="this server's --artifacts-destination")
    return parser.parse_args(None if argv is None else list(argv))


def main(argv: Iterable[str] | None = None) -> NoReturn:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    args = parse(argv)
    source = get_artifact_repository(args.source)
    destination = get_artifact_repository(args.destination)
    try:
        experiments = experiment_folders(source.list_artifacts())
    except Exception as exc:
        if MARKER not in [item.path for item in destination.list_artifacts()]:
            raise  # not copied yet: exit non-zero, the kubelet retries
        # Copied before; the old store is gone (`--finish`) or down: start the server.
        report({"source": args.source, "verified": False,
                "old": f"unreachable: {exc}"[:300], "copied": True})  # fmt: skip
    scratch = tempfile.mkdtemp(prefix="takeover-")
    counts = copy(source, destination, experiments, scratch)
    expected, missing = verify(source, destination, experiments)
    result: dict[str, Any] = {
        "source": args.source,
        "verified": not missing,
        "files": [expected, expected - len(missing)],
        "bytes": counts["bytes"],
        "copied": counts["copied"],
        "skipped": counts["skipped"],
        "experiments": len(experiments),
    }
    if missing:
        result["missing"] = missing[:20]
    else:
        with open(os.path.join(scratch, MARKER), "w") as marker:
            json.dump(result, marker)
        destination.log_artifact(os.path.join(scratch, MARKER))
    shutil.rmtree(scratch, ignore_errors=True)
    report(result, 1 if missing else 0)


if __name__ == "__main__":
    main()
