"""Who a request comes from, and a bounded cache of verified credentials.

Only successful verifications are cached, keyed by a hash of the credential
(the credential itself is never kept), for `ttl` seconds: a revoked token or an
ended session stops working within that time, and while the hub is down,
credentials verified within it keep working (then 503).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from .expiring import ExpiringCache


@dataclass(frozen=True)
class Identity:
    name: str
    admin: bool = False
    groups: tuple[str, ...] = ()
    # "hub" (a JupyterHub token: a pod's, or the one in a browser's MLflow session),
    # "mlflow" (an MLflow user's password: machines). Hub identities are synced into
    # MLflow's user store; MLflow users already are there.
    source: str = "hub"
    verified_at: float = field(default_factory=time.monotonic)


class IdentityCache(ExpiringCache[str, Identity]):
    """Verified identities, keyed by a hash of the credential."""

    @staticmethod
    def key(kind: str, credential: str, scope: str = "") -> str:
        return hashlib.sha256(f"{kind}\0{scope}\0{credential}".encode()).hexdigest()
