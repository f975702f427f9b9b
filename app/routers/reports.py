"""Printable report pages, SVG charts and CSV exports for consultants and partner portals."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from app.csv_export import MODEL_RANKING_COLUMNS, csv_response
from app.dependencies import SessionDep
from app.errors import PROBLEM_JSON
from app.routers.common import problems
from app.schemas import NO_NUL, ModelId, Problem, ProfileName
from app.security import READ_SCOPE
from app.services import report
from scoring.profile import Stage

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1", tags=["reports"], dependencies=READ_SCOPE)

SVG_MEDIA_TYPE = "image/svg+xml"
# The page and its charts are self-contained: this policy makes the browser refuse anything the
# markup might try to fetch from elsewhere (fonts, scripts, images), so a printed report never leaks.
SELF_CONTAINED = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
}

AssessmentId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=NO_NUL, description="Id returned by POST /v1/match")
]
LangQuery = Annotated[
    Literal["en", "ko"], Query(description="Language of the page: `en` (English) or `ko` (한국어)")
]
Region = Annotated[str | None, Query(max_length=128, examples=["East Asia & Pacific"])]
IncomeGroup = Annotated[str | None, Query(max_length=64, examples=["Lower middle income"])]
WeightProfileQuery = Annotated[ProfileName, Query(description="Weight profile (latest version)")]


class ChartName(StrEnum):
    RADAR = "radar"
    CONTRIBUTIONS = "contributions"
    POSITIONING = "positioning"


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The shared problem responses, documented as problem+json only.

    With `model=` FastAPI would also list the route's own media type (HTML, SVG, CSV) for errors,
    which these routes never send; an inline schema keeps the documentation true.
    """
    schema = Problem.model_json_schema()
    return {
        code: {"description": spec["description"], "content": {PROBLEM_JSON: {"schema": schema}}}
        for code, spec in problems(*codes).items()
    }


ERRORS = problem_responses(401, 403, 404, 422, 429, 503)
HTML_200: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "A self-contained, printable HTML page"}
}
SVG_200: dict[int | str, dict[str, Any]] = {
    200: {"content": {SVG_MEDIA_TYPE: {}}, "description": "A standalone SVG image"}
}
CSV_200: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with a byte-order mark"}
}


@router.get(
    "/assessments/{assessment_id}/report",
    response_class=HTMLResponse,
    responses={**HTML_200, **ERRORS},
    summary="Printable report of an assessment / 평가 보고서(인쇄용)",
)
def get_report(assessment_id: AssessmentId, session: SessionDep, lang: LangQuery = "en") -> HTMLResponse:
    """A one-document report for a proposal: the country and its profile with the source of every
    value, the four models ranked with per-criterion contributions, gates, robustness and
    first-place shares, what would change the answer, the reference Korean and foreign clusters and
    the operating structure of the recommended model, and the versions needed to reproduce it.
    Charts are inline SVG; nothing is fetched from elsewhere. Prints on A4 (Ctrl+P).

    평가 결과를 제안서에 쓸 수 있도록 한 문서로 정리합니다: 국가 프로필과 출처, 모델 순위와 항목별 기여도,
    필수 조건, 견고성, 추천 모델의 국내외 사례와 운영 구조, 재현 정보. `lang=ko`로 한국어 보고서를 엽니다.
    """
    page = report.render_report(session, assessment_id=assessment_id, lang=lang)
    return HTMLResponse(page, headers=SELF_CONTAINED)


@router.get(
    "/assessments/{assessment_id}/charts/{name}.svg",
    response_class=Response,
    responses={**SVG_200, **ERRORS},
    summary="One chart of an assessment as SVG / 평가 차트(SVG)",
)
def get_chart(
    assessment_id: AssessmentId, name: ChartName, session: SessionDep, lang: LangQuery = "en"
) -> Response:
    """The report's charts on their own, for slides and documents:

    - `radar`: the country's seven inputs on [0, 1] against each model's ideal profile (where its fit
      curves peak);
    - `contributions`: per model, a bar stacked by criterion (weight × fit), with the cut made by
      failed gates;
    - `positioning`: the seed's positioning map (Table 1: cluster maturity × value-chain focus) with
      the reference clusters by quadrant and the country placed approximately (explained on the chart).

    Colour-blind-safe (Okabe-Ito) and legible in grey-scale print: series also differ by pattern,
    dash or shape. 보고서 차트를 개별 SVG 파일로 제공합니다.
    """
    svg = report.chart_svg(session, assessment_id=assessment_id, name=name.value, lang=lang)
    return Response(svg, media_type=SVG_MEDIA_TYPE, headers=SELF_CONTAINED)


@router.get(
    "/cluster-models/{model_id}/countries.svg",
    response_class=Response,
    responses={**SVG_200, **ERRORS},
    tags=["cluster models"],
    summary="Chart: countries where a model fits best / 모델 적합 국가 순위 차트(SVG)",
)
def get_model_countries_chart(
    model_id: ModelId,
    session: SessionDep,
    region: Region = None,
    income_group: IncomeGroup = None,
    stage: Stage | None = None,
    weight_profile: WeightProfileQuery = "default",
    limit: Annotated[int, Query(ge=1, le=60, description="How many countries to draw")] = 20,
    lang: LangQuery = "en",
) -> Response:
    """Target discovery as a picture: the top countries by the rule score of one model, computed
    from each country's reference profile (the same arithmetic as `POST /v1/match` with
    `method=rules`). Filter by World Bank `region`, `income_group` or derived `stage`.
    모델별로 적합도가 높은 국가 순위를 막대 차트로 보여줍니다."""
    svg = report.model_countries_svg(
        session,
        model_id=model_id,
        weight_profile=weight_profile,
        region=region,
        income_group=income_group,
        stage=stage,
        limit=limit,
        lang=lang,
    )
    return Response(svg, media_type=SVG_MEDIA_TYPE, headers=SELF_CONTAINED)


@router.get(
    "/cluster-models/{model_id}/countries.csv",
    response_class=Response,
    responses={**CSV_200, **ERRORS},
    tags=["cluster models"],
    summary="Export: countries ranked for a model / 모델 적합 국가 순위 CSV",
)
def get_model_countries_csv(
    model_id: ModelId,
    session: SessionDep,
    region: Region = None,
    income_group: IncomeGroup = None,
    stage: Stage | None = None,
    weight_profile: WeightProfileQuery = "default",
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="At most this many rows; all by default")
    ] = None,
) -> Any:
    """Every reference country ranked by one model's rule score, one row each, with the weight
    profile and data version used. UTF-8 with a byte-order mark so Excel shows Korean correctly.
    엑셀에서 바로 열 수 있는 CSV(UTF-8, BOM 포함)로 내려받습니다."""
    rows = report.model_countries_rows(
        session,
        model_id=model_id,
        weight_profile=weight_profile,
        region=region,
        income_group=income_group,
        stage=stage,
        limit=limit,
    )
    return csv_response(rows, f"clustermatch-{model_id}-countries.csv", columns=MODEL_RANKING_COLUMNS)
