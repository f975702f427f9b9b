"""A route class for the busiest endpoint: a valid JSON body takes a short path, any other body
FastAPI's own handler.

FastAPI's request handler spends tens of microseconds a request on its own machinery (resolving
dependencies, telemetry hooks, per-request context): on `POST /v1/match` about a tenth of a match's
CPU (bench/RESULTS.md). `ValidBodyFastPath` keeps the route as FastAPI declares it (path, OpenAPI
schema, status code, middleware, exception handlers) and changes only how a valid request reaches
the endpoint: the route's key checks, the body parsed as FastAPI parses it (Starlette's
`Request.json`) and validated by its model, then the endpoint. A body that does not parse or
validate goes on to FastAPI's handler, which reads it again from the request's cache, so every
error answer is FastAPI's own, word for word (tests/api/test_fast_route.py compares the two).

FastAPI's handler also takes every request the short path cannot answer as FastAPI would: a
Content-Type that FastAPI does not read as JSON, any dependency override set on the app (tests use
them), and any request that OpenTelemetry traces (FastAPI records its spans and data there). A route
whose shape does not fit (another kind of dependency, including one added where its router is
included; an embedded body; query, header, path or cookie parameters) never takes the short path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel

from app.middleware import read_as_json
from app.security import ScopedKey


def _strict_content_type(route: Any) -> bool:
    """Whether the route reads only bodies sent with a JSON Content-Type as JSON (FastAPI's default)."""
    value = getattr(route, "strict_content_type", True)
    return (value.value if isinstance(value, DefaultPlaceholder) else value) is True


class ValidBodyFastPath(APIRoute):
    """For endpoints `async def f(<body>: Model, <request>: Request) -> Response` whose only
    dependencies are key checks (`app.security.ScopedKey`). Any other route is left to FastAPI whole."""

    def _as_built(self) -> Any:
        """The route as FastAPI builds this handler: for a route included in another router, the
        inclusion's context (with the dependencies the inclusion adds), read as
        `APIRoute.get_route_handler` reads it; None if this FastAPI does not say."""
        current = getattr(fastapi.routing, "_effective_route_context_var", None)
        if current is None:
            return None
        context = current.get()
        return context if context is not None and context.original_route is self else self

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fastapi_handler = super().get_route_handler()
        route = self._as_built()
        if route is None:
            return fastapi_handler
        dependant = route.dependant
        body = route.body_field
        model = body.field_info.annotation if body is not None else None
        checks = [d.call for d in dependant.dependencies]
        if (
            body is None
            or not (isinstance(model, type) and issubclass(model, BaseModel))
            or dependant.request_param_name is None
            or len(dependant.body_params) != 1
            or body is not dependant.body_params[0]  # an embedded body: FastAPI's own wrapper model
            or not _strict_content_type(route)
            or dependant.query_params
            or dependant.header_params
            or dependant.path_params
            or dependant.cookie_params
            or not all(isinstance(check, ScopedKey) for check in checks)
            or not inspect.iscoroutinefunction(dependant.call)
        ):
            return fastapi_handler
        endpoint = dependant.call  # what FastAPI calls (an integration may have wrapped the endpoint)
        body_name, request_name = body.name, dependant.request_param_name
        overrides_provider = getattr(route, "dependency_overrides_provider", None)

        async def handler(request: Request) -> Response:
            if (
                not read_as_json(request.headers.get("content-type", ""))
                or getattr(overrides_provider, "dependency_overrides", None)
                or get_telemetry_data() is not None
            ):
                return await fastapi_handler(request)
            for check in checks:  # as FastAPI would run them: 401, 403 and 429 raise from here
                await check(request)
            try:
                # FastAPI's own parse (Starlette's `Request.json`, json.loads) and the model's own
                # validation, so that a body is read the same on both paths.
                value = model.model_validate(await request.json())
            except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, ValidationError...
                return await fastapi_handler(request)
            response: Response = await endpoint(**{body_name: value, request_name: request})
            return response

        return handler
