"""The short path for valid bodies on `POST /v1/match` (app/fast_route.py): the same answers as
FastAPI's own handler, and FastAPI's handler for everything that is not a valid body."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.errors import install_handlers
from app.fast_route import ValidBodyFastPath
from app.main import create_app
from app.schemas import MatchRequest
from app.security import require_read
from app.services import api_keys
from models import ApiKey
from tests.conftest import make_settings
from tests.factories import match_body

JSON = {"Content-Type": "application/json"}

# (what it is, body bytes, headers): valid bodies, and every kind of body FastAPI refuses.
BODIES: list[tuple[str, bytes, dict[str, str]]] = [
    ("valid, core inputs", json.dumps(match_body()).encode(), JSON),
    ("valid, a country", b'{"country": "KAZ", "method": "rules"}', JSON),
    ("valid, +json type", json.dumps(match_body()).encode(), {"Content-Type": "application/problem+json"}),
    (
        "valid, charset",
        json.dumps(match_body()).encode(),
        {"Content-Type": "application/json; charset=utf-8"},
    ),
    ("valid, duplicate key", b'{"method": "hybrid", "method": "rules", "country": "KAZ"}', JSON),
    ("unknown field", json.dumps({**match_body(), "colour": "red"}).encode(), JSON),
    ("unknown enum", json.dumps(match_body(rd_level="huge")).encode(), JSON),
    ("NaN", b'{"profile": {"innovation_stage": "chaser", "rd_intensity_pct": NaN}}', JSON),
    ("overflowing number", b'{"profile": {"innovation_stage": "chaser", "rd_intensity_pct": 1e400}}', JSON),
    ("huge integer", b'{"country": "KAZ", "weight_profile_version": 123456789012345678901234567890}', JSON),
    ("not an object", b"[1, 2]", JSON),
    ("null", b"null", JSON),
    ("empty", b"", JSON),
    ("syntax", b'{"profile": ', JSON),
    ("not UTF-8", b"\xff\xfe{}", JSON),
    ("valid, UTF-16 (json.loads reads it)", json.dumps({"country": "KAZ"}).encode("utf-16"), JSON),
    ("valid, after a byte-order mark", b"\xef\xbb\xbf" + json.dumps({"country": "KAZ"}).encode(), JSON),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("valid, a vendor type", json.dumps(match_body()).encode(), {"Content-Type": "application/vnd.cm+json"}),
    ("text/plain", json.dumps(match_body()).encode(), {"Content-Type": "text/plain"}),
    # "+json" at the end, but not JSON to FastAPI (a subtype cannot hold a slash).
    ("two slashes in the type", json.dumps(match_body()).encode(), {"Content-Type": "application/a/b+json"}),
    ("no content type", json.dumps(match_body()).encode(), {}),
]


def _toy_app() -> FastAPI:
    """One endpoint under two routes, `/fast` with the short path and `/plain` with FastAPI's
    handler alone, rendering errors as the service does. It answers the body as validated."""

    async def echo(request: MatchRequest, http: Request) -> Response:
        return Response(request.model_dump_json(), status_code=201, media_type="application/json")

    router = APIRouter()
    router.add_api_route("/fast", echo, methods=["POST"], route_class_override=ValidBodyFastPath)
    router.add_api_route("/plain", echo, methods=["POST"])
    app = FastAPI()
    install_handlers(app)
    app.include_router(router)
    return app


@pytest.fixture
def fastapi_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many requests each route's FastAPI handler answered, by path (routes made after this)."""
    calls: Counter[str] = Counter()
    built = APIRoute.get_route_handler

    def counting(route: APIRoute) -> Callable[[Request], Any]:
        handler = built(route)

        async def counted(request: Request) -> Response:
            calls[route.path] += 1
            return await handler(request)

        return counted

    monkeypatch.setattr(APIRoute, "get_route_handler", counting)
    return calls


@pytest.mark.parametrize(("kind", "body", "headers"), BODIES, ids=[b[0] for b in BODIES])
def test_every_body_gets_the_same_answer_as_from_fastapis_handler(kind, body, headers, fastapi_calls):
    with TestClient(_toy_app(), raise_server_exceptions=False) as c:
        fast = c.post("/fast", content=body, headers=headers)
        plain = c.post("/plain", content=body, headers=headers)
    assert (fast.status_code, fast.headers["content-type"], fast.content) == (
        plain.status_code,
        plain.headers["content-type"],
        plain.content,
    ), kind
    # The short path answered exactly the valid bodies; FastAPI's handler everything else.
    assert fast.status_code in (201, 400, 422), (kind, fast.text)
    assert fastapi_calls["/fast"] == (0 if fast.status_code == 201 else 1), kind
    assert kind.startswith("valid") == (fast.status_code == 201), (kind, fast.text)


