"""IPython extension: record every executed cell as an MLflow run.

Load with ``%load_ext nebari_mlflow_plugin.notebook.capture`` or use the
"Python 3 (MLflow tracked)" kernel (``python -m nebari_mlflow_plugin.notebook.kernel
install``). One parent run per kernel session; one child run per cell with its
code, stdout/stderr, rich outputs (images the MLflow UI previews, HTML, text),
status (FAILED plus the traceback when the cell raised), execution count, cell
id, duration and notebook path.

Critical path. ``pre_run_cell``/``post_run_cell`` only take timestamps and
references and put one record on a bounded in-memory queue (microseconds). A
daemon thread writes each record to an on-disk spool (``spool.py``); a separate
sender process delivers the spool to MLflow, so neither the mlflow import (~2 s
of CPU) nor HTTP ever competes with user code for the GIL, a down server costs
the kernel nothing, and a SIGKILLed kernel's records are delivered by the next
session's sender. A full queue drops records (counted, logged) rather than block.

Autologging trade-off. MLflow assigns run ids on the server, so a cell run
cannot be active from the start of every cell without a network round trip per
cell. Instead, while a cell runs, MLflow's per-thread active-run stack is
replaced by a lazy stand-in: the first time MLflow asks for the active run
(``mlflow.active_run()``, ``log_*``, autologging's managed-run check), the cell's
run is created synchronously and made active, so autologged params, metrics and
models land in the cell's run. Only cells that use MLflow touch the network, as
they would anyway. ``mlflow.start_run()``/``end_run()`` do not trigger it, so a
user's own runs keep working; the extension never ends a run it did not open.
If the user picked another experiment or tracking URI, or the server is down,
nothing is made active and MLflow behaves as without the extension.

Configuration (environment first, then the old kernel's
``~/.jupyter/mlflow_kernel_config.json``: ``mlflow_tracking_uri``,
``debug_enabled``, ``default_experiment_name``):

``NEBARI_MLFLOW_CAPTURE``                 ``0`` makes the extension inert (admin switch)
``NEBARI_MLFLOW_CAPTURE_TRACKING_URI``    default ``MLFLOW_TRACKING_URI``
``NEBARI_MLFLOW_CAPTURE_EXPERIMENT``      default: json key, ``MLFLOW_EXPERIMENT_NAME``,
                                          ``notebook-cells``
``NEBARI_MLFLOW_CAPTURE_MAX_OUTPUT_BYTES`` cap per stream and per output (1 MiB)
``NEBARI_MLFLOW_CAPTURE_MAX_OUTPUTS``     rich outputs kept per cell (20)
``NEBARI_MLFLOW_CAPTURE_REDACT``          extra regexes (JSON list or one per line); a
                                          group named ``secret`` masks only that group
``NEBARI_MLFLOW_CAPTURE_REDACT_ENV``      extra env var names whose values are masked
``NEBARI_MLFLOW_CAPTURE_SPOOL_DIR``       default ``~/.cache/nebari-mlflow/spool``
``NEBARI_MLFLOW_CAPTURE_QUEUE_SIZE``      in-memory queue bound (1000)
``NEBARI_MLFLOW_CAPTURE_SENDER_LINGER``  seconds the sender keeps retrying after the
                                          kernel exited (60); the next session resumes
``NEBARI_MLFLOW_CAPTURE_MAX_BACKOFF``     longest retry interval while the server is down (5)
``NEBARI_MLFLOW_CAPTURE_DEBUG``           ``1``: debug log in ``<spool>/capture.log``
``NEBARI_MLFLOW_CAPTURE_CONFIG_FILE``     path of the old kernel's json config
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import getpass
import importlib.abc
import importlib.util
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import spool as _spool
from . import tags as _tags

log = logging.getLogger("nebari_mlflow_plugin.notebook.capture")

PREFIX = "NEBARI_MLFLOW_CAPTURE"
OLD_CONFIG = "~/.jupyter/mlflow_kernel_config.json"
DEFAULT_EXPERIMENT = "notebook-cells"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Env var names whose values are masked wherever they appear in code or outputs.
SECRET_ENV_NAME = re.compile(
    r"(TOKEN|SECRET|PASSW(OR)?D|API_?KEY|ACCESS_KEY|CREDENTIAL|PRIVATE_KEY|AUTH)", re.I
)
DEFAULT_REDACT = [
    r"AKIA[0-9A-Z]{16}",
    r"gh[pousr]_[A-Za-z0-9]{30,}",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"(?i)\b(?:password|passwd|secret|token|api_?key)\b\s*[=:]\s*['\"]?(?P<secret>[^\s'\"]{4,})",
]
MASK = "********"


@dataclass
class Config:
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    max_output_bytes: int = 1 << 20
    max_outputs: int = 20
    redact: list[str] = field(default_factory=list)
    redact_env: list[str] = field(default_factory=list)
    spool_dir: Path = field(default_factory=_spool.default_spool_dir)
    queue_size: int = 1000
    sender_linger: float = 60.0
    debug: bool = False


def load_config(env: dict[str, str] | None = None) -> Config:
    """Environment first, then the old kernel's json file, then defaults."""
    env = dict(os.environ if env is None else env)
    path = Path(os.path.expanduser(env.get(f"{PREFIX}_CONFIG_FILE", OLD_CONFIG)))
    old: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text())
        old = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass

    def flag(value: Any, default: bool) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else default

    redact_raw = env.get(f"{PREFIX}_REDACT", "").strip()
    if redact_raw.startswith("["):
        try:
            redact = [str(p) for p in json.loads(redact_raw)]
        except ValueError:
            redact = []
    else:
        redact = [ln for ln in redact_raw.splitlines() if ln.strip()]
    return Config(
        enabled=flag(env.get(PREFIX, "1"), True),
        tracking_uri=env.get(f"{PREFIX}_TRACKING_URI")
        or env.get("MLFLOW_TRACKING_URI")
        or old.get("mlflow_tracking_uri")
        or None,
        experiment=env.get(f"{PREFIX}_EXPERIMENT")
        or old.get("default_experiment_name")
        or env.get("MLFLOW_EXPERIMENT_NAME")
        or DEFAULT_EXPERIMENT,
        max_output_bytes=int(env.get(f"{PREFIX}_MAX_OUTPUT_BYTES", 1 << 20)),
        max_outputs=int(env.get(f"{PREFIX}_MAX_OUTPUTS", 20)),
        redact=redact,
        redact_env=[n.strip() for n in env.get(f"{PREFIX}_REDACT_ENV", "").split(",") if n.strip()],
        spool_dir=Path(
            os.path.expanduser(env.get(f"{PREFIX}_SPOOL_DIR", "") or _spool.default_spool_dir())
        ),
        queue_size=int(env.get(f"{PREFIX}_QUEUE_SIZE", 1000)),
        sender_linger=float(env.get(f"{PREFIX}_SENDER_LINGER", 60)),
        debug=flag(env.get(f"{PREFIX}_DEBUG", old.get("debug_enabled", False)), False),
    )


