"""The Python client: against the app through httpx transports, and its retry rules on a mock transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import ValidationError

from app.main import create_app
from app.routers.meta import list_cluster_models
from app.schemas import BatchItemError, ClusterModelOut, MatchRequest, MatchResponse
from clustermatch_client import AsyncClient, Client, ClusterMatchError, RetryPolicy
from clustermatch_client.retry import retry_after_seconds
from tests.factories import match_body

PROBLEM_503 = {
    "type": "about:blank",
    "title": "Service unavailable",
    "status": 503,
    "detail": "database down",
}


# --- against the app ---------------------------------------------------------------------------


def test_sync_client_covers_the_partner_workflow(client):
    cm = Client(http_client=client)
    result = cm.match(country="KAZ", method="rules")
    assert isinstance(result, MatchResponse) and result.country.iso3 == "KAZ"
    assert cm.get_assessment(result.assessment_id) == result
    assert [m.id for m in cm.cluster_models()] == ["production", "hospital", "research", "composite"]
    assert cm.country("kaz").name == "Kazakhstan"
    by_code = client.get("/v1/countries/VNM/match", params={"method": "rules"}).json()
    assert cm.country_match("VNM", method="rules").recommended_model == by_code["recommended_model"]
    page = cm.report_html(result.assessment_id, lang="ko")
    assert page.startswith("<!DOCTYPE html>") and 'lang="ko"' in page
    assert cm.chart_svg(result.assessment_id, "radar").lstrip().startswith("<?xml")


def test_sync_client_accepts_a_typed_request_and_keyword_overrides(client):
    cm = Client(http_client=client)
    request = MatchRequest.model_validate(match_body(healthcare_capacity="high"))
    assert cm.match(request).recommended_model == "hospital"
    assert cm.match(request, method="rules").method.value == "rules"


def test_batch_returns_results_and_item_errors_in_order(client):
    cm = Client(http_client=client)
    batch = cm.match_batch([MatchRequest.model_validate(match_body()), {"country": "XXX"}, {"bogus": 1}])
    first, unknown, invalid = batch.results
    assert isinstance(first, MatchResponse)
    assert isinstance(unknown, BatchItemError) and unknown.status == 404 and unknown.index == 1
    assert isinstance(invalid, BatchItemError) and invalid.status == 422


def test_refused_request_raises_with_the_problem_body(client):
    with pytest.raises(ClusterMatchError) as caught:
        Client(http_client=client).match(country="KAX")
    error = caught.value
    assert error.status == 404 and error.title == "Not found"
    assert "KAZ" in [s["iso3"] for s in error.problem["suggestions"]]
    assert error.response is not None and error.response.headers["content-type"] == "application/problem+json"


def test_unknown_assessment_raises_404(client):
    with pytest.raises(ClusterMatchError) as caught:
        Client(http_client=client).report_html("0" * 32)
    assert caught.value.status == 404


def test_async_client_against_the_app(settings):
    app = create_app(settings)

    async def scenario() -> tuple[MatchResponse, MatchResponse, list[ClusterModelOut], str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            cm = AsyncClient(http_client=http)
            created = await cm.match(country="VNM", method="rules")
            again = await cm.get_assessment(created.assessment_id)
            models = await cm.cluster_models()
            page = await cm.report_html(created.assessment_id)
            with pytest.raises(ClusterMatchError):
                await cm.country("KAX")
            return created, again, models, page

    try:
        created, again, models, page = asyncio.run(scenario())
    finally:
        app.state.engine.dispose()
    assert created == again and created.country.iso3 == "VNM"
    assert len(models) == 4 and "Vietnam (VNM)" in page


# --- without the app: validation and retries ---------------------------------------------------


class Recorder:
    """A scripted server for httpx.MockTransport; remembers what it was sent."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def models_ok() -> httpx.Response:
    return httpx.Response(200, json=json.loads(json.dumps(list_cluster_models())))


def problem(status: int, **headers: str) -> httpx.Response:
    body = {**PROBLEM_503, "status": status, "title": "Too many requests" if status == 429 else "Error"}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **headers})


def mock_client(recorder: Recorder, sleeps: list[float], **kwargs) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(recorder), base_url="http://cm.test")
    return Client(http_client=http, sleep=sleeps.append, **kwargs)


def test_invalid_request_fails_locally_without_a_call():
    recorder = Recorder(models_ok())
    with pytest.raises(ValidationError):
        mock_client(recorder, []).match(profile={"innovation_stage": "nope"})
    assert recorder.requests == []


def test_429_then_503_are_retried_honouring_retry_after():
    recorder = Recorder(problem(429, **{"Retry-After": "2"}), problem(503), models_ok())
    sleeps: list[float] = []
    models = mock_client(recorder, sleeps, retry=RetryPolicy(max_attempts=3, backoff=0.5)).cluster_models()
    assert len(models) == 4
    assert sleeps == [2.0, 1.0]  # the server's Retry-After, then backoff * 2 ** 1
    assert len(recorder.requests) == 3


def test_gives_up_after_max_attempts_with_the_last_problem():
    recorder = Recorder(problem(503))
    sleeps: list[float] = []
    with pytest.raises(ClusterMatchError) as caught:
        mock_client(recorder, sleeps, retry=RetryPolicy(max_attempts=4, backoff=0.1)).cluster_models()
    assert caught.value.status == 503 and caught.value.problem["detail"] == "database down"
    assert len(recorder.requests) == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_retry_after_beyond_max_wait_stops_instead_of_retrying_early():
    recorder = Recorder(problem(429, **{"Retry-After": "120"}), models_ok())
    sleeps: list[float] = []
    with pytest.raises(ClusterMatchError) as caught:
        mock_client(recorder, sleeps, retry=RetryPolicy(max_wait=30)).cluster_models()
    assert caught.value.status == 429 and sleeps == [] and len(recorder.requests) == 1


def test_client_errors_are_not_retried():
    recorder = Recorder(problem(422), models_ok())
    sleeps: list[float] = []
    with pytest.raises(ClusterMatchError):
        mock_client(recorder, sleeps).cluster_models()
    assert len(recorder.requests) == 1 and sleeps == []


def test_a_non_json_error_still_becomes_a_problem():
    recorder = Recorder(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ClusterMatchError) as caught:
        mock_client(recorder, [], retry=RetryPolicy(max_attempts=1)).cluster_models()
    assert caught.value.problem["status"] == 502 and "bad gateway" in caught.value.detail


def test_connection_refused_is_retried_then_reported_as_unreachable():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder = Recorder(refuse)
    sleeps: list[float] = []
    with pytest.raises(ClusterMatchError) as caught:
        mock_client(recorder, sleeps, retry=RetryPolicy(max_attempts=2, backoff=0.25)).cluster_models()
    assert caught.value.title == "Service unreachable" and sleeps == [0.25]


def test_api_key_is_sent_on_every_request():
    recorder = Recorder(models_ok())
    mock_client(recorder, [], api_key="cm_test_key").cluster_models()
    assert recorder.requests[0].headers["X-API-Key"] == "cm_test_key"


def test_retry_after_may_be_an_http_date():
    when = datetime.now(UTC) + timedelta(seconds=30)
    response = httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    assert 25 <= retry_after_seconds(response) <= 31


def test_async_client_retries_with_an_injected_sleep():
    recorder = Recorder(problem(429, **{"Retry-After": "1"}), models_ok())
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def scenario() -> int:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(recorder), base_url="http://cm.test"
        ) as http:
            return len(await AsyncClient(http_client=http, sleep=sleep).cluster_models())

    assert asyncio.run(scenario()) == 4 and slept == [1.0]