def test_a_route_the_short_path_does_not_fit_is_left_to_fastapi(fastapi_calls):
    """A query parameter (or any dependency other than a key check) is FastAPI's to resolve."""

    async def with_query(request: MatchRequest, http: Request, verbose: bool = False) -> Response:
        return Response(b"{}", media_type="application/json")

    app = FastAPI()
    app.router.add_api_route("/q", with_query, methods=["POST"], route_class_override=ValidBodyFastPath)
    with TestClient(app) as c:
        assert c.post("/q?verbose=true", json=match_body()).status_code == 200
    assert fastapi_calls["/q"] == 1


def test_a_dependency_added_where_the_router_is_included_still_runs(fastapi_calls):
    audited: list[str] = []

    async def echo(request: MatchRequest, http: Request) -> Response:
        return Response(b"{}", status_code=201, media_type="application/json")

    router = APIRouter()
    router.add_api_route("/fast", echo, methods=["POST"], route_class_override=ValidBodyFastPath)
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(lambda: audited.append("ran"))])
    with TestClient(app) as c:
        assert c.post("/fast", json=match_body()).status_code == 201
    assert audited == ["ran"] and fastapi_calls["/fast"] == 1


def test_an_embedded_body_is_left_to_fastapi(fastapi_calls):
    """With `embed=True` FastAPI validates a wrapper object of its own: the short path stays out."""

    async def embedded(request: Annotated[MatchRequest, Body(embed=True)], http: Request) -> Response:
        return Response(request.model_dump_json(), status_code=201, media_type="application/json")

    app = FastAPI()
    app.router.add_api_route("/e", embedded, methods=["POST"], route_class_override=ValidBodyFastPath)
    with TestClient(app) as c:
        response = c.post("/e", json={"request": match_body()})
    assert response.status_code == 201 and response.json()["profile"]["rd_level"] == "medium"
    assert fastapi_calls["/e"] == 1


def test_a_traced_request_is_left_to_fastapi(fastapi_calls, monkeypatch):
    """Under OpenTelemetry FastAPI records each request's body and values: such requests take its path."""
    app = _toy_app()
    with TestClient(app) as c:
        assert c.post("/fast", json=match_body()).status_code == 201
        assert fastapi_calls["/fast"] == 0
        monkeypatch.setattr("app.fast_route.get_telemetry_data", lambda: object())
        assert c.post("/fast", json=match_body()).status_code == 201
    assert fastapi_calls["/fast"] == 1


def test_dependency_overrides_are_honoured(database_url, model_dir, fastapi_calls):
    """An override of the key check (as a test of the app would set) is FastAPI's to apply."""
    app = create_app(make_settings(database_url, model_dir))
    with app.state.sessionmaker() as s, s.begin():
        api_keys.create(s, name="portal", scopes=["read"])
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.post("/v1/match", json=match_body()).status_code == 401
            app.dependency_overrides[require_read] = lambda: None
            assert c.post("/v1/match", json=match_body()).status_code == 201
            assert fastapi_calls["/v1/match"] == 1
    finally:
        with app.state.sessionmaker() as s, s.begin():
            s.query(ApiKey).delete()
        app.state.engine.dispose()


def test_match_takes_the_short_path_and_still_checks_keys_and_rate(database_url, model_dir, fastapi_calls):
    """On the service's own `POST /v1/match`: valid bodies skip FastAPI's handler, and the key check
    and the rate limit hold on both paths. A refused body goes through both paths and still counts
    once against the limit."""
    app = create_app(make_settings(database_url, model_dir, rate_limit_per_minute=5))
    with app.state.sessionmaker() as s, s.begin():
        read_key, _ = api_keys.create(s, name="portal", scopes=["read"])
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            key = {"X-API-Key": read_key}
            assert c.post("/v1/match", json=match_body()).status_code == 401
            assert c.post("/v1/match", json=match_body(), headers={"X-API-Key": "cm_nope"}).status_code == 401
            assert [c.post("/v1/match", json=match_body(), headers=key).status_code for _ in range(2)] == [
                201
            ] * 2
            assert fastapi_calls["/v1/match"] == 0
            refused = c.post("/v1/match", json=match_body(rd_level="huge"), headers=key)
            assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == [
                "body",
                "profile",
                "rd_level",
            ]
            assert fastapi_calls["/v1/match"] == 1
            statuses = [c.post("/v1/match", json=match_body(), headers=key).status_code for _ in range(3)]
            assert statuses == [201, 201, 429], statuses
            assert int(c.post("/v1/match", json=match_body(), headers=key).headers["retry-after"]) >= 1
    finally:
        with app.state.sessionmaker() as s, s.begin():
            s.query(ApiKey).delete()
        app.state.engine.dispose()
