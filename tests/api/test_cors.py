"""CORS: the allow-list from settings (CORS_ORIGINS), and refused preflight requests as problem+json."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings
from tests.factories import match_body

PORTAL = "https://portal.example"


@pytest.fixture
def cors_client(database_url: str, model_dir: str) -> Iterator[TestClient]:
    app = create_app(make_settings(database_url, model_dir, cors_origins=[PORTAL]))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


def preflight(client: TestClient, origin: str, method: str = "POST", headers: str | None = None):
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return client.options("/v1/match", headers=request_headers)


def test_an_allowed_origin_may_call_the_api_from_a_browser(cors_client):
    response = preflight(cors_client, PORTAL, headers="content-type, x-api-key")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PORTAL
    assert "POST" in response.headers["access-control-allow-methods"]

    answer = cors_client.post("/v1/match", json=match_body(), headers={"Origin": PORTAL})
    assert answer.status_code == 201
    assert answer.headers["access-control-allow-origin"] == PORTAL


def test_another_origin_gets_no_cors_header_on_a_simple_request(cors_client):
    answer = cors_client.post("/v1/match", json=match_body(), headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers  # the browser withholds the answer


@pytest.mark.parametrize(
    ("origin", "method", "headers", "refused"),
    [
        ("https://elsewhere.example", "POST", None, ["Origin"]),
        (PORTAL, "DELETE", None, ["Access-Control-Request-Method"]),
        (PORTAL, "POST", "content-type, x-secret", ["Access-Control-Request-Headers"]),
        ("https://elsewhere.example", "PUT", None, ["Origin", "Access-Control-Request-Method"]),
    ],
)
def test_a_refused_preflight_is_a_400_problem_naming_each_refused_header(
    cors_client, origin, method, headers, refused
):
    response = preflight(cors_client, origin, method, headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "CORS request refused"
    assert [e["loc"] for e in problem["errors"]] == [["header", name] for name in refused]
    assert all(e["msg"].startswith("expected ") for e in problem["errors"])
    assert problem["detail"] == "refused: " + ", ".join(refused)
    assert PORTAL not in response.text  # the allow-list is not disclosed to whoever asks
    assert response.headers["x-content-type-options"] == "nosniff"  # security headers as on every answer
    # The CORS headers Starlette set on its refusal stay (a browser reads them).
    assert response.headers["vary"].startswith("Origin")
    assert "POST" in response.headers["access-control-allow-methods"]


def test_a_refused_method_says_which_are_allowed(cors_client):
    problem = preflight(cors_client, PORTAL, "DELETE").json()
    assert problem["errors"] == [
        {"loc": ["header", "Access-Control-Request-Method"], "msg": "expected one of GET, POST"}
    ]


def test_refused_headers_are_named_with_the_headers_allowed(cors_client):
    problem = preflight(cors_client, PORTAL, "POST", "content-type, x-secret").json()
    (error,) = problem["errors"]
    assert error["loc"] == ["header", "Access-Control-Request-Headers"]
    assert error["msg"].startswith("expected only the headers ")
    named = error["msg"].removeprefix("expected only the headers ").split(", ")
    assert {"content-type", "x-api-key", "x-request-id"} <= set(named)
    assert len(named) == len(set(named))


def test_without_an_allow_list_no_cors_headers_are_sent(client):
    response = client.post("/v1/match", json=match_body(), headers={"Origin": PORTAL})
    assert response.status_code == 201
    assert "access-control-allow-origin" not in response.headers
