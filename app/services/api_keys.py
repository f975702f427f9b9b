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
        raise InvalidInput("scopes", f"expected a non-empty subset of {list(SCOPES)}, got {scopes}")
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


@dataclass(frozen=True, slots=True)
class Principal:
    prefix: str
    name: str
    scopes: frozenset[str]


class KeyRing:
    """Active keys held in memory and reloaded every `ttl` seconds, so a check costs no query.

    A revoked key stops working within `ttl` seconds on every replica. While the database cannot be
    read, a reload is tried again at most every `retry` seconds; in between, checks fail at once
    (503) instead of each waiting on a connection attempt of its own.
    """

    def __init__(self, sessions: sessionmaker[Session], ttl: float = 2.0, retry: float = 1.0) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._retry = retry
        self._loaded_at = -1e9
        self._failed_at = -1e9
        self._keys: dict[str, tuple[str, Principal]] = {}
        self._ever = False
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the next check reloads the keys (a query: callers on an event loop run `refresh`
        in a worker thread first)."""
        return time.monotonic() - self._loaded_at >= self._ttl

    def refresh(self) -> None:
        """Reload the keys if they are older than `ttl`."""
        now = time.monotonic()
        if now - self._loaded_at < self._ttl:
            return
        with self._lock:
            if now - self._loaded_at < self._ttl:
                return
            if now - self._failed_at < self._retry:
                raise ServiceUnavailable(
                    "the database is not reachable; retry shortly", headers={"Retry-After": "5"}
                )
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
            self._loaded_at = now

    def any_keys(self) -> bool:
        """Whether keys are in force: once a key has existed, revoking them all does not open the API."""
        self.refresh()
        return self._ever

    def verify(self, presented: str) -> Principal | None:
        """The key's principal if it is valid and not revoked (constant-time hash comparison)."""
        self.refresh()
        parts = presented.split("_")
        if len(parts) < 3 or parts[0] != "cm":
            return None
        entry = self._keys.get(parts[1])
        if entry is None:
            return None
        stored, principal = entry
        return principal if hmac.compare_digest(stored, _hash(presented)) else None
