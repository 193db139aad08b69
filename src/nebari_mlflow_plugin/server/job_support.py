"""What the chart's jobs share (the modules the server pod's init containers and the
backup, restore and gc pods run as `python -m nebari_mlflow_server.<job>`).

Each job ends a failure with one line saying what went wrong (the kubelet shows it,
`nebari mlflow ...` reads it): a database error is reduced to the driver's first line
and a wait is bounded, reporting what it waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

T = TypeVar("T")
# Seconds between two attempts of `until`.
PAUSE = 2.0


def reason(exc: BaseException) -> str:
    """The first line of what the driver said (SQLAlchemy wraps it in `orig`)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def until(ready: Callable[[], T], what: str, wait: int, fail: Callable[[str], NoReturn]) -> T:
    """ready() until it returns something true, for at most `wait` seconds; a database
    error meanwhile is printed and retried, and at the deadline `fail` gets the last."""
    import sqlalchemy

    deadline = time.monotonic() + wait
    while True:
        try:
            result = ready()
            if result:
                return result
            problem = "not yet"
        except sqlalchemy.exc.DBAPIError as exc:
            problem = reason(exc)
        if time.monotonic() >= deadline:
            fail(f"waited {wait} s for {what}: {problem}")
        print(f"waiting for {what}: {problem}", flush=True)
        time.sleep(PAUSE)
