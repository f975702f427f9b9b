"""Reference countries, their match, and target discovery per model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from app.csv_export import country_csv_rows, csv_response, wants_csv
from app.dependencies import SessionDep, SettingsDep
from app.errors import ServiceError
from app.routers.common import READ, problems
from app.schemas import NO_NUL, MatchRequest, MatchResponse, Method, ProfileName
from app.schemas_countries import CountryDetail, CountryPage, ModelCountries
from app.security import READ_SCOPE
from app.services import countries, discovery, matching, reference
from scoring.profile import Stage

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1", tags=["countries"], dependencies=READ_SCOPE)

ISO3Path = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL, examples=["KAZ"])]


@router.get(
    "/countries",
    response_model=CountryPage,
    responses={
        **READ,
        200: {"content": {"text/csv": {}}, "description": "A page of countries (JSON, or CSV on request)"},
    },
    summary="Reference countries / 참조 국가 목록",
)
def list_countries(
    session: SessionDep,
    region: Annotated[str | None, Query(max_length=128, examples=["Europe & Central Asia"])] = None,
    income_group: Annotated[str | None, Query(max_length=64, examples=["Upper middle income"])] = None,
    stage: Stage | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    format: Annotated[Literal["json", "csv"] | None, Query(description="csv: one row per country")] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Economies of the World Bank list with their derived profile (stage, R&D level, proxies).
    Filter by `region`, `income_group` (World Bank FY2026 names) or derived `stage`; paginated.
    세계은행 분류 기준 국가별 파생 프로필을 조회합니다."""
    page = countries.get_all(
        session, region=region, income_group=income_group, stage=stage, limit=limit, offset=offset
    )
    if wants_csv(format, accept):
        return csv_response(country_csv_rows(page["items"]), "clustermatch-countries.csv")
    return page


@router.get(
    "/countries/{iso3}",
    response_model=CountryDetail,
    responses={**READ, **problems(404)},
    summary="One country: derived profile and raw indicators / 국가 상세",
)
def get_country(iso3: ISO3Path, session: SessionDep) -> Any:
    """The derived profile (with how each value was derived) and every raw indicator with its
    source, indicator code and year. Unknown code: 404 listing close matches by code and name."""
    return countries.get(session, iso3=iso3)


@router.get(
    "/countries/{iso3}/match",
    response_model=MatchResponse,
    responses={**READ, **problems(404, 422)},
    summary="Match a country's reference profile / 국가 참조 프로필로 모델 매칭",
)
async def match_country(
    iso3: ISO3Path,
    http: Request,
    settings: SettingsDep,
    method: Method = Method.HYBRID,
    weight_profile: Annotated[ProfileName, Query()] = "default",
) -> Any:
    """Same response as `POST /v1/match` with only `country` given; stored as an assessment so its
    report can be opened later."""
    state = http.app.state
    # 404 with close matches for any unknown code, before the code goes into a request.
    _, country = await run_in_threadpool(_reference_country, state.sessionmaker, iso3)
    request = MatchRequest(country=country.iso3, method=method, weight_profile=weight_profile)
    try:
        body = await matching.match(state.sessionmaker, state.writer, request=request, settings=settings)
    except ServiceError as exc:
        raise _located_in_url(exc) from None
    return Response(body, media_type="application/json")


def _located_in_url(exc: ServiceError) -> ServiceError:
    """An error of the match this route made, located where its caller gave the input: the request's
    other fields are this route's query parameters, and a country whose reference data cannot be
    scored is the path's code."""
    if isinstance(exc, matching.Unscorable):
        return matching.Unscorable(
            exc.inputs,
            exc.country,
            field="iso3",
            where="path",
            remedy="POST /v1/match with this country and at least one of them in profile, or choose a "
            "weight_profile that weights a criterion it has",
        )
    if exc.errors:
        exc.errors = [
            {**e, "loc": ["query", *e["loc"][1:]]} if e["loc"][:1] == ["body"] else e for e in exc.errors
        ]
    return exc


def _reference_country(
    sessions: sessionmaker[Session], iso3: str
) -> tuple[reference.ReferenceTable, reference.ReferenceCountry]:
    with sessions() as session:
        return reference.get_country(session, iso3=iso3)


@router.get(
    "/cluster-models/{model_id}/countries",
    response_model=ModelCountries,
    responses={**READ, **problems(404, 422)},
    tags=["cluster models"],
    summary="Target discovery: where a model fits best / 모델별 적합 국가 순위",
)
def rank_countries_for_model(
    model_id: Literal["production", "hospital", "research", "composite"],
    session: SessionDep,
    region: Annotated[str | None, Query(max_length=128)] = None,
    income_group: Annotated[str | None, Query(max_length=64)] = None,
    stage: Stage | None = None,
    weight_profile: Annotated[ProfileName, Query()] = "default",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Every country of the reference data ranked by the rule score of one model, using its
    reference profile and the weight profile. Scores use fixed bounds, so a country's score does
    not depend on which others are listed."""
    return discovery.ranking(
        session,
        model_id=model_id,
        weight_profile=weight_profile,
        region=region,
        income_group=income_group,
        stage=stage,
        limit=limit,
    )
