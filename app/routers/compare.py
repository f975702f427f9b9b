"""What-if scenarios and country comparisons, side by side."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body

from app.dependencies import SessionDep, SettingsDep
from app.routers.common import WRITE, problems
from app.schemas_weights import CompareRequest, CompareResponse
from app.security import READ_SCOPE
from app.services import compare

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1", tags=["matching"], dependencies=READ_SCOPE)

COMPARE_EXAMPLES: dict[str, dict[str, Any]] = {
    "kazakhstan_what_if": {
        "summary": "Kazakhstan as a chaser: what if public will rises to high?",
        "description": "seeds/000 Tables 2-3 name Kazakhstan as a chaser for the hospital and research "
        "models; the reference data fill the rest. Each scenario changes only what it names.",
        "value": {
            "base": {"country": "KAZ", "profile": {"innovation_stage": "chaser"}, "method": "rules"},
            "scenarios": [
                {"name": "public will rises to high", "profile": {"government_investment_will": "high"}},
                {"name": "R&D rises to 1.5 % of GDP", "profile": {"rd_intensity_pct": 1.5}},
                {
                    "name": "public will weighs double",
                    "weights": {"public_investment_will": 0.5},
                },
            ],
        },
    },
    "countries": {
        "summary": "Three Central and Southeast Asian countries side by side",
        "description": "Each country's reference profile, with the same weights; the first is the base.",
        "value": {"countries": ["KAZ", "UZB", "VNM"], "method": "rules"},
    },
}


@router.post(
    "/match/compare",
    response_model=CompareResponse,
    responses={**WRITE, **problems(404)},
    summary="Compare scenarios or countries side by side / 시나리오·국가 비교",
)
def post_compare(
    request: Annotated[CompareRequest, Body(openapi_examples=COMPARE_EXAMPLES)],
    session: SessionDep,
    settings: SettingsDep,
) -> Any:
    """Score several variants with exactly the same engine as `POST /v1/match` and set them side by side:
    for each, the ranking (model, score, rank), the recommended model, robustness, first-place shares,
    the counterfactual, and each model's score and rank change against the first item (the base).

    여러 시나리오 또는 국가를 같은 엔진으로 평가해 나란히 비교합니다(첫 항목 대비 점수·순위 변화 포함).

    Two shapes:
    - **Scenarios**: `base` (a match request: `country` and/or `profile`, `weights`, `weight_profile`,
      `method`) and `scenarios`, each with a `name` and what it changes: `profile` values replace the
      base's (others stay), `weights` are merged over the base's overrides, `weight_profile` switches profile.
    - **Countries**: `countries` (ISO3 codes, the first is the base) with optional `profile`,
      `weights`, `weight_profile`, `method` applied to every country.

    At most 50 items (the base included). Comparisons are exploratory: **nothing is stored**; run
    `POST /v1/match` on the variant you propose to keep it as an assessment. 비교 결과는 저장되지 않습니다.
    """
    return compare.compare(session, request=request, settings=settings)
