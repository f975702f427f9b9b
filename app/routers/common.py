"""Error responses documented on every endpoint, so clients and fuzzers know them."""

from __future__ import annotations

from typing import Any

from app.schemas import Problem

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request (e.g. body is not JSON)",
        401: "Missing or invalid API key",
        403: "API key lacks the scope",
        404: "Unknown id or code",
        409: "Conflict with a concurrent write",
        408: "Body not received in full in time",
        413: "Body over the size limit",
        415: "Body sent as something other than JSON",
        422: "Invalid field; `errors` names it",
        429: "Rate limited; see Retry-After",
        503: "Database unavailable",
    }
    return {code: {**_PROBLEM, "description": descriptions[code]} for code in codes}


# 422 is listed everywhere: FastAPI would otherwise document it as plain JSON, and ours is problem+json.
READ = problems(401, 403, 422, 429, 503)
WRITE = problems(400, 401, 403, 408, 413, 415, 422, 429, 503)
