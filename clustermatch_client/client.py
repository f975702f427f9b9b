"""Sync and async clients for the ClusterMatch v1 API, typed with the service's own schemas."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from app.schemas import BatchResponse, ClusterModelOut, MatchRequest, MatchResponse, Method
from app.schemas_countries import CountryDetail
from clustermatch_client.errors import ClusterMatchError
from clustermatch_client.retry import RetryPolicy, next_wait

T = TypeVar("T")
Lang = Literal["en", "ko"]
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
_CLUSTER_MODELS = TypeAdapter(list[ClusterModelOut])


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)


def _segment(value: str) -> str:
    # Ids and codes go into the path; quoting keeps a stray "/" or "?" from changing the route.
    return quote(value, safe="")


def _match_body(
    request: MatchRequest | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate locally (a bad field fails before any request) and dump as the API expects."""
    base = (
        request.model_dump(mode="json", exclude_none=True) if isinstance(request, MatchRequest) else request
    )
    parsed = MatchRequest.model_validate({**(base or {}), **fields})
    return parsed.model_dump(mode="json", exclude_none=True)


def _batch_item(item: MatchRequest | Mapping[str, Any]) -> dict[str, Any]:
    # Mappings go as given: the service validates each item and reports a bad one in its place.
    return item.model_dump(mode="json", exclude_none=True) if isinstance(item, MatchRequest) else dict(item)


