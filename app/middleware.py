"""ASGI middleware: request body limit, read timeout and media type; HEAD on GET routes; CORS whose
refusals are problem+json."""

from __future__ import annotations

import asyncio
import email.message
import json
import re
from functools import lru_cache

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    errors: list[dict[str, object]] | None = None,
) -> None:
    problem: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        problem["errors"] = errors
    body = json.dumps(problem).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@lru_cache(maxsize=64)  # callers send the same few values
def read_as_json(content_type: str) -> bool:
    """Whether FastAPI reads a body sent with this Content-Type as JSON (application/json or any
    application/*+json type, with or without parameters): its own test, in
    `fastapi.routing.get_request_handler`, for a route with a strict content type (the default)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def is_json(content_type: bytes) -> bool:
    """`read_as_json` of a raw header value."""
    return read_as_json(content_type.decode("latin-1"))


def routed(routes: list[BaseRoute], scope: Scope) -> bool:
    """Whether one of `routes` (not a mount of files) takes this method at this path: where none does,
    the router answers 404 or 405."""
    return any(not isinstance(route, Mount) and route.matches(scope)[0] is Match.FULL for route in routes)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, whether or not Content-Length is sent, bodies
    not received in full within `timeout` seconds with 408, and a body sent as anything but JSON with
    415. Every request body of the API is JSON; a body without a Content-Type is read as JSON.

    With `routes` (the app's), 415 is answered only where a route takes the request, so that a wrong
    path or method still gets its 404 or 405, as it does with a JSON body."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout: float = 30.0, routes: list[BaseRoute] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        detail = f"request body exceeds {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_problem(send, 413, "Payload too large", detail)
                return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):  # one timer for the whole body, no extra task
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await send_problem(send, 413, "Payload too large", detail)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            late = f"the request body was not received in full within {self.timeout:g} s"
            await send_problem(send, 408, "Request timeout", late, [(b"connection", b"close")])
            return
        body = b"".join(chunks)
        content_type = next((value for name, value in scope["headers"] if name == b"content-type"), b"")
        if (
            body
            and content_type.strip()
            and not is_json(content_type)
            and (self.routes is None or routed(self.routes, scope))
        ):
            sent = content_type.decode("latin-1")
            await send_problem(
                send,
                415,
                "Unsupported media type",
                f"the request body must be JSON (Content-Type: application/json), got {sent!r}",
                errors=[{"loc": ["header", "content-type"], "msg": "expected application/json"}],
            )
            return
        if body and not content_type.strip():  # read as JSON, which FastAPI only does when it is named
            # In place: the router records the matched route in this same scope, for the access log.
            scope["headers"] = [
                *((n, v) for n, v in scope["headers"] if n != b"content-type"),
                (b"content-type", b"application/json"),
            ]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# GET routes that store something (an assessment): HEAD is not answered there, so a monitor's
# `curl -I` never writes. Matched on `app_path`.
HEAD_REFUSED = re.compile(r"^/v1/countries/[^/]+/match$")


def app_path(scope: Scope) -> str:
    """The request path within the app: without the root path the app is served under. (Inside a
    mount, `root_path` also holds the mount's prefix; `app_root_path` is the app's own.)"""
    path: str = scope["path"]
    root: str = scope.get("app_root_path", scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


class HeadAsGet:
    """Answer HEAD wherever GET is answered (except HEAD_REFUSED): the GET route runs, and its headers
    go out without the body (RFC 9110, 9.3.2). FastAPI routes answer GET only; monitors and `curl -I`
    send HEAD. Paths under `native` (static files: Starlette answers HEAD there itself, from the
    file's size, without reading it) get HEAD as it came."""

    def __init__(self, app: ASGIApp, native: tuple[str, ...] = ()) -> None:
        self.app = app
        self.native = native

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        path = app_path(scope)
        if HEAD_REFUSED.match(path) or path.startswith(self.native):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server's own scope must still say HEAD, so that it sends no body either.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, headers_only)
        finally:
            if "route" in as_get:  # the matched route, for the access log and the metrics outside
                scope["route"] = as_get["route"]


# The preflight request header each of Starlette's refusals is about.
_PREFLIGHT_FIELDS = {
    "origin": "Origin",
    "method": "Access-Control-Request-Method",
    "headers": "Access-Control-Request-Headers",
    "private-network": "Access-Control-Request-Private-Network",
}


class ProblemCORS(CORSMiddleware):
    """Starlette's CORS middleware, except that a refused preflight request is answered as every
    other bad request is, problem+json naming the refused header and what is allowed, instead of
    400 text/plain "Disallowed CORS origin"."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        # Starlette decides and says what it refused ("Disallowed CORS origin, method"); anything
        # else it might say is passed on whole.
        text = bytes(response.body).decode()
        prefix = "Disallowed CORS "
        refused = text.removeprefix(prefix).split(", ") if text.startswith(prefix) else []
        allowed = {
            "origin": "an origin on the service's allow-list (not named here)",
            "method": f"one of {', '.join(sorted(self.allow_methods))}",
            "headers": f"only the headers {', '.join(sorted(set(self.allow_headers)))}",
            "private-network": "no private-network access (it is not allowed)",
        }
        errors = [
            {"loc": ["header", _PREFLIGHT_FIELDS[r]], "msg": f"expected {allowed[r]}"}
            for r in refused
            if r in _PREFLIGHT_FIELDS
        ] or [{"loc": ["header"], "msg": text}]
        headers = {k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")}
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "CORS request refused",
                "status": 400,
                "detail": "refused: " + ", ".join(e["loc"][-1] for e in errors),
                "errors": errors,
            },
            status_code=400,
            media_type="application/problem+json",
            headers=headers,
        )
