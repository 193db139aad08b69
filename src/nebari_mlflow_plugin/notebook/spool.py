"""On-disk spool of cell records, and the sender that delivers it to MLflow.

Why a spool and a separate sender *process*: the kernel must never wait on
the network, and the sender's work (importing mlflow, ~2 s of CPU; HTTP; base64
artifacts) must not compete with user code for the kernel's GIL. So the kernel
only writes records here (atomically, from a background thread), and a sender
process started by the kernel (``python spool.py send``) delivers them. One
sender per spool directory is active at a time (``fcntl`` lock on
``.sender.lock``), so several kernels of one user share it, and a record left
by a kernel that was SIGKILLed is delivered by the next session's sender.

Layout (every entry appears by ``os.rename``, so readers never see half of it)::

    <spool>/<session_id>/session.json      session meta: owner pid, tracking URI, experiment
    <spool>/<session_id>/parent_run_id     once the session's parent run exists
    <spool>/<session_id>/records/<seq>-<record_id>/record.json
                                          .../artifacts/...   files logged as run artifacts
                                          .../state.json       run id once created
    <spool>/<session_id>/end.json          the kernel shut down cleanly

Delivery is idempotent ("none twice"): every cell run carries the tag
``nebari.capture.record_id``; the run id is saved in ``state.json`` as soon as
the server returns it, and when it is missing (a crash between the two) the
sender looks the tag up before creating a run. A record is removed only after
its run is complete. Artifacts are re-uploaded to the same paths on retry.

This file imports only the standard library at module level (mlflow lazily),
so it can run as a flat script next to the kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import logging.handlers
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger("nebari_mlflow_plugin.notebook.spool")

TAG_RECORD_ID = "nebari.capture.record_id"
TAG_SESSION_ID = "nebari.capture.session_id"
TAG_SESSION_PARENT = "nebari.capture.parent_of_session"  # only on the parent run
MAX_TAG_CHARS = 5000  # MLflow's tag limit is 8000; keep room for markdown fences
MAX_BACKOFF = float(os.environ.get("NEBARI_MLFLOW_CAPTURE_MAX_BACKOFF", "5"))
DELIVERY_THREADS = 4  # runs carry their own start/end times, so order does not matter
MAX_ATTEMPTS = 5  # a record that fails this often while the server is healthy is quarantined


# --------------------------------------------------------------------------- spool files


def default_spool_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "nebari-mlflow" / "spool"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write-then-rename so a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def commit_dir(tmp: Path, final: Path) -> None:
    """Publish a fully written directory in one step."""
    os.rename(tmp, final)


def remove_dir(path: Path) -> None:
    """Rename away first so a crash mid-delete never leaves a half record visible."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def process_start_time(pid: int) -> str | None:
    """Start time of a process (Linux), so a reused pid is not taken for the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        now = process_start_time(pid)
        if now is not None and now != start:
            return False
    # a zombie (exited, not yet reaped) is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock shared by the kernel and the sender (e.g. creating the parent run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def session_owner_alive(meta: dict) -> bool:
    pid = meta.get("pid")
    if not isinstance(pid, int):
        return False
    if meta.get("host") and meta.get("host") != os.uname().nodename:
        return True  # another pod sharing a volume: never judge its kernels dead
    return pid_alive(pid, meta.get("pid_start"))


def list_records(session_dir: Path) -> list[Path]:
    rec = session_dir / "records"
    try:
        names = sorted(n for n in os.listdir(rec) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [rec / n for n in names]


def list_sessions(spool: Path) -> list[Path]:
    try:
        entries = [spool / n for n in os.listdir(spool) if not n.startswith(".")]
    except FileNotFoundError:
        return []
    sessions = [p for p in entries if (p / "session.json").exists()]
    return sorted(sessions, key=lambda p: (read_json(p / "session.json") or {}).get("start", 0))


def pending_count(spool: Path) -> int:
    return sum(len(list_records(s)) for s in list_sessions(spool))


# --------------------------------------------------------------------------- mlflow side


def client_for(tracking_uri: str | None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or None)


def ensure_experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:
        # another kernel or sender created it meanwhile
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def find_run_by_tag(client, experiment_id: str, key: str, value: str):
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{key}` = '{value}'", max_results=2
    )
    return runs[0] if runs else None


def ensure_parent_run(client, session_dir: Path, meta: dict, experiment_id: str) -> str:
    """The session's parent run, created at most once across kernel and sender."""
    id_file = session_dir / "parent_run_id"
    with file_lock(session_dir / ".lock"):
        if id_file.exists():
            return id_file.read_text().strip()
        run = find_run_by_tag(client, experiment_id, TAG_SESSION_PARENT, meta["session_id"])
        if run is None:
            notebook = meta.get("notebook_path") or ""
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta["start"]))
            name = f"{os.path.basename(notebook) or 'kernel'} · {started}"
            tags = {
                **meta.get("context_tags", {}),
                TAG_SESSION_ID: meta["session_id"],
                TAG_SESSION_PARENT: meta["session_id"],
                "mlflow.runName": name,
                "mlflow.source.type": "NOTEBOOK",
                "nebari.kernel.pid": str(meta.get("pid")),
                "nebari.kernel.host": str(meta.get("host")),
                "nebari.kernel.python": str(meta.get("python")),
            }
            if meta.get("user"):
                tags["mlflow.user"] = meta["user"]
            if notebook:
                tags["mlflow.source.name"] = notebook
                tags["nebari.notebook.path"] = notebook
            run = client.create_run(
                experiment_id, start_time=int(meta["start"] * 1000), tags=tags, run_name=name
            )
        run_id = run.info.run_id
        id_file.write_text(run_id)
        return run_id


