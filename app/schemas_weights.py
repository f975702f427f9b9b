"""Request and response bodies of the weight-profile, AHP and comparison endpoints."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.config import JsonDict

from app.schemas import (
    ISO3,
    NO_NUL,
    CounterfactualOut,
    CountrySummary,
    CriterionName,
    MatchRequest,
    Method,
    ModelId,
    ProfileIn,
    ProfileName,
    ProfileValue,
    Weight,
    WeightProfileRef,
)
from scoring import ahp
from scoring.criteria import CRITERIA, CRITERION_INFO

CreatedBy = Annotated[
    str | None, Field(None, max_length=128, pattern=NO_NUL, examples=["kim.consultant@khidi.or.kr"])
]
Description = Annotated[str, Field("", max_length=2000, pattern=NO_NUL)]

# --- weight profiles ---------------------------------------------------------------------------

assert get_args(CriterionName) == CRITERIA, (
    "app.schemas.CriterionName must list scoring.criteria.CRITERIA in order"
)


def _about(criterion: str) -> str:
    info = CRITERION_INFO[criterion]
    return f"{info.label_en} ({info.label_ko}), >= 0"


class CriterionWeights(BaseModel):
    """One weight per criterion, all seven required (0 leaves a criterion out); they need not sum to 1."""

    model_config = ConfigDict(extra="forbid")

    stage: Weight = Field(description=_about("stage"))
    public_investment_will: Weight = Field(description=_about("public_investment_will"))
    rd: Weight = Field(description=_about("rd"))
    healthcare_capacity: Weight = Field(description=_about("healthcare_capacity"))
    research_capacity: Weight = Field(description=_about("research_capacity"))
    manufacturing_base: Weight = Field(description=_about("manufacturing_base"))
    private_sector_strength: Weight = Field(description=_about("private_sector_strength"))


class CriterionWeight(BaseModel):
    criterion: str
    label_en: str
    label_ko: str
    weight: float = Field(description="As stored")
    share: float = Field(description="Share of the total weight, 0-1")
    rationale: str | None = Field(None, description="Why the criterion matters (default profile only)")
    source: str | None = Field(None, description="Seed passage behind it (default profile only)")


class WeightProfileOut(BaseModel):
    name: str
    version: int
    weights: dict[str, float]
    criteria: list[CriterionWeight]
    description: str
    method: str = Field(description="seed (documented defaults), manual or ahp")
    details: dict[str, Any]
    created_by: str | None
    created_at: datetime


class WeightProfileCreate(BaseModel):
    """A new profile, or the next version of an existing name; all seven criteria are required."""

    model_config = ConfigDict(extra="forbid")

    name: ProfileName
    weights: CriterionWeights
    description: Description
    created_by: CreatedBy


FRACTION = r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?)\s*)?$"  # "3", "1/3", "0.5"


def _judgement(value: Any) -> Any:
    # Consultants write Saaty judgements as fractions; accept "1/3" as well as 0.333.
    if isinstance(value, bool):
        raise ValueError("expected a number or a fraction such as '1/3', not a boolean")
    if isinstance(value, str):
        match = re.fullmatch(FRACTION, value)
        if match is None:
            raise ValueError(f"expected a number or a fraction such as '1/3', got {value!r}")
        numerator, denominator = float(match[1]), float(match[2] or 1)
        if denominator == 0:
            raise ValueError("division by zero")
        return numerator / denominator
    return value


Judgement = Annotated[
    float,
    BeforeValidator(_judgement),
    Field(allow_inf_nan=False),
    # The scale's bounds are checked, with the rounding tolerance, by scoring.ahp.validate.
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": round(ahp.SCALE_LOWEST, 4), "maximum": ahp.SCALE_MAX},
                {"type": "string", "pattern": FRACTION, "examples": ["1/3"]},
            ],
            "description": "Saaty's 1-9 scale or its reciprocal, as a number or a fraction such as '1/3'",
        }
    ),
]
Matrix = Annotated[list[Annotated[list[Judgement], Field(max_length=10)]], Field(min_length=2, max_length=7)]


class AhpCreate(BaseModel):
    """Pairwise comparisons of criteria by one or more experts, on Saaty's 1-9 scale."""

    model_config = ConfigDict(extra="forbid")

    name: ProfileName
    criteria: list[CriterionName] = Field(
        min_length=2,
        max_length=7,
        json_schema_extra={"uniqueItems": True},
        description="The criteria the rows and columns refer to, in order; criteria not listed get weight 0",
    )
    matrices: list[Matrix] = Field(
        min_length=1,
        max_length=50,
        description="One matrix per expert; a[i][j] says how much more criterion i matters than j "
        "(1 equal, 3 moderate, 5 strong, 7 very strong, 9 extreme) and a[j][i] = 1/a[i][j]",
    )
    experts: list[Annotated[str, Field(max_length=128, pattern=NO_NUL)]] | None = Field(
        None, description="Optional labels for the matrices, same order"
    )
    description: Description
    created_by: CreatedBy


