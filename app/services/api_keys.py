"""API keys: created and revoked from the CLI, shown once, stored as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput, NotFound, ServiceUnavailable
from models import ApiKey
from models.base import utcnow

SCOPES = ("read", "admin")
_PREFIX_BYTES = 6


def _hash(secret: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create(session: Session, *, name: str, scopes: list[str]) -> tuple[str, ApiKey]:
    """A new key; returns (the key, shown only now, and its row)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            "scopes", f"expected a non-empty subset of {list(SCOPES)}, got {scopes}", where=None
        )
    prefix = secrets.token_hex(_PREFIX_BYTES)
    key = f"cm_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, prefix=prefix, key_hash=_hash(key), scopes=sorted(set(scopes)))
    session.add(row)
    session.flush()
    return key, row


def revoke(session: Session, *, prefix: str) -> ApiKey:
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def get_all(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("the database is not reachable; retry shortly", headers={"Retry-After": "5"})


@dataclass(frozen=True, slots=True)
class Principal:
    prefix: str
    name: str
    scopes: frozenset[str]


class KeyRing:
    """Active keys held in memory and reloaded every `ttl` seconds, so a check costs no query.

    `refresh` reloads (a query: on an event loop, call it in a worker thread when `due`); `any_keys`
    and `verify` only read what was loaded. While a reload runs, other callers go on with the keys
    loaded before it instead of waiting, but only while those are at most `ttl + max_stale` seconds
    old. Older keys (after a quiet spell with no checks, or a reload stuck on the database) are not
    used: such a caller waits for the reload under way, up to `max_stale` seconds, and answers 503
    if it has not ended by then. So a revoked key stops working within `ttl + max_stale` seconds on
    every replica. While the database cannot be read, a reload is tried again at most every `retry`
    seconds; in between, `refresh` fails at once (503) instead of each caller waiting on a
    connection attempt of its own.
    """

    def __init__(
        self, sessions: sessionmaker[Session], ttl: float = 2.0, retry: float = 1.0, max_stale: float = 5.0
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._retry = retry
        self._max_stale = max_stale
        self._loaded_at: float | None = None
        self._failed_at = -1e9
        self._keys: dict[str, tuple[str, Principal]] = {}
        self._ever = False
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the keys are older than `ttl` (or were never loaded)."""
        return self._loaded_at is None or time.monotonic() - self._loaded_at >= self._ttl

    def refresh(self) -> None:
        """Reload the keys if they are due. Raises (503, or the database's error) when they cannot be
        read, and when the keys at hand are too old to use and another caller's reload does not end
        within `max_stale` seconds. Blocks for that long at most: call it off the event loop."""
        if not self.due():
            return
        if not self._lock.acquire(blocking=False):  # another caller is reloading
            loaded_at = self._loaded_at
            if loaded_at is not None and time.monotonic() - loaded_at <= self._ttl + self._max_stale:
                return  # the keys loaded before serve until it is done
            if not self._lock.acquire(timeout=self._max_stale):  # too old to use: wait for it
                raise _unavailable()
        try:
            if not self.due():
                return
            if time.monotonic() - self._failed_at < self._retry:
                raise _unavailable()
            try:
                with self._sessions() as session:
                    rows = session.scalars(select(ApiKey)).all()
            except Exception:
                self._failed_at = time.monotonic()
                raise
            self._keys = {
                r.prefix: (r.key_hash, Principal(r.prefix, r.name, frozenset(r.scopes)))
                for r in rows
                if r.revoked_at is None
            }
            self._ever = bool(rows)
            self._loaded_at = time.monotonic()  # after the query: a slow one is not due again at once
        finally:
            self._lock.release()

    def any_keys(self) -> bool:
        """Whether keys are in force: once a key has existed, revoking them all does not open the API."""
        return self._ever

    def verify(self, presented: str) -> Principal | None:
        """The key's principal if it is valid and not revoked (constant-time hash comparison)."""
        parts = presented.split("_")
        if len(parts) < 3 or parts[0] != "cm":
            return None
        entry = self._keys.get(parts[1])
        if entry is None:
            return None
        stored, principal = entry
        return principal if hmac.compare_digest(stored, _hash(presented)) else None