class Redactor:
    """Masks secrets in text written to the spool (runs on the writer thread)."""

    def __init__(self, patterns: list[str], env_names: list[str]) -> None:
        self.patterns = []
        for p in [*DEFAULT_REDACT, *patterns]:
            try:
                self.patterns.append(re.compile(p))
            except re.error as exc:
                log.debug("bad redaction pattern %r: %s", p, exc)
        self.env_names = set(env_names)

    def secret_values(self) -> list[str]:
        values = {
            v
            for k, v in os.environ.items()
            if (k in self.env_names or SECRET_ENV_NAME.search(k)) and len(v) >= 6
        }
        return sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.secret_values():
            if value in text:
                text = text.replace(value, MASK)
        for pat in self.patterns:
            text = pat.sub(self._mask, text)
        return text

    @staticmethod
    def _mask(m: re.Match) -> str:
        if "secret" in m.re.groupindex and m.group("secret") is not None:
            s, e = m.span("secret")
            return m.string[m.start() : s] + MASK + m.string[e : m.end()]
        return MASK


class _Capped:
    """Append-only text buffer that stops growing at a cap (cheap on the hot path)."""

    __slots__ = ("cap", "chunks", "size", "truncated")

    def __init__(self, cap: int) -> None:
        self.cap, self.chunks, self.size, self.truncated = cap, [], 0, False

    def add(self, text: str) -> None:
        if self.size < self.cap:
            self.chunks.append(text)
            self.size += len(text)
        else:
            self.truncated = True

    def text(self) -> str:
        out = "".join(self.chunks)
        if len(out) > self.cap or self.truncated:
            return out[: self.cap] + "\n… (truncated by nebari-mlflow capture)\n"
        return out


