"""Request and response bodies of the v1 API (names fixed by shared/API.md)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

from scoring.profile import Level, Stage


def _finite(value: Any) -> None:
    # The JSON reader takes NaN and Infinity (not JSON, but Python writes them), and a number may come
    # as text ("nan", "Infinity"); the bounds would be checked first and name the wrong fault ("should
    # be greater than or equal to 0" for NaN).
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return  # not a number: the field's own validation says what it expected
    if type(value) is float and not math.isfinite(value):
        raise PydanticCustomError(
            "finite_number", "Input should be a finite number, not {value}", {"value": str(value)}
        )


def _number_input(value: Any) -> Any:
    # Pydantic's lax mode would read `true` as 1.0; a profile value is never a boolean.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    _finite(value)
    return value


def _level_or_number(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # The union below tries Level first, and a number fails it inside the enum's constructor, which
    # raises and catches a ValueError: 7 us a value, against 0.7 for the number alone. A number already
    # in [0, 1] is what Unit would return, as a float; anything else takes the union as it stands.
    if type(value) in (float, int) and 0.0 <= value <= 1.0:
        return float(value)
    try:
        return handler(value)
    except ValidationError:
        _finite(value)  # NaN and infinities: named as such, not as neither a level nor a number
        # One error at the field itself: the union's own are one per member, each under a tag
        # spelling out the member's validators (with memory addresses).
        raise PydanticCustomError(
            "level_or_number", "Input should be 'low', 'medium' or 'high', or a number from 0 to 1"
        ) from None


Unit = Annotated[float, BeforeValidator(_number_input), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
LevelOrUnit = Annotated[Level | Unit, WrapValidator(_level_or_number)]
Weight = Annotated[float, BeforeValidator(_number_input), Field(ge=0.0, le=1e6, allow_inf_nan=False)]
ModelId = Literal["production", "hospital", "research", "composite"]
# The criteria of scoring/criteria.py, spelled out so the schema lists the only keys a weight map takes.
CriterionName = Literal[
    "stage",
    "public_investment_will",
    "rd",
    "healthcare_capacity",
    "research_capacity",
    "manufacturing_base",
    "private_sector_strength",
]
ISO3 = Annotated[str, Field(pattern=r"^[A-Za-z]{3}$", examples=["KAZ"])]
# Free text that is stored: any characters but NUL, which PostgreSQL refuses in text.
NO_NUL = r"^[^\x00]*$"
ProfileName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


# Profile inputs as the API names them (shared/API.md) -> the CountryProfile field each fills.
PROFILE_INPUTS: dict[str, str] = {
    "innovation_stage": "innovation_stage",
    "rd": "rd",
    "government_investment_will": "public_investment_will",
    "healthcare_capacity": "healthcare_capacity",
    "research_capacity": "research_capacity",
    "manufacturing_base": "manufacturing_base",
    "private_sector_strength": "private_sector_strength",
}


class Method(StrEnum):
    RULES = "rules"
    CLASSIFIER = "classifier"
    HYBRID = "hybrid"


class ProfileIn(BaseModel):
    """A target country's profile. Levels are low/medium/high; numbers are on a 0-1 scale."""

    model_config = ConfigDict(extra="forbid")

    innovation_stage: Stage | None = Field(
        None, description="leader (혁신선도국), chaser (혁신추격국), developing (개발도상국)"
    )
    rd_level: Level | None = Field(None, description="Bio-medical R&D level; or give rd_intensity_pct")
    rd_intensity_pct: (
        Annotated[
            float,
            BeforeValidator(_number_input),
            Field(ge=0.0, le=100.0, allow_inf_nan=False, description="Gross R&D expenditure, % of GDP"),
        ]
        | None
    ) = None
    government_investment_will: LevelOrUnit | None = Field(
        None,
        description="Willingness of the government (with donors, for developing countries) to fund and lead a cluster",
    )
    healthcare_capacity: LevelOrUnit | None = None
    research_capacity: LevelOrUnit | None = None
    manufacturing_base: LevelOrUnit | None = None
    private_sector_strength: LevelOrUnit | None = None


class MatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: ISO3 | None = Field(None, description="ISO 3166-1 alpha-3; fills what the profile leaves out")
    profile: ProfileIn = Field(default_factory=ProfileIn)
    weights: dict[CriterionName, Weight] | None = Field(
        None, description="Partial override of the weight profile, by criterion"
    )
    weight_profile: ProfileName = "default"
    weight_profile_version: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    method: Method = Method.HYBRID


class Contribution(BaseModel):
    criterion: str
    value: str | float | None
    weight: float
    fit: float | None
    contribution: float


class GateOut(BaseModel):
    criterion: str
    passed: bool
    assessed: bool
    reason: str
    reason_ko: str
    source: str


class FeatureContribution(BaseModel):
    feature: str
    contribution: float


class RankedModel(BaseModel):
    model: ModelId
    rank: int
    name_en: str
    name_ko: str
    score: float = Field(ge=0.0, le=1.0)
    rule_score: float = Field(ge=0.0, le=1.0)
    classifier_probability: float | None = None
    contributions: list[Contribution]
    gates: list[GateOut]
    rationale: str
    rationale_ko: str


class ProfileValue(BaseModel):
    value: str | float | None
    level: str | None = None
    source: Literal["caller", "reference", "derived", "missing"]
    year: int | None = None
    indicator: str | None = None
    note: str | None = None


class CountrySummary(BaseModel):
    iso3: str
    name: str
    region: str
    income_group: str | None


class WeightProfileRef(BaseModel):
    name: str
    version: int


class LeaveOneOutOut(BaseModel):
    criterion: str
    top_model: ModelId
    changes_top: bool


class RobustnessDetail(BaseModel):
    samples: int
    concentration: float
    seed: int
    leave_one_out: list[LeaveOneOutOut]


class ChangeOut(BaseModel):
    input: str
    from_value: str | float
    to_value: str | float
    from_level: str | None
    to_level: str | None
    size: float


class CounterfactualOut(BaseModel):
    target_model: ModelId
    change: ChangeOut | None
    summary: str


class ClassifierView(BaseModel):
    top_model: ModelId
    probabilities: dict[str, float]
    agrees_with_rules: bool
    feature_contributions: list[FeatureContribution]


class MatchResponse(BaseModel):
    assessment_id: str
    created_at: datetime
    method: Method
    method_note: str | None = None
    recommended_model: ModelId = Field(description="First of `ranking` (blended for hybrid)")
    rules_recommended_model: ModelId = Field(
        description="The rule engine's first model; robustness and the counterfactual are about its ranking"
    )
    ranking: list[RankedModel]
    confidence: float = Field(ge=0.0, le=1.0, description="Share of the total weight whose input was known")
    missing_inputs: list[str]
    robustness: float = Field(
        ge=0.0,
        le=1.0,
        description="Share of perturbed weight vectors under which the rule engine's first model stays first",
    )
    first_place_shares: dict[str, float]
    robustness_detail: RobustnessDetail
    counterfactual: CounterfactualOut
    classifier: ClassifierView | None = None
    profile_used: dict[str, ProfileValue]
    country: CountrySummary | None = None
    weight_profile: WeightProfileRef
    weights_used: dict[str, float]
    engine_version: str
    model_version: str | None = None
    data_version: str | None = None


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None
    errors_omitted: int | None = Field(None, description="How many more errors there were than shown")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Any JSON value is taken here, so that an item that is not an object fails alone, as any bad item.
    items: list[
        Annotated[
            Any,
            WithJsonSchema(
                {"description": "A match request (MatchRequest); any other value gets its own error entry"}
            ),
        ]
    ] = Field(description="Match requests; each is validated on its own")


class BatchItemError(BaseModel):
    index: int
    status: int
    title: str
    detail: str
    errors: list[dict[str, Any]] | None = None
    errors_omitted: int | None = Field(None, description="How many more errors there were than shown")


class BatchResponse(BaseModel):
    results: list[MatchResponse | BatchItemError]


class ClusterModelOut(BaseModel):
    id: ModelId
    name_ko: str
    name_en: str
    led_by: Literal["public", "private"]
    fits_stages: list[Stage]
    summary: str
    summary_ko: str
    reference_clusters: list[str]
    roles: list[str]
    source: str


class Health(BaseModel):
    status: Literal["ok"]
