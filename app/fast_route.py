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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.middleware import is_json
from app.security import ScopedKey


class ValidBodyFastPath(APIRoute):
    """For endpoints `async def f(<body>: Model, <request>: Request) -> Response` whose only
    dependencies are key checks (`app.security.ScopedKey`). Any other route is left to FastAPI whole."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fastapi_handler = super().get_route_handler()
        dependant = self.dependant
        body = self.body_field
        model = body.field_info.annotation if body is not None else None
        checks = [d.call for d in dependant.dependencies]
        if (
            body is None
            or not (isinstance(model, type) and issubclass(model, BaseModel))
            or dependant.request_param_name is None
            or len(dependant.body_params) != 1
            or dependant.query_params
            or dependant.header_params
            or dependant.path_params
            or dependant.cookie_params
            or not all(isinstance(check, ScopedKey) for check in checks)
            or not inspect.iscoroutinefunction(self.endpoint)
        ):
            return fastapi_handler
        endpoint = self.endpoint
        body_name, request_name = body.name, dependant.request_param_name

        async def handler(request: Request) -> Response:
            for check in checks:  # as FastAPI would run them: 401, 403 and 429 raise from here
                await check(request)  # type: ignore[misc]
            if not is_json(request.headers.get("content-type", "").encode("latin-1")):
                return await fastapi_handler(request)
            try:
                # FastAPI's own parse (Starlette's `Request.json`, json.loads) and the model's own
                # validation, so that a body is read the same on both paths.
                value = model.model_validate(await request.json())
            except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, ValidationError...
                return await fastapi_handler(request)
            response: Response = await endpoint(**{body_name: value, request_name: request})
            return response

        return handler
