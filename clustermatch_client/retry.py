"""When to retry and how long to wait: 429 and 5xx, honouring Retry-After, bounded attempts."""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first try; waits grow as backoff * 2**n up to `max_wait` seconds.

    A Retry-After longer than `max_wait` is not shortened: the client stops and raises, because
    retrying earlier than the service asked would only be refused again.
    """

    max_attempts: int = 4
    backoff: float = 0.5
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The Retry-After header as seconds (delta-seconds or an HTTP date), or None."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def next_wait(policy: RetryPolicy, attempt: int, response: httpx.Response | None) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None to stop and raise."""
    if attempt >= policy.max_attempts:
        return None
    if response is not None and response.status_code not in RETRY_STATUSES:
        return None
    asked = retry_after_seconds(response) if response is not None else None
    if asked is not None:
        return asked if asked <= policy.max_wait else None
    return min(policy.max_wait, policy.backoff * 2 ** (attempt - 1))