# --------------------------------------------------------------------------- spool writer


_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/svg+xml": "svg", "image/gif": "gif"}


class Recorder:
    """Bounded queue + daemon writer thread that turns records into spool entries."""

    def __init__(self, cfg: Config, session: dict) -> None:
        self.cfg = cfg
        self.session = session
        self.session_dir = cfg.spool_dir / session["session_id"]
        self.queue: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self.dropped = 0
        self.redact = Redactor(cfg.redact, cfg.redact_env)
        self._sender: Any = None  # subprocess.Popen
        self._thread = threading.Thread(target=self._run, name="mlflow-capture-writer", daemon=True)
        self._thread.start()

    def put(self, item: dict) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            log.debug("queue full: dropped record %s", item.get("record_id"))

    def close(self, timeout: float = 3.0) -> None:
        """Flush what is queued (bounded), then mark the session ended."""
        self.put({"kind": "end", "end": time.time()})
        self.put({"kind": "stop"})
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.session_dir.joinpath("records").mkdir(parents=True, exist_ok=True)
            _spool.write_json_atomic(self.session_dir / "session.json", self.session)
            self._ensure_sender()
        except Exception as exc:
            log.debug("cannot start the spool: %r", exc)
        while True:
            item = self.queue.get()
            kind = item.get("kind")
            if kind == "stop":
                return
            try:
                if kind == "end":
                    _spool.write_json_atomic(self.session_dir / "end.json", {"end": item["end"]})
                else:
                    self._write_cell(item)
                self._ensure_sender()
            except Exception as exc:  # tracking must never hurt the kernel
                log.debug("spool write failed: %r", exc)

    def _ensure_sender(self) -> None:
        """(Re)start the sender process; it outlives the kernel to finish delivering."""
        if self._sender is not None and self._sender.poll() is None:
            return
        import subprocess  # on the writer thread, not at import

        args = [
            sys.executable, _spool.__file__, "send",
            "--dir", str(self.cfg.spool_dir), "--owner-pid", str(os.getpid()),
            "--linger", str(self.cfg.sender_linger),
        ]  # fmt: skip
        if self.cfg.debug:
            args.append("--debug")
        self._sender = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def _write_cell(self, item: dict) -> None:
        cfg, red = self.cfg, self.redact
        name = f"{item['seq']:08d}-{item['record_id']}"
        final = self.session_dir / "records" / name
        tmp = self.session_dir / "records" / f".tmp-{name}"
        art = tmp / "artifacts"
        (art / "outputs").mkdir(parents=True, exist_ok=True)
        code = red(item["code"])
        (art / "code.py").write_text(code)
        for stream in ("stdout", "stderr"):
            text = item[stream].text()
            if text:
                (art / f"{stream}.txt").write_text(red(text))
        error = item.get("error")
        if error is not None:
            tb = error.pop("traceback_lines", None)
            exc = error.pop("exception", None)
            if tb:
                text = "\n".join(tb)
            elif exc is not None:
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            else:
                text = f"{error.get('ename')}: {error.get('evalue')}"
            text = red(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text))
            (art / "traceback.txt").write_text(text)
            error["evalue"] = red(str(error.get("evalue", "")))[:2000]
        for n, (data, _md) in enumerate(item["outputs"][: cfg.max_outputs], start=1):
            self._write_output(art / "outputs", n, data)
        if not any((art / "outputs").iterdir()):
            (art / "outputs").rmdir()
        rec = {
            "kind": "cell",
            **{k: item[k] for k in ("record_id", "seq", "execution_count", "cell_id", "start")},
            **{k: item[k] for k in ("end", "duration_s", "status", "run_id", "notebook_path")},
            "code": code,
            "error": error,
            "outputs_dropped": max(0, len(item["outputs"]) - cfg.max_outputs),
        }
        _spool.write_json_atomic(tmp / "record.json", rec)
        _spool.commit_dir(tmp, final)

    def _write_output(self, folder: Path, n: int, data: dict) -> None:
        cap = self.cfg.max_output_bytes
        wrote = False
        for mime, ext in _EXT.items():
            value = data.get(mime)
            if value is None:
                continue
            if ext == "svg":
                raw = value.encode() if isinstance(value, str) else bytes(value)
            elif isinstance(value, str):
                raw = base64.b64decode(value)
            else:
                raw = bytes(value)
            if len(raw) <= cap:
                (folder / f"output-{n:02d}.{ext}").write_bytes(raw)
                wrote = True
        for mime, ext in (("text/html", "html"), ("text/markdown", "md")):
            value = data.get(mime)
            if isinstance(value, str):
                (folder / f"output-{n:02d}.{ext}").write_text(self.redact(value[:cap]))
                wrote = True
        if "application/json" in data and not wrote:
            text = json.dumps(data["application/json"], default=str)[:cap]
            (folder / f"output-{n:02d}.json").write_text(self.redact(text))
            wrote = True
        if not wrote and isinstance(data.get("text/plain"), str):
            (folder / f"output-{n:02d}.txt").write_text(self.redact(data["text/plain"][:cap]))


