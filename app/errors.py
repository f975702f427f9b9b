"""One error hierarchy with its own status codes, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from app.middleware import HEAD_REFUSED, app_path
from app.observability import SECURITY_HEADERS

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("clustermatch.errors")
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
    """Input that parses but cannot be used (e.g. all weights zero); names the field.

    `field` is a dotted path ("profile.rd_level"). Its `loc` starts with `where`, "body" by default,
    as the request validator's locs do, so a caller maps both kinds of error to its fields the same
    way; `where=None` for input that is not part of a request (a CLI argument, stored cases).
    """

    status = 422
    title = "Invalid input"

    def __init__(self, field: str, message: str, *, where: str | None = "body", **extra: Any) -> None:
        loc = [where, *field.split(".")] if where is not None else field.split(".")
        super().__init__(f"{field}: {message}", errors=[{"loc": loc, "msg": message}], **extra)


def located_in(loc: list[Any], *parts: str) -> list[Any]:
    """The `loc` of an error found in one part of a request body (a batch item, a comparison's
    scenario) as seen from the whole body: the parts go after "body"."""
    return ["body", *parts, *(loc[1:] if loc[:1] == ["body"] else loc)]


class Unauthorized(ServiceError):
    """No valid API key. Names the X-API-Key header, and says how to authenticate in
    WWW-Authenticate, which every 401 carries (RFC 9110, section 11.6.1)."""

    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(
            detail,
            errors=[{"loc": ["header", "X-API-Key"], "msg": detail}],
            headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )


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
    route_path = app_path(request.scope)
    found = [(literal, methods) for pattern, literal, methods in templates if pattern.match(route_path)]
    chosen = [methods for literal, methods in found if literal] or [methods for _, methods in found]
    if not chosen:  # a route left out of the API description (/openapi.json, /docs, the static files)
        for route in request.app.routes:
            regex = getattr(route, "path_regex", None)
            if regex is None or not regex.match(route_path):
                continue
            # The one mount serves Swagger UI's static files, which answer GET and HEAD.
            allowed = {"GET", "HEAD"} if isinstance(route, Mount) else getattr(route, "methods", None)
            chosen.append(sorted(allowed or ()))
    answered = {m for methods in chosen for m in methods}
    if "GET" in answered and not HEAD_REFUSED.match(route_path):
        answered.add("HEAD")  # app.middleware.HeadAsGet
    return sorted(answered)


def install_handlers(app: FastAPI, *, check_key: Callable[[Request], Awaitable[None]] | None = None) -> None:
    """Render every error the service raises, and the framework's own, as problem+json.

    `check_key(request)` runs the route's key checks (raising 401/403/429) before a malformed body
    is answered: that is found while the body is read, before the route's dependencies run.
    """

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, errors=exc.errors, headers=exc.headers, **exc.extra)

    async def _malformed(request: Request, detail: str, errors: list[dict[str, Any]]) -> JSONResponse:
        if check_key is not None:
            try:
                await check_key(request)
            except ServiceError as exc:
                return await _service_error(request, exc)
        return problem(400, "Malformed JSON", detail, errors=errors)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if errors and errors[0].get("type") == "json_invalid":  # the framework's one error for bad syntax
            # The parser's own words ("Expecting value", "Unterminated string ...") say what is wrong.
            detail = "the request body is not valid JSON"
            if reason := exc.errors()[0].get("ctx", {}).get("error"):
                errors[0]["msg"] = f"{errors[0]['msg']}: {reason}"
                detail = f"{detail}: {reason} at character {errors[0]['loc'][-1]}"
            return await _malformed(request, detail, errors)
        fields = ", ".join(".".join(e["loc"]) for e in errors[:5])
        return problem(422, "Invalid request", f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and (unreadable := _unreadable_body(exc.__cause__)) is not None:
            return await _malformed(
                request, f"the request body is not valid JSON: {unreadable['msg']}", [unreadable]
            )
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
        log.warning("database unavailable: %s", exc, exc_info=exc)
        return problem(
            503,
            "Service unavailable",
            "the database is not reachable; retry shortly",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses NUL in text. Validation keeps NUL out of every field that reaches the
        # database, so this is a backstop; any other refused value is the server's own fault.
        if "NUL" in str(exc.orig):
            log.warning("database refused a NUL character: %s", exc)
            return problem(422, "Invalid input", "text cannot contain the NUL character (\\u0000)")
        return _server_error(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The framework's error middleware calls this, outside the request-id middleware, and logs
        # the traceback itself afterwards.
        return _server_error(request, exc, logged=True)


def _unreadable_body(cause: BaseException | None) -> dict[str, Any] | None:
    """The error entry for a JSON body the parser gave up on other than by a syntax error (the
    framework answers those with a bare "There was an error parsing the body"); None for any other
    cause."""
    if isinstance(cause, UnicodeDecodeError):
        # The parser reads UTF-8 unless the first bytes say UTF-16 or UTF-32 (NUL bytes). Its position
        # is in bytes, counted after a UTF-8 byte-order mark if there is one.
        byte = cause.object[cause.start : cause.start + 1].hex()
        read_as = "" if cause.encoding.startswith("utf-8") else f", read as {cause.encoding.upper()}"
        return {
            "loc": ["body", str(cause.start)],
            "msg": f"not UTF-8 text (byte 0x{byte} at byte {cause.start}: {cause.reason}{read_as})",
            "type": "json_invalid",
        }
    if isinstance(cause, RecursionError):
        return {"loc": ["body"], "msg": "arrays or objects nested too deeply", "type": "json_invalid"}
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        limit = sys.get_int_max_str_digits()
        return {"loc": ["body"], "msg": f"a number with more than {limit} digits", "type": "json_invalid"}
    return None


def _server_error(request: Request, exc: Exception, *, logged: bool = False) -> JSONResponse:
    """A 500 problem+json that names no internals, with the request id and security headers (the
    request-id middleware does not see an answer sent from outside it)."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    if not logged:
        log.error("request %s failed: %s", request_id, exc, exc_info=exc)
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    if request_id:
        headers["X-Request-ID"] = request_id
    return problem(
        500, "Internal server error", "the server failed to answer; the error is logged", headers=headers
    )
