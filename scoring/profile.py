"""The country profile the engine scores: typed inputs and their numeric scale.

Every input lives on one scale, [0, 1], so that fit curves, weights and the
classifier all speak the same language. Levels map to the middle of their
third of that scale; a caller may give a number instead of a level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum


class Stage(StrEnum):
    """Country stage in global bio innovation (seeds/000, note under Table 2)."""

    LEADER = "leader"  # 혁신선도국: clusters formed naturally (US, UK, Germany)
    CHASER = "chaser"  # 혁신추격국: government-led clusters to catch up (Singapore, Korea, China)
    DEVELOPING = "developing"  # 개발도상국: built with government/donor support (Africa, Latin America)


class Level(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


STAGES: tuple[Stage, ...] = (Stage.LEADER, Stage.CHASER, Stage.DEVELOPING)

# The middle of each third of [0, 1]; the boundaries are 1/3 and 2/3.
LEVEL_VALUE: dict[Level, float] = {Level.LOW: 1 / 6, Level.MEDIUM: 1 / 2, Level.HIGH: 5 / 6}
LOW_UPPER = 1 / 3
MEDIUM_UPPER = 2 / 3

# R&D intensity (GERD, % of GDP) -> [0, 1]. Fixed knots, never fitted to a request:
# below 0.5 % is low (the median of the 143 economies with a figure in the shipped
# World Bank snapshot is 0.42 %), 0.5-1.5 % medium, 1.5 % and above high; 3 % and
# above (Germany, the US, Korea) is the top of the scale.
RD_INTENSITY_KNOTS: tuple[tuple[float, ...], tuple[float, ...]] = (
    (0.0, 0.5, 1.5, 3.0),
    (0.0, LOW_UPPER, MEDIUM_UPPER, 1.0),
)


def level_of(value: float) -> Level:
    """The level a number in [0, 1] falls in."""
    if value < LOW_UPPER:
        return Level.LOW
    if value < MEDIUM_UPPER:
        return Level.MEDIUM
    return Level.HIGH


def piecewise_linear(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Linear interpolation through the knots (xs, ys), flat beyond both ends."""
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[-1]


def rd_intensity_to_scale(pct: float) -> float:
    """Map R&D intensity (% of GDP) onto [0, 1] by the fixed knots above."""
    return piecewise_linear(pct, *RD_INTENSITY_KNOTS)


def scale_to_rd_intensity(value: float) -> float:
    """The R&D intensity (% of GDP) at a point of the [0, 1] scale (inverse of the above)."""
    xs, ys = RD_INTENSITY_KNOTS
    return piecewise_linear(value, ys, xs)


@dataclass(frozen=True, slots=True)
class CountryProfile:
    """A target country as the engine sees it; numbers in [0, 1], None where unknown."""

    innovation_stage: Stage | None
    rd: float | None
    public_investment_will: float | None
    healthcare_capacity: float | None = None
    research_capacity: float | None = None
    manufacturing_base: float | None = None
    private_sector_strength: float | None = None

    def __post_init__(self) -> None:
        for name in _NUMERIC_FIELDS:
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")

    def value_of(self, criterion: str) -> Stage | float | None:
        """The input a criterion reads (criteria are named after profile fields)."""
        return getattr(self, "innovation_stage" if criterion == "stage" else criterion)


# CountryProfile's number fields, named once (`dataclasses.fields` costs microseconds a call).
_NUMERIC_FIELDS = tuple(f.name for f in fields(CountryProfile) if f.name != "innovation_stage")


def as_scale(value: Level | float | None) -> float | None:
    """A level or a number given by a caller, on the [0, 1] scale."""
    if value is None:
        return None
    if isinstance(value, Level):
        return LEVEL_VALUE[value]
    return float(value)
