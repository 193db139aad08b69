"""What MLflow queued asynchronously reaches the server when the process exits
without `end_run` (a kernel shut down with a run open, a script that just ends).

MLflow's asynchronous logging sends from thread pools and flushes in an `atexit`
handler, but Python stops thread pools (concurrent.futures' exit hook) before it
runs `atexit` handlers: what is still queued then is dropped ("Failed to submit
batch for logging: cannot schedule new futures after shutdown"). Measured: 2,000
points logged in a kernel shut down with the run open, 1,295 arrived. Here the
flush runs among Python's thread-exit hooks, ahead of the pools' shutdown (those
hooks run last registered first). Installed by the run context provider when a run
starts and by the request auth provider; a no-op without queued data; never raises.
Only towards a tracking URI someone named (the pod's variable, `set_tracking_uri`):
unnamed (outside Nebari), our flush would build MLflow's default store, a `mlflow.db`
in the working directory, even in a process that logged nothing; MLflow's own
`atexit` flush is left to that case.
"""

from __future__ import annotations

import threading

_installed = False
_lock = threading.Lock()


def _flush() -> None:
    try:
        import mlflow
        from mlflow.tracking import is_tracking_uri_set

        if is_tracking_uri_set():
            mlflow.flush_async_logging()
    except Exception:  # exiting: nothing left to tell the user with
        pass


def install() -> bool:
    """Flush MLflow's queue before the thread pools stop (once per process)."""
    global _installed
    if _installed:
        return True
    with _lock:
        if _installed:
            return True
        register = getattr(threading, "_register_atexit", None)
        if register is None:  # a Python without the hook: MLflow's own atexit only
            return False
        import concurrent.futures.thread  # noqa: F401  (its hook first: ours runs before it)

        try:
            register(_flush)
        except RuntimeError:  # already shutting down
            return False
        _installed = True
        return True
