"""Named, versioned weight profiles, and weights elicited from experts by AHP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from app.dependencies import SessionDep
from app.routers.common import READ, WRITE, problems
from app.schemas import ProfileName
from app.schemas_weights import AhpCreate, WeightProfileCreate, WeightProfileOut
from app.security import ADMIN_SCOPE, READ_SCOPE
from app.services import weight_profiles

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1/weight-profiles", tags=["weight profiles"], dependencies=READ_SCOPE)

NamePath = Annotated[ProfileName, Path(description="Profile name, e.g. `default`")]

CREATE_EXAMPLES: dict[str, dict[str, Any]] = {
    "public_will_first": {
        "summary": "Public investment will weighs most",
        "description": "All seven criteria are required; 0 leaves one out. Posting an existing name "
        "writes its next version.",
        "value": {
            "name": "public-will-first",
            "weights": {
                "stage": 0.2,
                "public_investment_will": 0.35,
                "rd": 0.15,
                "healthcare_capacity": 0.1,
                "research_capacity": 0.1,
                "manufacturing_base": 0.05,
                "private_sector_strength": 0.05,
            },
            "description": "For proposals where Korea's government-led speed is the selling point (seeds/000 §III-2)",
            "created_by": "kim.consultant@khidi.or.kr",
        },
    }
}

AHP_EXAMPLES: dict[str, dict[str, Any]] = {
    "core_three_one_expert": {
        "summary": "One expert, the three core criteria",
        "description": "Public will is judged moderately more important than stage (3) and strongly more "
        "than R&D (5); stage moderately more than R&D (3). CR = 0.033. The four other criteria get 0.",
        "value": {
            "name": "panel-core-three",
            "criteria": ["public_investment_will", "stage", "rd"],
            "matrices": [[[1, 3, 5], ["1/3", 1, 3], ["1/5", "1/3", 1]]],
            "experts": ["expert A"],
            "description": "KHIDI panel, core inputs only",
            "created_by": "kim.consultant@khidi.or.kr",
        },
    },
    "two_experts_pooled": {
        "summary": "Two experts pooled by geometric mean",
        "description": "Judgements are pooled element by element (Aczél & Saaty 1983); the pooled "
        "matrix must have CR <= 0.10, and each expert's CR is reported.",
        "value": {
            "name": "panel-2026",
            "criteria": ["stage", "public_investment_will", "rd", "healthcare_capacity"],
            "matrices": [
                [[1, "1/2", 2, 3], [2, 1, 3, 4], ["1/2", "1/3", 1, 2], ["1/3", "1/4", "1/2", 1]],
                [[1, 1, 3, 3], [1, 1, 2, 5], ["1/3", "1/2", 1, 1], ["1/3", "1/5", 1, 1]],
            ],
            "experts": ["expert A", "expert B"],
            "created_by": "kim.consultant@khidi.or.kr",
        },
    },
}


@router.get(
    "",
    response_model=list[WeightProfileOut],
    responses=READ,
    summary="Weight profiles, latest versions / 가중치 프로필 목록(최신 버전)",
)
def list_weight_profiles(session: SessionDep) -> Any:
    """The latest version of every named weight profile. 이름별 최신 버전의 가중치 프로필."""
    return [weight_profiles.view(p) for p in weight_profiles.get_all(session)]


@router.post(
    "",
    status_code=201,
    response_model=WeightProfileOut,
    dependencies=ADMIN_SCOPE,
    responses={**WRITE, **problems(409)},
    summary="Create a weight profile or its next version (admin) / 가중치 프로필 생성(새 버전)",
)
def post_weight_profile(
    request: Annotated[WeightProfileCreate, Body(openapi_examples=CREATE_EXAMPLES)], session: SessionDep
) -> Any:
    """Write a named weight profile. Posting a name that exists writes its next version; versions
    are never edited or deleted, so every stored assessment can be reproduced with the version it used.

    새 이름이면 버전 1, 기존 이름이면 다음 버전을 만듭니다(기존 버전은 수정·삭제되지 않음).

    `weights` must name **all seven criteria** (`stage`, `public_investment_will`, `rd`,
    `healthcare_capacity`, `research_capacity`, `manufacturing_base`, `private_sector_strength`), each
    >= 0 and not all 0; give 0 to leave a criterion out. A criterion left out of the body is refused
    rather than read as 0 or taken from another profile, so a version says everything on its own.
    They need not sum to 1: the engine normalises. A concurrent write of the same version gets 409;
    retry it.
    """
    row = weight_profiles.create_manual(
        session,
        name=request.name,
        weights=request.weights.model_dump(),
        description=request.description,
        created_by=request.created_by,
    )
    return weight_profiles.view(row)


@router.post(
    "/ahp",
    status_code=201,
    response_model=WeightProfileOut,
    dependencies=ADMIN_SCOPE,
    responses={**WRITE, **problems(409)},
    summary="Create a weight profile from expert pairwise comparisons (AHP, admin) / AHP 전문가 쌍대비교로 가중치 생성",
)
def post_ahp_profile(
    request: Annotated[AhpCreate, Body(openapi_examples=AHP_EXAMPLES)], session: SessionDep
) -> Any:
    """Derive weights from pairwise comparisons on Saaty's 1-9 scale and store them as the next version
    of `name` with method `ahp`.

    쌍대비교 행렬(사티 1-9 척도)에서 고유벡터 방법으로 가중치를 계산하고 일관성 비율(CR)을 확인합니다.

    - `criteria` lists the criteria the rows and columns refer to (2 to 7 of them). Criteria not
      listed get weight **0**, and `details.excluded_criteria` names them: comparing three core
      criteria is a valid exercise, and the list makes the exclusion explicit.
    - `matrices`: one square matrix per expert; a[i][i] = 1, a[j][i] = 1/a[i][j] (within 5 %, so
      0.33 for 1/3 is accepted; fractions such as `"1/3"` may be written as strings), every entry in 1/9..9.
    - Weights are the principal eigenvector (Saaty 1980). Consistency ratio CR = CI / RI with
      CI = (lambda_max - n) / (n - 1) and Saaty's random index RI. CR above 0.10 is refused with 422
      naming the figure.
    - Several experts are pooled by the element-wise geometric mean of their judgements (Aczél &
      Saaty 1983); the pooled matrix's CR decides, and each expert's CR is reported.

    `details` keeps the matrices, each expert's CR and weights, the pooled matrix, lambda_max, CI, RI
    and CR.
    """
    row = weight_profiles.create_from_ahp(
        session,
        name=request.name,
        criteria=list(request.criteria),
        matrices=request.matrices,
        experts=request.experts,
        description=request.description,
        created_by=request.created_by,
    )
    return weight_profiles.view(row)


@router.get(
    "/{name}",
    response_model=WeightProfileOut,
    responses={**READ, **problems(404, 422)},
    summary="One weight profile (latest or a given version) / 가중치 프로필 조회",
)
def get_weight_profile(
    name: NamePath,
    session: SessionDep,
    version: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="A version; latest if omitted")
    ] = None,
) -> Any:
    """The latest version of a profile, or the version given by `?version=N`. 404 for an unknown name or
    version. The `default` profile explains each criterion with the seed passage behind it.
    기본(`default`) 프로필은 항목별 근거와 출처(seeds/000)를 함께 보여 줍니다."""
    return weight_profiles.view(
        weight_profiles.get(session, name=name, version=version, loc=("path", "name"))
    )


@router.get(
    "/{name}/versions",
    response_model=list[WeightProfileOut],
    responses={**READ, **problems(404, 422)},
    summary="Every version of a weight profile / 가중치 프로필 전체 버전",
)
def get_weight_profile_versions(name: NamePath, session: SessionDep) -> Any:
    """All versions of a profile, oldest first. 버전 이력(오래된 순)."""
    return [weight_profiles.view(p) for p in weight_profiles.get_versions(session, name=name)]
