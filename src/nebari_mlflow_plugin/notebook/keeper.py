"""Workflow tokens kept valid without the user asking, wherever the server's token works.

Argo workflow steps (`jupyterflow-override`) and scheduled jobs copy the server's
`JUPYTERHUB_API_TOKEN`, which JupyterHub deletes when the server stops (Nebari culls idle
servers after 30 minutes); they send the workflow token of the user's home instead
(tokens.py, auth.py). So the package makes that token wherever the server's token can:
- in a process of a user's JupyterLab server (JUPYTERHUB_API_URL/USER/API_TOKEN set, not
  a workflow step or scheduled job: tags.in_workflow_step), each request to the pod's
  MLflow (auth.py: kernels, terminals, scripts, the cell-capture sender) has it mint a
  new one when the file is missing, unreadable, someone else's, or has less than half of
  the deployment's lifetime left. So workflow steps keep MLflow until at least half a
  lifetime (18 h by default) after MLflow was last used in the server, whenever it
  stopped. Half of the deployment's lifetime, not of the token's own: a renewal never
  brings the file's expiry forward, so a longer token the user made is kept until then.
- in a workflow step or scheduled job (same variables, its copy of the server's token),
  only when there is no usable token (missing, unreadable, someone else's, or less than
  STEP_RENEW_SECONDS left): a step that runs while the server does makes the token the
  later steps need, for a user who never used MLflow in JupyterLab. It never renews a
  usable token, so once the server is gone steps do not try (and fail) over and over.

On the calling thread it costs a clock read (at most once per CHECK_SECONDS also the
environment and a thread start): the file is read and the token minted in a daemon
thread, at most once per process per CHECK_SECONDS; processes of one user take turns
through a lock file and re-read the file first, so they mint once between them. It
never raises; a failure is logged once per process, at WARNING, with the reason and
what to do. A process that exits while a mint is under way waits for it up to
EXIT_WAIT_SECONDS. `mlflow.auth.workflow_tokens: manual` (NEBARI_MLFLOW_WORKFLOW_TOKENS)
turns it off.
"""

from __future__ import annotations

import _thread
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import tokens
from .tags import in_workflow_step

# "auto" (default) or "manual": mlflow.auth.workflow_tokens, injected into user pods.
MODE_ENV = "NEBARI_MLFLOW_WORKFLOW_TOKENS"
MANUAL = "manual"
HUB_ENV = ("JUPYTERHUB_API_URL", "JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN")
# At most one look at the file (and one mint attempt) per process this often.
CHECK_SECONDS = 600.0
# A step makes a token only when the file's has less than this left (see the docstring).
STEP_RENEW_SECONDS = CHECK_SECONDS
EXIT_WAIT_SECONDS = 5.0
NOTE = "MLflow workflow token, kept by JupyterLab (nebari-mlflow-plugin)"

log = logging.getLogger(__name__)


LAB = "lab"
STEP = "step"


def role() -> str | None:
    """LAB in a process of a user's JupyterLab server, STEP in a workflow step or
    scheduled job that carries the server's token, None where nothing is kept."""
    if os.environ.get(MODE_ENV, "").strip().lower() == MANUAL:
        return None
    if not all(os.environ.get(name) for name in HUB_ENV):
        return None
    return STEP if in_workflow_step() else LAB


def renew_within(of_role: str | None, lifetime: float) -> float:
    """How close to its expiry a token is replaced: half the lifetime in JupyterLab,
    only when (nearly) unusable in a step (never sooner than JupyterLab would)."""
    return min(STEP_RENEW_SECONDS, lifetime / 2) if of_role == STEP else lifetime / 2


def refresh_reason(text: str | None, user: str, renew: float, now: float) -> str | None:
    """Why the token file (its `text`, None when absent) needs a new token, or None:
    among others, when less than `renew` seconds (renew_within) are left."""
    if text is None:
        return "there is none"
    try:
        saved = tokens.parse(text)
    except ValueError:
        return "the file is unreadable"
    if saved.user is not None and saved.user != user:
        return f"the file holds a token of {saved.user!r}"
    left = saved.expires_at - now
    if left < renew:
        return f"it expires in {max(left, 0) / 3600:.1f} h"
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable: replaced