def cell_run_name(rec: dict) -> str:
    first = next((ln.strip() for ln in rec.get("code", "").splitlines() if ln.strip()), "")
    if len(first) > 40:
        first = first[:39] + "…"
    return f"[{rec.get('execution_count')}] {first}".rstrip()


def cell_tags(rec: dict, meta: dict, parent_run_id: str) -> dict[str, str]:
    code = rec.get("code", "")
    short = code if len(code) <= MAX_TAG_CHARS else code[:MAX_TAG_CHARS] + "\n# … (truncated)"
    tags = {
        **meta.get("context_tags", {}),
        TAG_RECORD_ID: rec["record_id"],
        TAG_SESSION_ID: meta["session_id"],
        "mlflow.parentRunId": parent_run_id,
        "mlflow.runName": cell_run_name(rec),
        "mlflow.source.type": "NOTEBOOK",
        "mlflow.note.content": f"```python\n{short}\n```",
        "nebari.cell.code": short,
        "nebari.cell.execution_count": str(rec.get("execution_count")),
        "nebari.cell.status": rec.get("status", ""),
    }
    if rec.get("cell_id"):
        tags["nebari.cell.id"] = str(rec["cell_id"])
    notebook = rec.get("notebook_path") or meta.get("notebook_path")
    if notebook:
        tags["mlflow.source.name"] = notebook
        tags["nebari.notebook.path"] = notebook
    if meta.get("user"):
        tags["mlflow.user"] = meta["user"]
    if rec.get("error"):
        err = rec["error"]
        tags["nebari.cell.error"] = f"{err.get('ename')}: {err.get('evalue')}"[:MAX_TAG_CHARS]
    return tags


def create_cell_run(client, experiment_id: str, rec: dict, meta: dict, parent_run_id: str):
    return client.create_run(
        experiment_id,
        start_time=int(rec["start"] * 1000),
        tags=cell_tags(rec, meta, parent_run_id),
        run_name=cell_run_name(rec),
    )


