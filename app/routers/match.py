"""Matching and stored assessments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response

from app.csv_export import batch_csv_response, wants_csv
from app.dependencies import SessionDep, SettingsDep
from app.fast_route import ValidBodyFastPath
from app.openapi_examples import BATCH_EXAMPLE, MATCH_EXAMPLES
from app.routers.common import READ, WRITE, problems
from app.schemas import NO_NUL, BatchRequest, BatchResponse, MatchRequest, MatchResponse
from app.security import READ_SCOPE
from app.services import assessments, matching

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1", tags=["matching"], dependencies=READ_SCOPE)


async def post_match(
    request: Annotated[MatchRequest, Body(openapi_examples=MATCH_EXAMPLES)],
    http: Request,
) -> Any:
    """Rank production, hospital, research and composite for one country profile, explain the
    ranking per criterion, and store it as an assessment you can read back by its id.

    하나의 국가 프로필에 대해 네 가지 모델(생산·병원·연구·복합형)의 순위를 매기고 항목별 근거와 함께
    평가 결과를 저장합니다. Give `country` (ISO3) to fill missing values from the reference data;
    without it, `innovation_stage`, `rd_level` (or `rd_intensity_pct`) and `government_investment_will`
    are required.
    """
    # The body is built by the service to the MatchResponse shape (the tests and the schema fuzzer
    # hold it to that); re-validating it here would cost more than the scoring itself. The settings
    # are read from the app's state, not as a dependency: each dependency FastAPI resolves costs a few
    # microseconds on the busiest route.
    state = http.app.state
    body = await matching.match(state.sessionmaker, state.writer, request=request, settings=state.settings)
    return Response(body, status_code=201, media_type="application/json")


# Added as a call, not with @router.post, which takes no route class: a valid body skips FastAPI's
# per-request machinery, and every error is still FastAPI's own answer (app/fast_route.py).
router.add_api_route(
    "/match",
    post_match,
    methods=["POST"],
    status_code=201,
    response_model=MatchResponse,
    responses={**WRITE, **problems(404)},
    summary="Rank the four export models for a profile / 프로필에 맞는 수출 모델 순위",
    route_class_override=ValidBodyFastPath,
)


@router.post(
    "/match/batch",
    response_model=BatchResponse,
    responses={
        **WRITE,
        200: {"content": {"text/csv": {}}, "description": "Results (JSON, or CSV on request)"},
    },
    summary="Rank many profiles in one call / 여러 프로필 일괄 평가",
)
async def post_match_batch(
    request: Annotated[BatchRequest, Body(openapi_examples=BATCH_EXAMPLE)],
    http: Request,
    settings: SettingsDep,
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv: one row per item and model")
    ] = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Each item is a match request; results come back in the same order. A bad item gets its own
    error entry and does not fail the others. `?format=csv` (or `Accept: text/csv`) answers CSV in
    UTF-8 with BOM, ready for Excel. 항목별 오류는 해당 항목에만 표시됩니다."""
    state = http.app.state
    results = await matching.match_batch(
        state.sessionmaker, state.writer, items=request.items, settings=settings
    )
    if wants_csv(format, accept):
        return batch_csv_response(matching.batch_dicts(results))
    return Response(matching.batch_json(results), media_type="application/json")


@router.get(
    "/assessments/{assessment_id}",
    response_model=MatchResponse,
    responses={**READ, **problems(404)},
    summary="A stored assessment / 저장된 평가 조회",
)
def get_assessment(
    assessment_id: Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)], session: SessionDep
) -> Any:
    """The assessment exactly as it was returned when it was made. 생성 당시 응답 그대로 반환합니다."""
    return Response(
        assessments.get_response_text(session, assessment_id=assessment_id), media_type="application/json"
    )
