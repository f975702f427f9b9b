"""Small factories for test inputs."""

from __future__ import annotations

from typing import Any

from scoring.profile import LEVEL_VALUE, CountryProfile, Level, Stage


def profile(
    stage: str = "chaser",
    rd: str | float = "medium",
    will: str | float = "medium",
    **capacities: str | float,
) -> CountryProfile:
    """A CountryProfile from level names or numbers."""

    def scale(v: str | float) -> float:
        return LEVEL_VALUE[Level(v)] if isinstance(v, str) else float(v)

    return CountryProfile(
        innovation_stage=Stage(stage),
        rd=scale(rd),
        public_investment_will=scale(will),
        **{k: scale(v) for k, v in capacities.items()},
    )


def match_body(**profile_fields: Any) -> dict[str, Any]:
    """A /v1/match body with the three core inputs and any overrides."""
    base: dict[str, Any] = {
        "innovation_stage": "chaser",
        "rd_level": "medium",
        "government_investment_will": "medium",
    }
    base.update(profile_fields)
    return {"profile": base, "method": "rules"}
