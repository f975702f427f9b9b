"""The one exception the client raises for an answer the service refused."""

from __future__ import annotations

from typing import Any

import httpx


class ClusterMatchError(Exception):
    """A 4xx/5xx answer; `problem` is the RFC 9457 problem+json body the service sent."""

    def __init__(self, problem: dict[str, Any], *, response: httpx.Response | None = None) -> None:
        self.problem = problem
        self.response = response
        self.status: int = int(problem.get("status") or (response.status_code if response is not None else 0))
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClusterMatchError:
        """Read the problem+json body; a body that is not one becomes a problem of its own."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            body = {
                "type": "about:blank",
                "title": response.reason_phrase or "Error",
                "status": response.status_code,
                "detail": response.text[:500],
            }
        return cls(body, response=response)
