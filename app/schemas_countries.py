"""Response bodies for reference countries and target discovery."""

from __future__ import annotations

from pydantic import BaseModel


class DerivedOut(BaseModel):
    value: str | float | None
    level: str | None
    source: str  # "reference" (a figure used as is, or the seed's statement) or "derived"
    indicators: list[str]
    year: int | None
    note: str


class IndicatorOut(BaseModel):
    indicator: str
    code: str
    name: str
    value: float
    year: int
    source: str


class CountryOut(BaseModel):
    iso3: str
    name: str
    region: str
    income_group: str | None
    profile: dict[str, DerivedOut]
    missing: list[str]


class CountryDetail(CountryOut):
    indicators: list[IndicatorOut]
    data_version: str


class CountryPage(BaseModel):
    items: list[CountryOut]
    total: int
    limit: int
    offset: int
    data_version: str


class RankedCountry(BaseModel):
    rank: int
    iso3: str
    name: str
    region: str
    income_group: str | None
    stage: str | None
    score: float
    confidence: float


class ModelCountries(BaseModel):
    model: str
    weight_profile: dict[str, str | int]
    data_version: str
    total: int
    items: list[RankedCountry]