def deliver_record(client, rec_dir: Path, meta: dict, experiment_id: str, parent_id: str) -> dict:
    """Make the record's run exist exactly once and complete; raise on any failure."""
    from mlflow.entities import Metric, RunTag

    rec = read_json(rec_dir / "record.json")
    if rec is None:
        raise ValueError(f"unreadable record {rec_dir}")
    state_file = rec_dir / "state.json"
    state = read_json(state_file) or {}
    run_id = state.get("run_id") or rec.get("run_id")
    if run_id is None:
        found = find_run_by_tag(client, experiment_id, TAG_RECORD_ID, rec["record_id"])
        if found is not None:
            run_id = found.info.run_id
            if found.info.status != "RUNNING":
                return rec  # terminated only after everything else: complete
        else:
            run_id = create_cell_run(client, experiment_id, rec, meta, parent_id).info.run_id
        write_json_atomic(state_file, {**state, "run_id": run_id})
    tags = cell_tags(rec, meta, parent_id)
    client.log_batch(
        run_id,
        metrics=[
            Metric(
                "cell_duration_s",
                float(rec.get("duration_s", 0.0)),
                int(rec["end"] * 1000),
                int(rec.get("execution_count") or 0),
            )
        ],
        tags=[RunTag(k, v) for k, v in tags.items() if k != "mlflow.parentRunId"],
    )
    art = rec_dir / "artifacts"
    if art.is_dir() and any(art.iterdir()):
        client.log_artifacts(run_id, str(art))
    client.set_terminated(
        run_id, status=rec.get("status", "FINISHED"), end_time=int(rec["end"] * 1000)
    )
    return rec


# --------------------------------------------------------------------------- the sender


def server_healthy(tracking_uri: str | None, timeout: float = 3.0) -> bool:
    """Cheap probe so a down server is not counted against a record's attempts."""
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")):
        return True
    import urllib.request  # lazily: keeps importing the extension cheap

    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except Exception:
        return False


class Sender:
    """Delivers every session in a spool directory; safe to run in several processes."""

    def __init__(self, spool: Path) -> None:
        self.spool = Path(spool)
        self._clients: dict[str, Any] = {}
        self._experiments: dict[tuple[str, str], str] = {}
        self.blocked = False  # the last pass met a server that was down

    def _client(self, uri: str | None):
        key = uri or ""
        if key not in self._clients:
            self._clients[key] = client_for(uri)
        return self._clients[key]

    def drain_once(self) -> int:
        """One pass over the spool; returns how many records remain."""
        for session_dir in list_sessions(self.spool):
            try:
                self._drain_session(session_dir)
            except Exception as exc:
                self.blocked = self.blocked or isinstance(exc, ConnectionError)
                log.debug("session %s not delivered: %r", session_dir.name, exc)
        return pending_count(self.spool)

    def _drain_session(self, session_dir: Path) -> None:
        meta = read_json(session_dir / "session.json")
        if not meta:
            return
        records = list_records(session_dir)
        end = read_json(session_dir / "end.json")
        alive = end is None and session_owner_alive(meta)
        parent_known = (session_dir / "parent_run_id").exists()
        if not records and alive:
            return
        if not records and not parent_known:
            remove_dir(session_dir)  # a session without cells leaves no run
            return
        uri = meta.get("tracking_uri")
        if not server_healthy(uri):
            raise ConnectionError(f"tracking server {uri} not healthy")
        client = self._client(uri)
        key = (uri or "", meta["experiment"])
        if key not in self._experiments:
            self._experiments[key] = ensure_experiment(client, meta["experiment"])
        exp_id = self._experiments[key]
        parent_id = ensure_parent_run(client, session_dir, meta, exp_id)
        failed = False
        with ThreadPoolExecutor(DELIVERY_THREADS) as pool:
            futures = {
                pool.submit(deliver_record, client, r, meta, exp_id, parent_id): r for r in records
            }
            last_end = 0.0
            for fut, rec_dir in futures.items():
                try:
                    rec = fut.result()
                except Exception as exc:
                    failed = True
                    self._count_failure(rec_dir, uri, exc)
                    continue
                last_end = max(last_end, rec.get("end") or 0.0)
                remove_dir(rec_dir)
                log.debug("delivered %s", rec_dir.name)
        if last_end:
            write_json_atomic(session_dir / "last.json", {"end": last_end})
        if failed:
            return
        if alive:
            return
        if list_records(session_dir):
            return
        end = read_json(session_dir / "end.json")
        if end is not None:
            client.set_terminated(parent_id, "FINISHED", end_time=int(end["end"] * 1000))
        else:
            last = (read_json(session_dir / "last.json") or {}).get("end", time.time())
            client.set_terminated(parent_id, "KILLED", end_time=int(last * 1000))
        remove_dir(session_dir)
        log.debug("session %s closed", session_dir.name)

    def _count_failure(self, rec_dir: Path, uri: str | None, exc: Exception) -> None:
        log.debug("record %s not delivered: %r", rec_dir.name, exc)
        if not server_healthy(uri):
            return
        state = read_json(rec_dir / "state.json") or {}
        state["attempts"] = state.get("attempts", 0) + 1
        state["last_error"] = repr(exc)[:2000]
        if state["attempts"] >= MAX_ATTEMPTS:
            bad = self.spool / ".failed"
            bad.mkdir(exist_ok=True)
            write_json_atomic(rec_dir / "state.json", state)
            os.rename(rec_dir, bad / f"{rec_dir.parent.parent.name}-{rec_dir.name}")
            log.warning("record %s quarantined after %s attempts", rec_dir.name, MAX_ATTEMPTS)
        else:
            write_json_atomic(rec_dir / "state.json", state)


