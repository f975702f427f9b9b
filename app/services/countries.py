"""Country look-ups and target discovery over the current reference snapshot."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.errors import NotFound
from app.schemas import PROFILE_INPUTS
from app.services import reference
from scoring.derive import INDICATORS, DerivedValue
from scoring.profile import Stage, level_of


def _derived_out(name: str, d: DerivedValue) -> dict[str, Any]:
    value = (
        d.value.value
        if isinstance(d.value, Stage)
        else (None if d.value is None else round(float(d.value), 4))
    )
    direct = (name == "rd" and d.value is not None) or (name == "innovation_stage" and not d.indicators)
    return {
        "value": value,
        "level": level_of(float(d.value)).value if isinstance(d.value, float) else None,
        "source": "reference" if direct else "derived",
        "indicators": list(d.indicators),
        "year": d.year,
        "note": d.note,
    }


def _country_out(c: reference.ReferenceCountry) -> dict[str, Any]:
    profile = {api: _derived_out(api, c.derived[field]) for api, field in PROFILE_INPUTS.items()}
    return {
        "iso3": c.iso3,
        "name": c.name,
        "region": c.region,
        "income_group": c.income_group,
        "profile": profile,
        "missing": [k for k, v in profile.items() if v["value"] is None],
    }


def _table(session: Session) -> reference.ReferenceTable:
    table = reference.reference_table(session)
    if table is None:
        raise NotFound("no reference data is loaded; run `python -m app.cli data load`")
    return table


def _matches(
    c: reference.ReferenceCountry, region: str | None, income_group: str | None, stage: Stage | None
) -> bool:
    return (
        (region is None or c.region.lower() == region.lower())
        and (income_group is None or (c.income_group or "").lower() == income_group.lower())
        and (stage is None or c.profile.innovation_stage == stage)
    )


def get_all(
    session: Session,
    *,
    region: str | None,
    income_group: str | None,
    stage: Stage | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """A page of countries with their derived profiles, filtered."""
    table = _table(session)
    selected = [c for c in table.countries.values() if _matches(c, region, income_group, stage)]
    return {
        "items": [_country_out(c) for c in selected[offset : offset + limit]],
        "total": len(selected),
        "limit": limit,
        "offset": offset,
        "data_version": table.version,
    }


def get(session: Session, *, iso3: str) -> dict[str, Any]:
    """One country: derived profile plus every raw indicator with source and year."""
    table, c = reference.get_country(session, iso3=iso3)
    indicators = [
        {
            "indicator": col,
            "code": INDICATORS[col].code,
            "name": INDICATORS[col].name,
            "value": value,
            "year": year,
            "source": INDICATORS[col].publisher,
        }
        for col, (value, year) in c.observations.items()
    ]
    return {**_country_out(c), "indicators": indicators, "data_version": table.version}
