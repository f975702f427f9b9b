"""Every kind of bad input: a problem+json answer naming the field, and no row written."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, InterfaceError

from app.main import create_app
from app.middleware import BodyLimit, HeadAsGet
from app.observability import REQUESTS
from models import Assessment, WeightProfile
from scoring.criteria import DEFAULT_WEIGHTS
from tests.factories import match_body


def assessments_count(client) -> int:
    with client.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Assessment))


def weights(**w):
    return {**match_body(), "weights": w}


CASES = [
    (
        "unknown enum",
        {"profile": {"innovation_stage": "pioneer", "rd_level": "low", "government_investment_will": "low"}},
        422,
        ["body", "profile", "innovation_stage"],
    ),
    ("unknown level", match_body(rd_level="huge"), 422, ["body", "profile", "rd_level"]),
    (
        "boolean for a number",
        match_body(government_investment_will=True),
        422,
        ["body", "profile", "government_investment_will"],
    ),
    (
        "number out of range",
        match_body(healthcare_capacity=1.5),
        422,
        ["body", "profile", "healthcare_capacity"],
    ),
    ("unknown profile field", match_body(gdp=3), 422, ["body", "profile", "gdp"]),
    (
        "missing core field",
        {"profile": {"innovation_stage": "chaser", "rd_level": "low"}},
        422,
        ["body", "profile", "government_investment_will"],
    ),
    ("rd twice", match_body(rd_intensity_pct=1.0), 422, ["body", "profile", "rd_intensity_pct"]),
    (
        "negative R&D intensity",
        match_body(rd_level=None, rd_intensity_pct=-0.5),
        422,
        ["body", "profile", "rd_intensity_pct"],
    ),
    ("negative weight", weights(rd=-1), 422, ["body", "weights", "rd"]),
    ("unknown weight", weights(luck=0.3), 422, ["body", "weights", "luck"]),
    (
        "all-zero weights",
        weights(
            **dict.fromkeys(
                [
                    "stage",
                    "public_investment_will",
                    "rd",
                    "healthcare_capacity",
                    "research_capacity",
                    "manufacturing_base",
                    "private_sector_strength",
                ],
                0,
            )
        ),
        422,
        ["body", "weights"],
    ),
    ("subnormal weight", weights(rd=5e-324), 422, ["body", "weights", "rd"]),
    (
        "weights only on inputs not given",
        weights(**{**dict.fromkeys(DEFAULT_WEIGHTS, 0), "healthcare_capacity": 1}),
        422,
        ["body", "profile"],
    ),
    ("unknown weight profile", {**match_body(), "weight_profile": "nobody"}, 404, ["body", "weight_profile"]),
    ("unknown method", {**match_body(), "method": "oracle"}, 422, ["body", "method"]),
]


@pytest.mark.parametrize(("name", "body", "status", "loc"), CASES, ids=[c[0] for c in CASES])
def test_bad_match_body_is_named_and_writes_nothing(client, name, body, status, loc):
    before = assessments_count(client)
    response = client.post("/v1/match", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert any(e["loc"][: len(loc)] == loc for e in problem["errors"]), problem
    # locations are field names, indices and "[key]", never a union member's validators
    assert not [part for e in problem["errors"] for part in e["loc"] if "(" in str(part)], problem
    assert assessments_count(client) == before


def test_a_bad_level_or_number_is_one_error_at_the_field_saying_what_is_expected(client):
    for bad in (1.5, "huge", True):
        problem = client.post("/v1/match", json=match_body(healthcare_capacity=bad)).json()
        assert problem["errors"] == [
            {
                "loc": ["body", "profile", "healthcare_capacity"],
                "msg": "Input should be 'low', 'medium' or 'high', or a number from 0 to 1",
                "type": "level_or_number",
            }
        ]


def test_malformed_json_is_a_400_problem(client):
    before = assessments_count(client)
    response = client.post(
        "/v1/match", content=b'{"profile": {', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"
    assert assessments_count(client) == before


def test_malformed_json_says_what_the_parser_found_and_where(client):
    problem = client.post(
        "/v1/match", content=b'{"profile": {', headers={"content-type": "application/json"}
    ).json()
    assert (
        problem["detail"]
        == "the request body is not valid JSON: Expecting property name enclosed in double quotes at character 13"
    )
    assert problem["errors"] == [
        {
            "loc": ["body", "13"],
            "msg": "JSON decode error: Expecting property name enclosed in double quotes",
            "type": "json_invalid",
        }
    ]


UNREADABLE_BODIES = [
    (
        "a number too long to read",
        b'{"profile": {"rd_intensity_pct": ' + b"9" * (sys.get_int_max_str_digits() + 1) + b"}}",
        ["body"],
        f"a number with more than {sys.get_int_max_str_digits()} digits",
    ),
    (
        "bytes that are not UTF-8",
        b'{"profile": {"innovation_stage": "\xff"}}',
        ["body", "34"],
        "not UTF-8 text (byte 0xff at byte 34: invalid start byte)",
    ),
    (
        "UTF-32 by its first bytes, but not decodable as that",
        b'\x00\x00\x00{"profile": {}}',
        ["body", "4"],
        "not UTF-8 text (byte 0x22 at byte 4: code point not in range(0x110000), read as UTF-32-BE)",
    ),
    (
        "nesting too deep",
        b'{"profile": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ["body"],
        "arrays or objects nested too deeply",
    ),
]


def _in_a_batch(body: bytes, loc: list[str], msg: str) -> tuple[bytes, list[str], str]:
    """The same bad body as the one item of a batch: positions move by the batch's opening."""
    opening = b'{"items": ['
    if len(loc) == 2:
        moved = str(int(loc[1]) + len(opening))
        loc, msg = ["body", moved], msg.replace(f"at byte {loc[1]}", f"at byte {moved}")
    return opening + body + b"]}", loc, msg