# --------------------------------------------------------------------------- lazy cell run

# MLflow functions that read the active-run stack but must see only the user's runs.
_NO_MATERIALIZE = frozenset({"start_run", "end_run"})


class _CellRunStack(list):
    """Stands in for MLflow's active-run stack during one cell; see module docstring."""

    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self.capture = capture
        self.tried = False
        self.run: Any = None

    def _size(self, caller: str) -> int:
        n = list.__len__(self)
        if n == 0 and not self.tried and caller not in _NO_MATERIALIZE:
            self.tried = True
            run = self.capture.materialize()
            if run is not None:
                self.run = run
                list.append(self, run)
                n = 1
        return n

    def __len__(self) -> int:
        return self._size(sys._getframe(1).f_code.co_name)

    def __bool__(self) -> bool:
        return self._size(sys._getframe(1).f_code.co_name) > 0


class _FluentImportHook(importlib.abc.MetaPathFinder):
    """Installs the lazy stack when a cell imports mlflow for the first time."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "mlflow.tracking.fluent":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        original = getattr(loader, "exec_module", None)
        if original is None:
            return spec
        capture = self.capture

        def exec_module(module: Any) -> None:
            original(module)
            try:
                capture.install_stack(module)
            except Exception as exc:
                log.debug("cannot install the cell run stack: %r", exc)

        loader.exec_module = exec_module
        return spec


# --------------------------------------------------------------------------- the extension


class Capture:
    """Hooks one IPython shell; everything on the cell's path is O(1) and local."""

    def __init__(self, shell: Any, cfg: Config) -> None:
        self.shell = shell
        self.cfg = cfg
        now = time.time()
        self.session = {
            "session_id": uuid.uuid4().hex,
            "pid": os.getpid(),
            "pid_start": _spool.process_start_time(os.getpid()),
            "host": os.uname().nodename,
            "start": now,
            "tracking_uri": cfg.tracking_uri,
            "experiment": cfg.experiment,
            "notebook_path": self.notebook_path(),
            "python": sys.version.split()[0],
            "user": os.environ.get("JUPYTERHUB_USER") or _user(),
            # What fluent runs get from the run-context provider (project, conda
            # env, pod, workflow), read here: the sender may serve other kernels.
            "context_tags": _context_tags(),
        }
        self.recorder = Recorder(cfg, self.session)
        self.seq = 0
        self.cell: dict | None = None
        self.stack: _CellRunStack | None = None
        self._patches: list[tuple[Any, str, Any]] = []
        self._import_hook: _FluentImportHook | None = None
        self._closed = False

    # -- wiring
    def start(self) -> None:
        self._patch_stream(sys.stdout, "stdout")
        self._patch_stream(sys.stderr, "stderr")
        pub = getattr(self.shell, "display_pub", None)
        if pub is not None:
            self._wrap(pub, "publish")
        hook = getattr(self.shell, "displayhook", None)
        if hook is not None and hasattr(hook, "write_format_data"):
            self._wrap(hook, "write_format_data")
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        if "mlflow.tracking.fluent" not in sys.modules:
            self._import_hook = _FluentImportHook(self)
            sys.meta_path.insert(0, self._import_hook)
        atexit.register(self.close)

    def stop(self) -> None:
        for ev, cb in (("pre_run_cell", self.pre_run_cell), ("post_run_cell", self.post_run_cell)):
            with contextlib.suppress(ValueError):
                self.shell.events.unregister(ev, cb)
        for obj, name, original in reversed(self._patches):
            try:
                if original is None:
                    delattr(obj, name)
                else:
                    setattr(obj, name, original)
            except AttributeError:
                pass
        self._patches.clear()
        if self._import_hook in sys.meta_path:
            sys.meta_path.remove(self._import_hook)
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.recorder.close()

    def _wrap(self, obj: Any, name: str) -> None:
        """Keep a reference to every rich output (decoded later, on the writer thread)."""
        original = getattr(obj, name)
        had_own = name in getattr(obj, "__dict__", {})

        def wrapper(data: Any, *args: Any, **kwargs: Any) -> Any:
            if self.cell is not None and isinstance(data, dict):
                self.cell["outputs"].append((data, None))
            return original(data, *args, **kwargs)

        setattr(obj, name, wrapper)
        self._patches.append((obj, name, original if had_own else None))

    def _patch_stream(self, stream: Any, which: str) -> None:
        """Tee ipykernel's OutStream.write; plain terminal streams are left alone."""
        try:
            original = stream.write
            had_own = "write" in stream.__dict__

            def write(text: Any, *args: Any, **kwargs: Any) -> Any:
                cell = self.cell
                if cell is not None and isinstance(text, str):
                    cell[which].add(text)
                return original(text, *args, **kwargs)

            stream.write = write
            self._patches.append((stream, "write", original if had_own else None))
        except (AttributeError, TypeError):
            log.debug("%s is not patchable; its text is not recorded", which)

    # -- hot path
    def pre_run_cell(self, info: Any) -> None:
        try:
            cap = self.cfg.max_output_bytes
            self.seq += 1
            self.cell = {
                "kind": "cell",
                "record_id": uuid.uuid4().hex,
                "seq": self.seq,
                "code": getattr(info, "raw_cell", "") or "",
                "cell_id": getattr(info, "cell_id", None),
                "start": time.time(),
                "t0": time.perf_counter(),
                "stdout": _Capped(cap),
                "stderr": _Capped(cap),
                "outputs": [],
                "run_id": None,
            }
            fluent = sys.modules.get("mlflow.tracking.fluent")
            if fluent is not None:
                self.install_stack(fluent)
        except Exception as exc:
            self.cell = None
            log.debug("pre_run_cell: %r", exc)

    def post_run_cell(self, result: Any) -> None:
        cell, self.cell = self.cell, None
        if cell is None:
            return
        try:
            self._remove_stack()
            cell["end"] = time.time()
            cell["duration_s"] = time.perf_counter() - cell.pop("t0")
            cell["execution_count"] = getattr(result, "execution_count", None)
            cell["notebook_path"] = self.notebook_path()
            err = getattr(result, "error_in_exec", None) or getattr(
                result, "error_before_exec", None
            )
            if err is not None:
                cell["status"] = "FAILED"
                cell["error"] = {
                    "ename": type(err).__name__,
                    "evalue": str(err),
                    "traceback_lines": list(getattr(self.shell, "_last_traceback", None) or []),
                    "exception": err,
                }
            else:
                cell["status"] = "FINISHED"
                cell["error"] = None
            self.recorder.put(cell)
        except Exception as exc:
            log.debug("post_run_cell: %r", exc)

    def notebook_path(self) -> str | None:
        ns = getattr(self.shell, "user_ns", {}) or {}
        return (
            ns.get("__vsc_ipynb_file__")
            or ns.get("__session__")
            or os.environ.get("JPY_SESSION_NAME")
            or None
        )

    # -- the lazy cell run
    def install_stack(self, fluent: Any) -> None:
        if self.cell is None or threading.current_thread() is not threading.main_thread():
            return
        current = fluent._active_run_stack.get()
        if type(current) is list and not current:
            self.stack = _CellRunStack(self)
            fluent._active_run_stack.set(self.stack)

    def _remove_stack(self) -> None:
        stack, self.stack = self.stack, None
        fluent = sys.modules.get("mlflow.tracking.fluent")
        if stack is None or fluent is None:
            return
        if fluent._active_run_stack.get() is stack:
            rest = [r for r in list.__iter__(stack) if r is not stack.run]
            fluent._active_run_stack.set(rest)

    def materialize(self) -> Any:
        """Create this cell's run now (the cell is using MLflow) and return it as ActiveRun."""
        cell = self.cell
        if cell is None:
            return None
        try:
            import mlflow
            from mlflow.tracking import fluent

            uri = self.cfg.tracking_uri
            if fluent._active_experiment_id is not None:
                return None  # the user chose an experiment: respect it
            if uri and mlflow.get_tracking_uri().rstrip("/") != uri.rstrip("/"):
                return None
            if not _spool.server_healthy(uri, timeout=2.0):
                return None
            client = _spool.client_for(uri)
            exp_id = _spool.ensure_experiment(client, self.cfg.experiment)
            self.recorder.session_dir.mkdir(parents=True, exist_ok=True)
            parent = _spool.ensure_parent_run(
                client, self.recorder.session_dir, self.session, exp_id
            )
            rec = {
                **{k: cell[k] for k in ("record_id", "code", "cell_id", "start")},
                "execution_count": getattr(self.shell, "execution_count", None),
                "notebook_path": self.notebook_path(),
                "status": "RUNNING",
            }
            run = _spool.create_cell_run(client, exp_id, rec, self.session, parent)
            cell["run_id"] = run.info.run_id
            return fluent.ActiveRun(run)
        except Exception as exc:
            log.debug("cell run not made active: %r", exc)
            return None


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