# --- comparison ----------------------------------------------------------------------------------


class Scenario(BaseModel):
    """One what-if: changes applied on top of the base request."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=NO_NUL)]
    profile: ProfileIn = Field(
        default_factory=lambda: ProfileIn.model_validate({}),
        description="Profile values that replace the base's; others stay",
    )
    weights: dict[CriterionName, Weight] | None = Field(
        None, description="Weight overrides merged over the base's"
    )
    weight_profile: ProfileName | None = Field(None, description="Another weight profile (latest version)")
    weight_profile_version: Annotated[int, Field(ge=1, le=1_000_000)] | None = None


COUNTRY_MODE_FIELDS = (
    "countries",
    "profile",
    "weights",
    "weight_profile",
    "weight_profile_version",
    "method",
)
# The two shapes exclude each other; saying so in the schema lets clients and fuzzers see it.
_ONE_SHAPE: JsonDict = {
    "oneOf": [
        {
            "required": ["base", "scenarios"],
            "properties": {"base": {"type": "object"}, "scenarios": {"type": "array", "minItems": 1}},
            "not": {"anyOf": [{"required": [f]} for f in COUNTRY_MODE_FIELDS]},
        },
        {
            "required": ["countries"],
            "properties": {"countries": {"type": "array", "minItems": 1}},
            "not": {"anyOf": [{"required": ["base"]}, {"required": ["scenarios"]}]},
        },
    ]
}


class CompareRequest(BaseModel):
    """Either `base` with `scenarios`, or `countries` with optional common overrides."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SHAPE)

    base: MatchRequest | None = Field(
        None, description="Scenario mode: a match request every scenario starts from"
    )
    scenarios: list[Scenario] | None = Field(None, description="Scenario mode: the what-ifs, in order")
    countries: list[ISO3] | None = Field(None, description="Country mode: ISO3 codes; the first is the base")
    profile: ProfileIn | None = Field(None, description="Country mode: values applied to every country")
    weights: dict[CriterionName, Weight] | None = Field(None, description="Country mode: weight overrides")
    weight_profile: ProfileName | None = Field(None, description="Country mode: weight profile")
    weight_profile_version: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    method: Method | None = Field(None, description="Country mode: method (default hybrid)")


class RankShort(BaseModel):
    model: ModelId
    rank: int
    score: float


class ModelDifference(BaseModel):
    model: ModelId
    score_change: float = Field(description="Score here minus score in the base")
    rank_change: int = Field(description="Rank here minus rank in the base; negative = moved up")


class CompareItem(BaseModel):
    label: str
    country: CountrySummary | None
    changes: dict[str, Any] = Field(description="What this item changed relative to the base request")
    recommended_model: ModelId
    recommendation_changed: bool
    ranking: list[RankShort]
    robustness: float
    first_place_shares: dict[str, float]
    counterfactual: CounterfactualOut
    differences: list[ModelDifference]
    summary: str
    profile_used: dict[str, ProfileValue]
    weight_profile: WeightProfileRef
    weights_used: dict[str, float]
    method: Method
    method_note: str | None = None


class CompareResponse(BaseModel):
    mode: Literal["scenarios", "countries"]
    stored: Literal[False] = Field(False, description="Comparisons are exploratory and never stored")
    items: list[CompareItem]