@pytest.mark.parametrize(
    ("path", "body", "loc", "msg"),
    [("/v1/match", *case[1:]) for case in UNREADABLE_BODIES]
    # In a batch, UTF-32's leading NUL bytes are no longer first: only the others apply.
    + [("/v1/match/batch", *_in_a_batch(*case[1:])) for case in UNREADABLE_BODIES if b"\x00" not in case[1]],
    ids=[case[0] for case in UNREADABLE_BODIES]
    + [f"batch, {case[0]}" for case in UNREADABLE_BODIES if b"\x00" not in case[1]],
)
def test_a_body_the_json_parser_gives_up_on_is_a_400_saying_why(client, path, body, loc, msg):
    """Not a syntax error, so the framework's own answer said only "There was an error parsing the body"."""
    before = assessments_count(client)
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "Malformed JSON"
    assert problem["detail"] == f"the request body is not valid JSON: {msg}"
    assert problem["errors"] == [{"loc": loc, "msg": msg, "type": "json_invalid"}]
    assert assessments_count(client) == before


def test_body_over_one_mebibyte_is_413(client):
    before = assessments_count(client)
    payload = b'{"profile": {"innovation_stage": "chaser"}, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/v1/match", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert assessments_count(client) == before


def test_unknown_assessment_is_404_problem(client):
    response = client.get("/v1/assessments/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "does not exist" in response.json()["detail"]


def test_country_match_with_a_malformed_code_is_404_not_500(client):
    response = client.get("/v1/countries/%C3%AA/match")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_wrong_method_names_every_allowed_method(client):
    response = client.delete("/v1/match")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_wrong_method_on_a_get_route_names_get_and_head(client):
    response = client.post("/v1/countries")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def requests_counted(method: str, route: str, status: str) -> float:
    return REQUESTS.labels(method, route, status)._value.get()


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/healthz", "/healthz"),
        ("/v1/countries?limit=2", "/v1/countries"),
        ("/v1/countries/KAZ", "/v1/countries/{iso3}"),
    ],
)
def test_head_answers_the_get_headers_and_is_counted_under_its_route(client, path, route):
    before = requests_counted("HEAD", route, "200")
    get = client.get(path)
    head = client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"] != "0"
    assert "x-request-id" in head.headers
    assert requests_counted("HEAD", route, "200") == before + 1


def test_head_sends_no_body_even_where_the_server_would():
    """The test client, like uvicorn, drops a HEAD body by itself; the middleware must not rely on it."""
    sent: list[dict] = []

    async def app(scope, receive, send):
        assert scope["method"] == "GET"
        scope["route"] = "the GET route"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "HEAD", "path": "/v1/countries", "headers": []}
    asyncio.run(HeadAsGet(app)(scope, None, send))
    assert sent[0]["headers"] == [(b"content-length", b"5")]
    assert sent[1] == {"type": "http.response.body", "body": b""}
    assert scope["method"] == "HEAD" and scope["route"] == "the GET route"


