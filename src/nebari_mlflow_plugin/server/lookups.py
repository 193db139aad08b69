"""MLflow basic-auth's per-request permission lookups, remembered per worker.

On every request MLflow's gate (`_before_request`) reads the caller's user row
(twice) and their grants, and for a run write it loads the whole run to learn its
experiment: 3 to 10 SQL queries, about +6 ms on a read and +16 ms on a run write
(benchmarks/auth_latency.py). Here the gate runs with those lookups remembered for
`cache_seconds`, under rules that keep the permissions true:

- What the gate allows on remembered data is allowed. A withdrawn grant or admin
  flag therefore still allows for at most `cache_seconds`: the promise the identity
  cache already makes for a revoked token.
- What it would refuse is decided again on fresh data, which is then remembered. A
  new grant (such as the MANAGE that MLflow gives the creator of an experiment, in
  whichever worker or replica created it) applies at once.
- A write to the permission store in this worker (MLflow's permission API,
  `grants.sync`) forgets everything remembered, so this worker applies it at once.
- A run's experiment never changes; a missing user or run is never remembered.

Only the gate uses remembered data. Listings that MLflow filters after the request
(search results) always read fresh grants.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from .expiring import ExpiringCache

_logger = logging.getLogger(__name__)

# What a lookup does in the current request: "off" (call through: everything outside
# the gate), "remember" (answer from memory when it can) or "refresh" (call through,
# then remember the answer).
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("nebari_lookups", default="off")

# Permission-store methods that only read; every other public method writes.
_READ_PREFIXES = ("get_", "list_", "has_", "is_", "authenticate_", "user_has_")


def _freeze(value: Any) -> Hashable:
    """An argument as part of a key (MLflow passes resource types as a set or list)."""
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return tuple(value) if isinstance(value, list) else value


def _same(value: Any) -> Any:
    return value


@contextlib.contextmanager
def _in_mode(mode: str) -> Iterator[None]:
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


class Lookups:
    """The remembered answers of one worker, and the wrappers that use them."""

    def __init__(self, ttl: float, max_size: int) -> None:
        self.memory: ExpiringCache[Hashable, Any] = ExpiringCache(ttl, max_size)

    def remembered(
        self, name: str, lookup: Callable[..., Any], copy: Callable[[Any], Any] = _same
    ) -> Callable[..., Any]:
        """`lookup`, answered from memory in the gate; `copy` gives each caller its own
        containers around the remembered items (callers may extend what they got)."""

        @functools.wraps(lookup)
        def call(*args: Any) -> Any:
            mode = _mode.get()
            if mode == "off":
                return lookup(*args)
            key = (name, *map(_freeze, args))
            if mode == "remember":
                known = self.memory.get(key)
                if known is not None:
                    return copy(known)
            value = lookup(*args)
            if value is not None:
                self.memory.put(key, copy(value))
            return value

        return call

    def forgetting(self, write: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(write)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return write(*args, **kwargs)
            finally:
                self.memory.clear()

        return call

    def gated(self, gate: Callable[[], Any]) -> Callable[[], Any]:
        """MLflow's gate, on remembered data first; a refusal is decided again on fresh."""

        @functools.wraps(gate)
        def call() -> Any:
            with _in_mode("remember"):
                decision = gate()
            if getattr(decision, "status_code", None) != 403:
                return decision
            with _in_mode("refresh"):
                return gate()

        return call


def fresh() -> contextlib.AbstractContextManager[None]:
    """Lookups call through, whatever the gate remembers: verifying an identity and
    syncing its grants compare against the store as it is."""
    return _in_mode("off")


_installed: Lookups | None = None
_install_lock = threading.Lock()


def remembered(
    name: str, lookup: Callable[..., Any], copy: Callable[[Any], Any] = _same
) -> Callable[..., Any]:
    """Another lookup the gate remembers under the same rules (see sharing.py); called
    through when remembering is not installed."""
    return lookup if _installed is None else _installed.remembered(name, lookup, copy)


def install(app: Any, ttl: float, max_size: int) -> bool:
    """Put remembered lookups under MLflow's gate of `app` (once per worker).

    False when `app` does not run MLflow's basic-auth gate (nothing to speed up), or,
    with a warning, when this MLflow lacks a lookup this module knows: the gate then
    stays as MLflow wrote it, correct and slower.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            return True
        from mlflow.server import auth as mlflow_auth

        gate = getattr(mlflow_auth, "_before_request", None)
        gates = app.before_request_funcs.get(None, [])
        if gate is None or gate not in gates:
            return False
        store = getattr(mlflow_auth, "store", None)
        run_requirement = getattr(mlflow_auth, "_run_requirement", None)
        reads = ("get_user", "list_grants")
        if run_requirement is None or not all(callable(getattr(store, r, None)) for r in reads):
            _logger.warning("nebari-mlflow: unknown MLflow auth internals; lookups not remembered")
            return False
        lookups = Lookups(ttl, max_size)
        for name in dir(type(store)):
            if name.startswith("_") or name.startswith(_READ_PREFIXES) or name == "init_db":
                continue
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, lookups.forgetting(method))
        store.get_user = lookups.remembered("user", store.get_user)
        store.list_grants = lookups.remembered("grants", store.list_grants, copy=list)
        mlflow_auth._run_requirement = lookups.remembered(  # (anchor, [requirements])
            "run", run_requirement, copy=lambda found: (found[0], list(found[1]))
        )
        gates[gates.index(gate)] = lookups.gated(gate)
        _installed = lookups
        return True
