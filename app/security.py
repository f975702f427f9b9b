"""Authentication by `X-API-Key` with scopes, and per-key rate limiting."""

from __future__ import annotations

import math
import threading
import time

import anyio.to_thread
from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from app.errors import Forbidden, ServiceError, Unauthorized
from app.services.api_keys import KeyRing, Principal

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (read or admin scope)")


class RateLimited(ServiceError):
    status = 429
    title = "Too many requests"


class TokenBucket:
    """Per-key token buckets: `per_minute` requests a minute with bursts of the same size."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if a request may pass now, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def _principal(request: Request, presented: str | None, scope: str) -> Principal | None:
    ring: KeyRing = request.app.state.keyring
    if not ring.any_keys():
        if request.app.state.settings.require_api_keys:
            raise Unauthorized("this service requires API keys and none exists; an operator must create one")
        return None  # open mode: no key has ever been created (announced at start-up)
    if not presented:
        raise Unauthorized("missing X-API-Key header")
    principal = ring.verify(presented)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    if scope not in principal.scopes and "admin" not in principal.scopes:
        raise Forbidden(f"this key lacks the {scope!r} scope")
    limiter: TokenBucket | None = request.app.state.rate_limiter
    if limiter is not None and not getattr(request.state, "rate_counted", False):
        request.state.rate_counted = True  # a route with read and admin checks counts once
        wait = limiter.take(principal.prefix)
        if wait > 0:
            raise RateLimited(
                f"rate limit of {request.app.state.settings.rate_limit_per_minute} requests a minute exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return principal


async def _checked(request: Request, presented: str | None, scope: str) -> Principal | None:
    """The check runs on the event loop: it is in memory, and a thread hop on every request would
    cost more. The key ring's reload (a query, every 2 s) goes to a worker thread, so a slow or
    unreachable database never stalls the loop."""
    ring: KeyRing = request.app.state.keyring
    if ring.due():
        await anyio.to_thread.run_sync(ring.refresh)
    return _principal(request, presented, scope)


class ScopedKey(APIKeyHeader):
    """The `X-API-Key` check for one scope, as a single dependency: FastAPI documents it as the same
    `APIKeyHeader` scheme as `api_key_header`, and resolves one dependency a request instead of two
    (a scope check that depended on `api_key_header`)."""

    def __init__(self, scope: str) -> None:
        super().__init__(
            name=api_key_header.model.name,
            scheme_name=api_key_header.scheme_name,
            description=api_key_header.model.description,
            auto_error=False,
        )
        self.scope = scope

    async def __call__(self, request: Request) -> Principal | None:  # type: ignore[override]
        return await _checked(request, request.headers.get(self.model.name), self.scope)


require_read = ScopedKey("read")
require_admin = ScopedKey("admin")
READ_SCOPE = [Security(require_read)]
ADMIN_SCOPE = [Security(require_admin)]


async def check_route_key(request: Request) -> None:
    """Run the key checks of the route a request matched, raising as they would (401, 403, 429).

    For answers given before FastAPI resolves a route's dependencies: a body that is not JSON is
    refused while it is read, before any of them. Without this, a caller with no valid key would
    learn how its body was malformed instead of that it may not call the route.
    """
    route = request.scope.get("route")  # the APIRoute matched; its dependencies include its router's
    for depends in getattr(route, "dependencies", ()):
        if isinstance(depends.dependency, ScopedKey):
            await depends.dependency(request)
