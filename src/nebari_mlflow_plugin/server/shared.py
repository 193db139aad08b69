"""Verified identities shared by every worker and replica, in MLflow's auth database.

Each worker keeps its own in-memory cache (a hit costs nothing here). On a miss it
asks this table before JupyterHub: an identity verified by any worker within
`cache_seconds` is taken as is, so while the hub is down a user verified recently
keeps working on every worker and replica, not only on the one that verified them.
Rows outlive `cache_seconds` (for `RETAIN_SECONDS`) only to tell a token that died
with its server from a stranger's (the 401 says what happened).

What the table holds, and what someone who can read or write the database gets:
- the key is an HMAC of the credential under MLflow's Flask secret (a Kubernetes
  Secret, not in the database): a reader learns no token and cannot test a guess;
- each row is sealed with an HMAC of its content under the same key: a writer
  cannot make a row name another user, nor refresh a row's time;
- user name, admin flag, groups and time of verification: what the hub and MLflow's
  own user table already show.
Any database error leaves the worker on its own cache and JupyterHub (never "allow").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from .identity import Identity

_logger = logging.getLogger(__name__)

TABLE = "nebari_mlflow_identities"
# How long a row is kept after its last verification (stopped-server messages).
RETAIN_SECONDS = 14 * 24 * 3600
_PRUNE_EVERY = 3600.0


class SharedIdentities:
    """The table, on the engine of MLflow's auth store (created on first use)."""

    def __init__(self, engine: Any, secret: str) -> None:
        import sqlalchemy as sa

        self._sa = sa
        self._engine = engine
        self._secret = (secret or "nebari-mlflow").encode()
        metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE, metadata,
            sa.Column("credential", sa.String(64), primary_key=True),
            sa.Column("name", sa.String(256), nullable=False),
            sa.Column("admin", sa.Boolean, nullable=False),
            sa.Column("groups", sa.Text, nullable=False),
            sa.Column("source", sa.String(16), nullable=False),
            sa.Column("verified_at", sa.Float, nullable=False),
            sa.Column("seal", sa.String(64), nullable=False),
        )  # fmt: skip
        self._metadata = metadata
        self._ready = False
        self._lock = threading.Lock()
        self._pruned = 0.0

    def key(self, kind: str, credential: str, scope: str = "") -> str:
        message = f"{kind}\0{scope}\0{credential}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _seal(self, key: str, name: str, admin: bool, groups: str, source: str,
              verified_at: float) -> str:  # fmt: skip
        content = json.dumps([key, name, admin, groups, source, repr(verified_at)])
        return hmac.new(self._secret, content.encode(), hashlib.sha256).hexdigest()

    def _ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                try:
                    self._metadata.create_all(self._engine, checkfirst=True)
                except self._sa.exc.SQLAlchemyError:
                    # Another worker created it at the same moment: use theirs.
                    if not self._sa.inspect(self._engine).has_table(TABLE):
                        raise
                self._ready = True

    def _row(self, key: str) -> tuple[Identity, float] | None:
        self._ensure()
        t = self.table
        with self._engine.connect() as connection:
            row = connection.execute(t.select().where(t.c.credential == key)).first()
        if row is None:
            return None
        seal = self._seal(key, row.name, bool(row.admin), row.groups, row.source,
                          float(row.verified_at))  # fmt: skip
        if not hmac.compare_digest(seal, row.seal):
            _logger.warning("nebari-mlflow: an identity row with a wrong seal was ignored")
            return None
        identity = Identity(name=row.name, admin=bool(row.admin),
                            groups=tuple(json.loads(row.groups)), source=row.source)  # fmt: skip
        return identity, float(row.verified_at)

    def recall(self, key: str, max_age: float) -> tuple[Identity, float] | None:
        """(identity, seconds it stays valid) if any worker verified it within `max_age`."""
        try:
            found = self._row(key)
        except Exception:
            _logger.exception("nebari-mlflow: shared identities unreadable")
            return None
        if found is None:
            return None
        identity, verified_at = found
        left = verified_at + max_age - time.time()
        return (identity, left) if left > 0 else None

    def last_known(self, key: str) -> Identity | None:
        """Who the credential was when last verified (however long ago), if kept."""
        try:
            found = self._row(key)
        except Exception:
            _logger.exception("nebari-mlflow: shared identities unreadable")
            return None
        return found[0] if found else None

    def remember(self, key: str, identity: Identity) -> None:
        now = time.time()
        groups = json.dumps(list(identity.groups))
        values = {
            "name": identity.name, "admin": identity.admin, "groups": groups,
            "source": identity.source, "verified_at": now,
            "seal": self._seal(key, identity.name, identity.admin, groups, identity.source, now),
        }  # fmt: skip
        t = self.table
        try:
            self._ensure()
            with self._engine.begin() as connection:
                updated = connection.execute(
                    t.update().where(t.c.credential == key).values(**values)
                ).rowcount
                if not updated:
                    connection.execute(t.insert().values(credential=key, **values))
        except self._sa.exc.IntegrityError:
            # Inserted by another worker in between: theirs is as fresh.
            pass
        except Exception:
            _logger.exception("nebari-mlflow: could not share a verified identity")
        self._prune(now)

    def _prune(self, now: float) -> None:
        if now - self._pruned < _PRUNE_EVERY:
            return
        self._pruned = now
        t = self.table
        try:
            with self._engine.begin() as connection:
                connection.execute(t.delete().where(t.c.verified_at < now - RETAIN_SECONDS))
        except Exception:
            _logger.exception("nebari-mlflow: could not prune shared identities")


def open_store(secret: str) -> SharedIdentities | None:
    """The shared table on MLflow's auth database, or None outside a basic-auth server."""
    try:
        from mlflow.server.auth import store
    except Exception:
        return None
    engine = getattr(store, "engine", None)
    return SharedIdentities(engine, secret) if engine is not None else None
