"""One error hierarchy with its own status codes, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
MAX_ERRORS = 50  # entries of `errors` in one answer; a body with 80,000 unknown keys gets the first 50


class ServiceError(Exception):
    """Base for errors a caller can act on; carries its HTTP status."""

    status = 400
    title = "Bad request"
    type = "about:blank"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class InvalidInput(ServiceError):
    """Input that parses but cannot be used (e.g. all weights zero); names the field."""

    status = 422
    title = "Invalid input"

    def __init__(self, field: str, message: str, **extra: Any) -> None:
        super().__init__(f"{field}: {message}", errors=[{"loc": field.split("."), "msg": message}], **extra)


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"


class ServiceUnavailable(ServiceError):
    status = 503
    title = "Service unavailable"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            body["errors_omitted"] = len(errors) - MAX_ERRORS
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        item: dict[str, Any] = {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", "")}
        if "type" in err:
            item["type"] = err["type"]
        out.append(item)
    return out


_HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete")


def _allowed_methods(request: Request) -> list[str]:
    """The methods the API documents for this path; a literal path beats a template
    (`/v1/weight-profiles/ahp` is not `/v1/weight-profiles/{name}`)."""
    templates: list[tuple[re.Pattern[str], bool, list[str]]] | None = getattr(
        request.app.state, "path_methods", None
    )
    if templates is None:
        templates = []
        for path, item in request.app.openapi()["paths"].items():
            pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$")
            methods = [m.upper() for m in _HTTP_METHODS if m in item]
            templates.append((pattern, "{" not in path, methods))
        request.app.state.path_methods = templates
    found = [(literal, methods) for pattern, literal, methods in templates if pattern.match(request.url.path)]
    chosen = [methods for literal, methods in found if literal] or [methods for _, methods in found]
    if not chosen:  # a route left out of the API description (/openapi.json, /docs)
        for route in request.app.routes:
            regex = getattr(route, "path_regex", None)
            if regex is not None and regex.match(request.url.path):
                chosen.append(sorted(getattr(route, "methods", None) or ()))
    return sorted({m for methods in chosen for m in methods})


def install_handlers(app: FastAPI) -> None:
    """Render every error the service raises, and the framework's own, as problem+json."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "Malformed JSON", "the request body is not valid JSON", errors=errors)
        fields = ", ".join(".".join(e["loc"]) for e in errors[:5])
        return problem(422, "Invalid request", f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 400: "Bad request"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path may have several routes.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(
            exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail), headers=headers
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)  # a connection lost under the driver
    @app.exception_handler(PoolTimeoutError)  # no connection free in time
    async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
        return problem(
            503,
            "Service unavailable",
            "the database is not reachable; retry shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DataError)
    async def _unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value that validation let through (PostgreSQL takes no NUL in text).
        return problem(
            422, "Invalid input", "a value in the request cannot be stored or looked up by the database"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # The server's own fault: still problem+json. The error and its traceback are logged by the
        # framework's error middleware, which calls this.
        return problem(500, "Internal server error", "the server failed to answer; the error is logged")