def call_match(
    request: MatchRequest | Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> Call[MatchResponse]:
    body = _match_body(request, fields)
    return Call("POST", "/v1/match", lambda r: MatchResponse.model_validate(r.json()), json=body)


def call_match_batch(items: Sequence[MatchRequest | Mapping[str, Any]]) -> Call[BatchResponse]:
    body = {"items": [_batch_item(i) for i in items]}
    return Call("POST", "/v1/match/batch", lambda r: BatchResponse.model_validate(r.json()), json=body)


def call_get_assessment(assessment_id: str) -> Call[MatchResponse]:
    path = f"/v1/assessments/{_segment(assessment_id)}"
    return Call("GET", path, lambda r: MatchResponse.model_validate(r.json()))


def call_cluster_models() -> Call[list[ClusterModelOut]]:
    return Call("GET", "/v1/cluster-models", lambda r: _CLUSTER_MODELS.validate_python(r.json()))


def call_country(iso3: str) -> Call[CountryDetail]:
    return Call("GET", f"/v1/countries/{_segment(iso3)}", lambda r: CountryDetail.model_validate(r.json()))


def call_country_match(
    iso3: str, method: Method | str | None, weight_profile: str | None
) -> Call[MatchResponse]:
    params = {"method": Method(method).value} if method is not None else {}
    if weight_profile is not None:
        params["weight_profile"] = weight_profile
    path = f"/v1/countries/{_segment(iso3)}/match"
    return Call("GET", path, lambda r: MatchResponse.model_validate(r.json()), params=params)


def call_report_html(assessment_id: str, lang: Lang) -> Call[str]:
    path = f"/v1/assessments/{_segment(assessment_id)}/report"
    return Call("GET", path, lambda r: r.text, params={"lang": lang})


def call_chart_svg(assessment_id: str, name: str, lang: Lang) -> Call[str]:
    path = f"/v1/assessments/{_segment(assessment_id)}/charts/{_segment(name)}.svg"
    return Call("GET", path, lambda r: r.text, params={"lang": lang})


def _unreachable(exc: httpx.TransportError) -> ClusterMatchError:
    problem = {
        "type": "about:blank",
        "title": "Service unreachable",
        "status": 503,
        "detail": f"could not connect to the service: {exc}",
    }
    return ClusterMatchError(problem)


class _Settings:
    def __init__(self, api_key: str | None, retry: RetryPolicy | None) -> None:
        self.retry = retry or RetryPolicy()
        self.headers = {"Accept": "application/json, application/problem+json;q=0.9, */*;q=0.1"}
        if api_key:
            self.headers["X-API-Key"] = api_key


class Client:
    """Blocking client. Pass `http_client` (e.g. FastAPI's TestClient) to reuse a configured httpx.Client;
    it then keeps its own base URL and is not closed by `close()`."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._settings = _Settings(api_key, retry)
        self._sleep = sleep
        self._owned = http_client is None
        self._http = http_client or httpx.Client(base_url=base_url, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params or None,
                    headers=self._settings.headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached the service, so even a POST is safe to send again.
                wait = next_wait(self._settings.retry, attempt, None)
                if wait is None:
                    raise _unreachable(exc) from exc
                self._sleep(wait)
                continue
            if response.is_success:
                return call.parse(response)
            wait = next_wait(self._settings.retry, attempt, response)
            if wait is None:
                raise ClusterMatchError.from_response(response)
            self._sleep(wait)

    def match(self, request: MatchRequest | Mapping[str, Any] | None = None, **fields: Any) -> MatchResponse:
        """POST /v1/match: rank the four models for one profile (stored as an assessment)."""
        return self._run(call_match(request, fields))

    def match_batch(self, items: Sequence[MatchRequest | Mapping[str, Any]]) -> BatchResponse:
        """POST /v1/match/batch: results in the same order; a bad item is a BatchItemError in its place."""
        return self._run(call_match_batch(items))

    def get_assessment(self, assessment_id: str) -> MatchResponse:
        """GET /v1/assessments/{id}: a stored assessment exactly as it was returned."""
        return self._run(call_get_assessment(assessment_id))

    def cluster_models(self) -> list[ClusterModelOut]:
        """GET /v1/cluster-models: the four export models."""
        return self._run(call_cluster_models())

    def country(self, iso3: str) -> CountryDetail:
        """GET /v1/countries/{iso3}: derived profile and raw indicators of one economy."""
        return self._run(call_country(iso3))

    def country_match(
        self, iso3: str, *, method: Method | str | None = None, weight_profile: str | None = None
    ) -> MatchResponse:
        """GET /v1/countries/{iso3}/match: the match for a country's reference profile."""
        return self._run(call_country_match(iso3, method, weight_profile))

    def report_html(self, assessment_id: str, *, lang: Lang = "en") -> str:
        """GET /v1/assessments/{id}/report: the printable report page as HTML."""
        return self._run(call_report_html(assessment_id, lang))

    def chart_svg(self, assessment_id: str, name: str, *, lang: Lang = "en") -> str:
        """GET /v1/assessments/{id}/charts/{name}.svg (radar, contributions, positioning)."""
        return self._run(call_chart_svg(assessment_id, name, lang))


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class AsyncClient:
    """Asyncio client with the same methods as `Client`; pass `http_client` to reuse an httpx.AsyncClient
    (e.g. one on `httpx.ASGITransport(app=...)`)."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = _asyncio_sleep,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = _Settings(api_key, retry)
        self._sleep = sleep
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    params=call.params or None,
                    headers=self._settings.headers,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                wait = next_wait(self._settings.retry, attempt, None)
                if wait is None:
                    raise _unreachable(exc) from exc
                await self._sleep(wait)
                continue
            if response.is_success:
                return call.parse(response)
            wait = next_wait(self._settings.retry, attempt, response)
            if wait is None:
                raise ClusterMatchError.from_response(response)
            await self._sleep(wait)

    async def match(
        self, request: MatchRequest | Mapping[str, Any] | None = None, **fields: Any
    ) -> MatchResponse:
        """POST /v1/match: rank the four models for one profile (stored as an assessment)."""
        return await self._run(call_match(request, fields))

    async def match_batch(self, items: Sequence[MatchRequest | Mapping[str, Any]]) -> BatchResponse:
        """POST /v1/match/batch: results in the same order; a bad item is a BatchItemError in its place."""
        return await self._run(call_match_batch(items))

    async def get_assessment(self, assessment_id: str) -> MatchResponse:
        """GET /v1/assessments/{id}: a stored assessment exactly as it was returned."""
        return await self._run(call_get_assessment(assessment_id))

    async def cluster_models(self) -> list[ClusterModelOut]:
        """GET /v1/cluster-models: the four export models."""
        return await self._run(call_cluster_models())

    async def country(self, iso3: str) -> CountryDetail:
        """GET /v1/countries/{iso3}: derived profile and raw indicators of one economy."""
        return await self._run(call_country(iso3))

    async def country_match(
        self, iso3: str, *, method: Method | str | None = None, weight_profile: str | None = None
    ) -> MatchResponse:
        """GET /v1/countries/{iso3}/match: the match for a country's reference profile."""
        return await self._run(call_country_match(iso3, method, weight_profile))

    async def report_html(self, assessment_id: str, *, lang: Lang = "en") -> str:
        """GET /v1/assessments/{id}/report: the printable report page as HTML."""
        return await self._run(call_report_html(assessment_id, lang))

    async def chart_svg(self, assessment_id: str, name: str, *, lang: Lang = "en") -> str:
        """GET /v1/assessments/{id}/charts/{name}.svg (radar, contributions, positioning)."""
        return await self._run(call_chart_svg(assessment_id, name, lang))