_capture: Capture | None = None


def _setup_logging(cfg: Config) -> None:
    if not cfg.debug or log.handlers:
        return
    try:
        cfg.spool_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(cfg.spool_dir / "capture.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    except OSError:
        pass


def _context_tags() -> dict[str, str]:
    try:
        return _tags.nebari_tags() if _tags.in_nebari() else {}
    except Exception:  # a tag is never worth a lost session
        return {}


def load_ipython_extension(ipython: Any) -> None:
    global _capture
    if _capture is not None:
        return
    try:
        cfg = load_config()
        _setup_logging(cfg)
        if not cfg.enabled:
            log.debug("disabled by %s", PREFIX)
            return
        # Admins turn capture on for every kernel; environments without MLflow
        # have nothing to record with (and no sender to deliver the spool).
        if importlib.util.find_spec("mlflow") is None:
            log.debug("mlflow is not installed in %s", sys.prefix)
            return
        if not cfg.tracking_uri:
            print(
                "nebari-mlflow capture: no tracking URI (set MLFLOW_TRACKING_URI); "
                "cells are not recorded",
                file=sys.stderr,
            )
            return
        _capture = Capture(ipython, cfg)
        _capture.start()
        log.debug("capturing session %s", _capture.session["session_id"])
    except Exception as exc:  # a broken extension must not break the kernel
        log.debug("capture not started: %r", exc)
        _capture = None


def unload_ipython_extension(ipython: Any) -> None:
    global _capture
    if _capture is not None:
        _capture.stop()
        _capture = None
