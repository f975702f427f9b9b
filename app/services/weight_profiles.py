"""Named, versioned weight profiles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from models import WeightProfile
from scoring.criteria import CRITERIA
from scoring.engine import WeightsError, weight_vector


@dataclass(frozen=True, slots=True)
class ResolvedWeights:
    name: str
    version: int
    weights: dict[str, float]


def get(session: Session, *, name: str, version: int | None = None) -> WeightProfile:
    """One version of a profile (the latest when `version` is None), or 404."""
    query = select(WeightProfile).where(WeightProfile.name == name)
    if version is None:
        query = query.order_by(WeightProfile.version.desc()).limit(1)
    else:
        query = query.where(WeightProfile.version == version)
    found = session.scalar(query)
    if found is None:
        what = f"weight profile {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"{what} does not exist", errors=[{"loc": ["weight_profile"], "msg": "unknown"}])
    return found


def get_all(session: Session) -> list[WeightProfile]:
    """The latest version of every profile."""
    latest = (
        select(WeightProfile.name, func.max(WeightProfile.version).label("v"))
        .group_by(WeightProfile.name)
        .subquery()
    )
    query = select(WeightProfile).join(
        latest, (WeightProfile.name == latest.c.name) & (WeightProfile.version == latest.c.v)
    )
    return list(session.scalars(query.order_by(WeightProfile.name)))


def get_versions(session: Session, *, name: str) -> list[WeightProfile]:
    rows = list(
        session.scalars(
            select(WeightProfile).where(WeightProfile.name == name).order_by(WeightProfile.version)
        )
    )
    if not rows:
        raise NotFound(f"weight profile {name!r} does not exist")
    return rows


def validate_weights(weights: dict[str, float], *, field: str = "weights") -> dict[str, float]:
    """Check a full weight mapping: known criteria, finite, >= 0, not all zero."""
    try:
        vector = weight_vector(weights)
    except WeightsError as exc:
        raise InvalidInput(exc.field.replace("weights", field, 1), str(exc)) from exc
    return {c: float(v) for c, v in zip(CRITERIA, vector, strict=True)}


def resolve(
    session: Session, *, name: str, version: int | None, overrides: dict[str, float] | None
) -> ResolvedWeights:
    """The weights a match uses: a stored profile version with the request's partial overrides on top."""
    profile = get(session, name=name, version=version)
    merged = {**profile.weights, **(overrides or {})}
    return ResolvedWeights(profile.name, profile.version, validate_weights(merged))


def create(
    session: Session,
    *,
    name: str,
    weights: dict[str, float],
    description: str = "",
    method: str = "manual",
    details: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> WeightProfile:
    """Write the next version of `name`; a concurrent writer of the same version gets 409."""
    clean = validate_weights(weights)
    latest = session.scalar(select(func.max(WeightProfile.version)).where(WeightProfile.name == name)) or 0
    row = WeightProfile(
        name=name,
        version=latest + 1,
        weights=clean,
        description=description,
        method=method,
        details=details or {},
        created_by=created_by,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"weight profile {name!r} version {latest + 1} was written by another request; retry"
        ) from exc
    return row