def test_head_on_a_static_file_gives_the_get_headers_and_reaches_the_files_as_head(client):
    path = "/static-docs/swagger-ui-bundle.js"
    get, head = client.get(path), client.head(path)
    assert get.status_code == head.status_code == 200
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"] and head.content == b""

    seen: list[str] = []

    async def files(scope, receive, send):
        seen.append(scope["method"])

    for p in ("/static-docs/swagger-ui.css", "/v1/countries"):
        asyncio.run(
            HeadAsGet(files, native=("/static-docs/",))(
                {"type": "http", "method": "HEAD", "path": p}, None, None
            )
        )
    assert seen == ["HEAD", "GET"]  # files answer HEAD without reading the file; routes get GET


def test_head_is_refused_where_a_get_stores_an_assessment(client):
    before = assessments_count(client)
    response = client.head("/v1/countries/KAZ/match")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert assessments_count(client) == before


def test_head_is_refused_where_a_get_stores_an_assessment_behind_a_root_path(settings):
    app = create_app(settings)
    with TestClient(app, root_path="/api", raise_server_exceptions=False) as c:
        before = assessments_count(c)
        response = c.head("/api/v1/countries/KAZ/match")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"
        assert assessments_count(c) == before
        assert c.head("/api/v1/countries/KAZ").status_code == 200
    app.state.engine.dispose()


def test_head_on_a_post_only_route_is_405(client):
    response = client.head("/v1/match")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/a/b+json",  # ends in +json, but FastAPI would not read it as JSON
    ],
)
def test_a_body_that_is_not_json_is_415_naming_the_header(client, content_type):
    before = assessments_count(client)
    response = client.post(
        "/v1/match", content=json.dumps(match_body()).encode(), headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [{"loc": ["header", "content-type"], "msg": "expected application/json"}]
    assert content_type in problem["detail"] and "application/json" in problem["detail"]
    assert "x-request-id" in response.headers
    assert assessments_count(client) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("POST", "/v1/nowhere", 404, None),  # no such path
        ("POST", "/v1/countries", 405, "GET, HEAD"),  # a path that takes no POST
        ("PUT", "/v1/match", 405, "POST"),
    ],
)
def test_a_text_body_where_no_route_takes_it_gets_404_or_405_not_415(client, method, path, status, allow):
    before = assessments_count(client)
    response = client.request(method, path, content=b"profile=KAZ", headers={"content-type": "text/plain"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("allow") == allow
    assert assessments_count(client) == before


def test_a_text_body_is_415_behind_a_root_path_and_404_off_the_api(settings):
    app = create_app(settings)
    with TestClient(app, root_path="/api", raise_server_exceptions=False) as c:
        text = {"content": b"{}", "headers": {"content-type": "text/plain"}}
        assert c.post("/api/v1/match", **text).status_code == 415
        assert c.post("/api/v1/nowhere", **text).status_code == 404
        assert c.post("/api/static-docs/swagger-ui.css", **text).status_code in (404, 405)  # files: never 415
    app.state.engine.dispose()


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/problem+json",
        "",
        None,
    ],
)
def test_json_bodies_are_read_with_or_without_a_content_type(client, content_type):
    before = requests_counted("POST", "/v1/match", "201")
    headers = {"content-type": content_type} if content_type is not None else {}
    response = client.post("/v1/match", content=json.dumps(match_body()).encode(), headers=headers)
    assert response.status_code == 201, response.text
    assert requests_counted("POST", "/v1/match", "201") == before + 1  # counted under its route


def test_openapi_and_docs_name_their_methods_on_405(client):
    assert client.options("/openapi.json").headers["allow"] == "GET, HEAD"
    assert "GET" in client.post("/docs").headers["allow"].split(", ")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/assessments/a%00b",
        "/v1/assessments/a%00b/report",
        "/v1/countries/K%00Z",
        "/v1/classifier/versions/v%001/activate",
    ],
)
def test_a_nul_in_a_path_is_a_422_naming_it_on_every_database(client, path):
    # PostgreSQL refuses NUL in any text parameter; it must never reach the database.
    response = client.post(path) if path.endswith("/activate") else client.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"][0] == "path"


