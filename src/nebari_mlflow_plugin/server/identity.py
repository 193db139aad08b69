"""Who a request comes from, and a bounded cache of verified credentials.

Only successful verifications are cached, keyed by a hash of the credential
(the credential itself is never kept), for `ttl` seconds: a revoked token or an
ended session stops working within that time, and while the hub or
forward-auth is down, credentials verified within it keep working (then 503).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    name: str
    admin: bool = False
    groups: tuple[str, ...] = ()
    # "hub" (a JupyterHub token), "session" (a browser through Traefik), "mlflow" (an
    # MLflow user's password: machines). Hub and session identities are synced into
    # MLflow's user store; MLflow users already are there.
    source: str = "hub"
    verified_at: float = field(default_factory=time.monotonic)


class IdentityCache:
    """Thread-safe TTL + LRU cache (uvicorn runs Flask in a thread pool)."""

    def __init__(self, ttl: float, max_size: int) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._items: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(kind: str, credential: str, scope: str = "") -> str:
        return hashlib.sha256(f"{kind}\0{scope}\0{credential}".encode()).hexdigest()

    def get(self, key: str) -> Identity | None:
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, identity = item
            if expires <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return identity

    def put(self, key: str, identity: Identity) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + self.ttl, identity)
            self._items.move_to_end(key)
            while len(self._items) > self.max_size:
                self._items.popitem(last=False)