def run_sender(spool: Path, owner_pid: int | None, poll: float, linger: float) -> int:
    """Loop until the owner kernel is gone and the spool is empty (or `linger` ran out)."""
    spool.mkdir(parents=True, exist_ok=True)
    lock_fh = open(spool / ".sender.lock", "a+")  # noqa: SIM115 - held for the process' life
    have_lock = False
    sender = Sender(spool)
    backoff = poll
    owner_gone_at: float | None = None
    while True:
        if owner_gone_at is None and owner_pid is not None and not pid_alive(owner_pid):
            owner_gone_at = time.monotonic()
        if not have_lock:
            try:
                fcntl.flock(lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if owner_gone_at is not None:
                    return 0  # the lock holder delivers everything before it exits
                time.sleep(max(poll, 1.0))
                continue
            have_lock = True
            lock_fh.seek(0)
            lock_fh.truncate()
            lock_fh.write(str(os.getpid()))
            lock_fh.flush()
        sender.blocked = False
        try:
            remaining = sender.drain_once()
        except Exception as exc:  # never die on a bad pass
            log.debug("pass failed: %r", exc)
            remaining = -1
        if remaining == 0 and owner_gone_at is not None:
            return 0
        if owner_gone_at is not None and time.monotonic() - owner_gone_at > linger:
            log.debug("owner gone and %s records left; the next session delivers them", remaining)
            return 0
        # back off only while the server is down; a live server with work left is drained now
        backoff = min(backoff * 2, MAX_BACKOFF) if sender.blocked else poll
        time.sleep(backoff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    send = sub.add_parser("send", help="deliver the spool to MLflow")
    send.add_argument("--dir", type=Path, default=default_spool_dir())
    send.add_argument("--owner-pid", type=int, default=None)
    send.add_argument("--poll", type=float, default=0.25)
    send.add_argument("--linger", type=float, default=60.0)
    send.add_argument("--debug", action="store_true")
    stat = sub.add_parser("status", help="print how many records wait in the spool")
    stat.add_argument("--dir", type=Path, default=default_spool_dir())
    args = parser.parse_args(argv)
    if args.cmd == "status":
        print(pending_count(args.dir))
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        args.dir / "sender.log", maxBytes=1_000_000, backupCount=1
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.debug else logging.WARNING)
    # background work: let the kernel (and anything interactive) win the CPU
    with contextlib.suppress(OSError):
        os.nice(10)
    # fail fast and let the spool retry, instead of MLflow's minutes-long retry loop
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    return run_sender(args.dir, args.owner_pid, args.poll, args.linger)


if __name__ == "__main__":
    sys.exit(main())