def test_a_nul_in_stored_text_is_a_422_and_stores_nothing(client):
    def profiles() -> int:
        with client.app.state.sessionmaker() as s:
            return s.scalar(select(func.count()).select_from(WeightProfile))

    before = profiles()
    body = {"name": "nul-test", "weights": DEFAULT_WEIGHTS, "description": "a\x00b"}
    response = client.post("/v1/weight-profiles", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "description"]
    assert profiles() == before

    created = client.post("/v1/match", json=match_body()).json()
    response = client.post(
        f"/v1/assessments/{created['assessment_id']}/outcome",
        json={"chosen_model": "hospital", "decided_by": "team", "reason": "\x00"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "reason"]


def test_a_country_code_is_latin_letters_only(client):
    # "ı" (dotless i) upper-cases to "I"; "ıND" is not India.
    assert client.get("/v1/countries/%C4%B1ND").status_code == 404
    assert client.get("/v1/countries/ind").status_code == 200


def test_a_batch_item_that_is_not_an_object_fails_alone(client):
    before = assessments_count(client)
    response = client.post("/v1/match/batch", json={"items": [match_body(), 5, "x", None]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert "assessment_id" in results[0]
    for index in (1, 2, 3):
        assert results[index]["index"] == index and results[index]["status"] == 422
        assert results[index]["errors"][0]["loc"] == ["body", "items", str(index)]
    assert assessments_count(client) == before + 1


def test_errors_are_capped_and_the_rest_counted(client):
    body = match_body()
    body["profile"].update({f"k{i}": 1 for i in range(120)})
    problem = client.post("/v1/match", json=body).json()
    assert len(problem["errors"]) == 50 and problem["errors_omitted"] == 70

    item = {**match_body(), "extra": {f"k{i}": 1 for i in range(3)}}
    item.update({f"k{i}": 1 for i in range(80)})
    result = client.post("/v1/match/batch", json={"items": [item]}).json()["results"][0]
    assert len(result["errors"]) == 50 and result["errors_omitted"] == 31


def test_a_body_that_never_arrives_in_full_is_a_408():
    sent: list[dict] = []

    async def app(scope, receive, send):  # pragma: no cover - never reached
        raise AssertionError("the app must not see a partial body")

    async def receive():
        if not sent and not getattr(receive, "first", False):
            receive.first = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b'{"coun', "more_body": True}
        await asyncio.sleep(3600)  # a client that sent less than its Content-Length

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-length", b"100")]}
    asyncio.run(asyncio.wait_for(BodyLimit(app, max_bytes=1000, timeout=0.05)(scope, receive, send), 5))
    assert sent[0]["status"] == 408
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert b"not received in full" in sent[1]["body"]


def test_a_client_gone_before_its_body_is_counted_as_499_not_500(client):
    def count(status: str) -> float:
        return REQUESTS.labels("POST", "unmatched", status)._value.get()

    before_499, before_500 = count("499"), count("500")

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        raise AssertionError("nothing is sent to a client that is gone")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/match",
        "raw_path": b"/v1/match",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(client.app(scope, receive, send))
    assert count("499") == before_499 + 1
    assert count("500") == before_500


def test_unexpected_and_database_errors_are_problems_too(client, caplog):
    class Orig(Exception):
        pass

    def boom():
        raise RuntimeError("a bug")

    def lost():
        raise InterfaceError("SELECT 1", {}, Orig("connection lost"))

    def nul():
        raise DataError("INSERT", {}, Orig("PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    def too_long():
        raise DataError("INSERT", {}, Orig("value too long for type character varying(32)"))

    for path, endpoint in (
        ("/test-boom", boom),
        ("/test-lost", lost),
        ("/test-nul", nul),
        ("/test-long", too_long),
    ):
        client.app.add_api_route(path, endpoint)

    response = client.get("/test-boom", headers={"X-Request-ID": "abc123abc123"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc123abc123"  # sent from outside the id middleware
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "a bug" not in response.text  # nothing internal leaks

    caplog.clear()
    response = client.get("/test-lost")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert any(
        r.levelname == "WARNING" and r.exc_info for r in caplog.records if r.name == "clustermatch.errors"
    )

    response = client.get("/test-nul")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    caplog.clear()
    response = client.get("/test-long")  # a value the server built itself: its own fault, not the caller's
    assert response.status_code == 500 and "x-request-id" in response.headers
    assert any(
        r.levelname == "ERROR" and r.exc_info for r in caplog.records if r.name == "clustermatch.errors"
    )


def test_405_on_the_static_files_names_their_methods(client):
    response = client.post("/static-docs/swagger-ui.css")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "setting",
    [
        {"robustness_samples": 0},
        {"robustness_concentration": -1.0},
        {"body_timeout_seconds": 0},
        {"db_statement_timeout_seconds": -1},
    ],
)
def test_settings_that_would_break_every_match_are_refused_at_start(setting):
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError) as info:
        Settings(**setting)
    assert next(iter(setting)) in str(info.value)


def test_every_error_answer_is_documented_as_problem_json_only(client):
    checked = 0
    for path, item in client.get("/openapi.json").json()["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code[0] in "45" and "content" in response:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, code)
                    assert "schema" in response["content"]["application/problem+json"], (method, path, code)
                    checked += 1
    assert checked > 100


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"country": "GIB"},
            "no value for any criterion with a weight > 0 (innovation_stage, government_investment_will, "
            "rd_level or rd_intensity_pct, healthcare_capacity, research_capacity, manufacturing_base, "
            "private_sector_strength): the reference data of GIB (Gibraltar) has none of them",
        ),
        (
            weights(**{**dict.fromkeys(DEFAULT_WEIGHTS, 0), "manufacturing_base": 2}),
            "no value for any criterion with a weight > 0 (manufacturing_base): none is given",
        ),
    ],
    ids=["a country without data", "weights only on missing inputs"],
)
def test_a_profile_with_no_weighted_input_names_the_inputs_not_the_weights(client, body, fragment):
    before = assessments_count(client)
    problem = client.post("/v1/match", json=body).json()
    assert problem["status"] == 422
    assert problem["errors"][0]["loc"] == ["body", "profile"]
    assert fragment in problem["detail"], problem["detail"]
    assert "give at least one of them in profile, or weight a criterion that has a value" in problem["detail"]
    assert assessments_count(client) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (match_body(rd_level=None, rd_intensity_pct=float("nan")), ["body", "profile", "rd_intensity_pct"]),
        (
            match_body(government_investment_will=float("inf")),
            ["body", "profile", "government_investment_will"],
        ),
        (match_body(healthcare_capacity=float("-inf")), ["body", "profile", "healthcare_capacity"]),
        (weights(rd=float("inf")), ["body", "weights", "rd"]),
        (match_body(rd_level=None, rd_intensity_pct="nan"), ["body", "profile", "rd_intensity_pct"]),
        (match_body(healthcare_capacity="NaN"), ["body", "profile", "healthcare_capacity"]),
        (weights(rd="Infinity"), ["body", "weights", "rd"]),
    ],
    ids=[
        "NaN",
        "Infinity",
        "-Infinity",
        "infinite weight",
        '"nan"',
        '"NaN" for a level',
        '"Infinity" weight',
    ],
)
def test_nan_and_infinity_are_named_as_not_finite(client, body, loc):
    """Python's JSON reader takes NaN and Infinity (json.dumps writes them); the answer says that,
    not that a bound was missed or that the value is neither a level nor a number."""
    before = assessments_count(client)
    text = json.dumps(body)  # NaN, Infinity, -Infinity
    response = client.post("/v1/match", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["loc"] == loc and error["msg"].startswith("Input should be a finite number, not "), error
    assert assessments_count(client) == before


def test_a_country_match_by_url_names_the_url_parts(client):
    """GET /v1/countries/{iso3}/match has no body: its errors name the path and the query."""
    before = assessments_count(client)
    problem = client.get("/v1/countries/GIB/match").json()
    assert problem["status"] == 422 and problem["errors"][0]["loc"] == ["path", "iso3"], problem
    assert "the reference data of GIB (Gibraltar) has none of them" in problem["detail"]
    assert "POST /v1/match with this country and at least one of them in profile" in problem["detail"]
    unknown = client.get("/v1/countries/KAZ/match?weight_profile=nobody").json()
    assert unknown["status"] == 404 and unknown["errors"][0]["loc"] == ["query", "weight_profile"], unknown
    assert assessments_count(client) == before


@pytest.mark.parametrize(
    ("url", "loc"),
    [
        ("/v1/cluster-models/hospital/countries?weight_profile=nobody", ["query", "weight_profile"]),
        ("/v1/weight-profiles/nobody", ["path", "name"]),
    ],
)
def test_an_unknown_weight_profile_is_named_where_the_request_gave_it(client, url, loc):
    problem = client.get(url).json()
    assert problem["status"] == 404 and problem["errors"] == [{"loc": loc, "msg": "unknown"}], problem