@contextmanager
def _turn(path: Path) -> Iterator[bool]:
    """Whether this process may mint now: kernels of one user take turns (flock on a lock
    file beside the token); where locks are unsupported, everyone may."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl

        fd = os.open(f"{path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except (ImportError, OSError):
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mine = True
        except BlockingIOError:
            mine = False  # another process of the user is at it
        except OSError:
            mine = True  # no locks on this filesystem
        yield mine
    finally:
        os.close(fd)  # releases the lock


class Keeper:
    """The per-process state: when the file is looked at next, whether a failure was told."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 interval: float = CHECK_SECONDS) -> None:  # fmt: skip
        self.clock = clock
        self.interval = interval
        self.next_check = 0.0
        self.warned = False
        self.role: str | None = None
        self.done: threading.Event | None = None  # set when the last check ended
        self._lock = threading.Lock()

    def poke(self) -> None:
        """Start a check in the background if one is due; never blocks nor raises."""
        if self.clock() < self.next_check:
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = self.clock()
            if now < self.next_check:
                return
            self.role = role()
            if self.role is None:
                self.next_check = float("inf")  # a process's role does not change
                return
            self.next_check = now + self.interval
            self.done = threading.Event()
            # A bare thread (daemon by nature): Thread.start() would wait until the new
            # thread runs, milliseconds on a loaded machine.
            _thread.start_new_thread(self._background, (self.done,))
            _wait_at_exit(self.done)
        except Exception as exc:  # never worth a failed request or kernel
            log.debug("workflow token check not started: %r", exc)
        finally:
            self._lock.release()

    def _background(self, done: threading.Event) -> None:
        try:
            self.check()
        finally:
            done.set()

    def check(self) -> bool:
        """Mint a new token if the file needs one; True if one was made."""
        self.role = self.role or role()
        try:
            path = tokens.token_file()
            with _turn(path) as mine:
                if not mine:
                    return False
                user = os.environ.get("JUPYTERHUB_USER", "")
                renew = renew_within(self.role, tokens.lifetime())
                reason = refresh_reason(_read(path), user, renew, time.time())
                if reason is None:
                    return False
                tokens.mint_workflow_token(note=NOTE)
                log.debug("new workflow token in %s (%s)", path, reason)
                return True
        except Exception as exc:
            self._failed(exc)
            return False

    def _failed(self, exc: Exception) -> None:
        why = str(exc) if isinstance(exc, tokens.TokenError) else repr(exc)
        if self.warned:
            log.debug("workflow token not renewed: %s", why)
            return
        self.warned = True
        path = str(tokens.token_file())
        log.warning("%s", failure_message(path, why, self.interval, step=self.role == STEP))


def failure_message(path: str, why: str, interval: float, step: bool = False) -> str:
    if step:
        return (
            f"nebari-mlflow: could not keep a workflow token in {path}, so this step sends "
            f"its copy of the JupyterLab server's token, which ends when that server "
            f"stops: {why}. Run `python -m nebari_mlflow_plugin.notebook.tokens` in "
            "JupyterLab before submitting."
        )
    return (
        f"nebari-mlflow: could not keep a workflow token in {path}, so workflow steps and "
        f"scheduled jobs submitted from here lose MLflow once this server stops: {why}. "
        f"It tries again in {interval / 60:g} min; or run "
        "`python -m nebari_mlflow_plugin.notebook.tokens`."
    )


_keeper = Keeper()
_minting: list[threading.Event] = []  # checks under way, waited for at exit
_hooked = False


def _wait_at_exit(done: threading.Event) -> None:
    global _hooked
    if not _hooked:
        import atexit

        atexit.register(_join)
        _hooked = True
    _minting[:] = [d for d in _minting if not d.is_set()] + [done]


def _join() -> None:
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for done in _minting:
        done.wait(max(0.0, deadline - time.monotonic()))


def keep_fresh() -> None:
    """The hook of auth.py's requests (see the module's docstring)."""
    _keeper.poke()
