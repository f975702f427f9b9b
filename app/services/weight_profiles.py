"""Named, versioned weight profiles."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import database_key
from app.errors import Conflict, InvalidInput, NotFound
from models import WeightProfile
from scoring import ahp
from scoring.criteria import CRITERIA, CRITERION_INFO
from scoring.engine import WeightsError, weight_vector


@dataclass(frozen=True, slots=True)
class ResolvedWeights:
    name: str
    version: int
    weights: dict[str, float]


# Where a request names the weight profile, by default: a match's body.
IN_BODY = ("body", "weight_profile")


def get(
    session: Session, *, name: str, version: int | None = None, loc: tuple[str, ...] = IN_BODY
) -> WeightProfile:
    """One version of a profile (the latest when `version` is None), or 404 at `loc`, where the
    request named it."""
    query = select(WeightProfile).where(WeightProfile.name == name)
    if version is None:
        query = query.order_by(WeightProfile.version.desc()).limit(1)
    else:
        query = query.where(WeightProfile.version == version)
    found = session.scalar(query)
    if found is None:
        what = f"weight profile {name!r}" + (f" version {version}" if version is not None else "")
        raise NotFound(f"{what} does not exist", errors=[{"loc": list(loc), "msg": "unknown"}])
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


# Versions never change, so a version read once is kept; which version is the latest is
# re-read after LATEST_TTL seconds (a new version reaches other processes within that time).
LATEST_TTL = 2.0
_versions: dict[tuple[str, str, int], dict[str, float]] = {}
_latest: dict[tuple[str, str], tuple[float, int]] = {}
_resolved: dict[tuple[str, str, int], ResolvedWeights] = {}


def _database_of(session: Session) -> str:
    return database_key(session.get_bind().engine)


def in_memory(database_url: str, name: str, version: int | None) -> bool:
    """Whether `resolve` would answer now without a query."""
    if version is None:
        checked_at, version = _latest.get((database_url, name), (-1e9, 0))
        if time.monotonic() - checked_at >= LATEST_TTL:
            return False
    return (database_url, name, version) in _versions


def _stored_weights(
    session: Session, name: str, version: int | None, loc: tuple[str, ...]
) -> tuple[int, dict[str, float]]:
    db = _database_of(session)
    if version is None:
        checked_at, latest = _latest.get((db, name), (-1e9, 0))
        if time.monotonic() - checked_at < LATEST_TTL:
            version = latest
    cached = _versions.get((db, name, version)) if version is not None else None
    if cached is not None and version is not None:
        return version, cached
    row = get(session, name=name, version=version, loc=loc)
    _versions[(db, name, row.version)] = row.weights
    if version is None:
        _latest[(db, name)] = (time.monotonic(), row.version)
    return row.version, row.weights


def resolve(
    session: Session,
    *,
    name: str,
    version: int | None,
    overrides: Mapping[str, float] | None,
    loc: tuple[str, ...] = IN_BODY,
) -> ResolvedWeights:
    """The weights a match uses: a stored profile version with the request's partial overrides on top.
    An unknown profile is a 404 at `loc`, where the request named it."""
    found_version, weights = _stored_weights(session, name, version, loc)
    if not overrides:  # a stored version never changes: validated once per process
        key = (_database_of(session), name, found_version)
        resolved = _resolved.get(key)
        if resolved is None:
            resolved = _resolved[key] = ResolvedWeights(name, found_version, validate_weights(dict(weights)))
        return resolved
    return ResolvedWeights(name, found_version, validate_weights({**weights, **overrides}))


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
        _latest.pop((_database_of(session), name), None)
    except IntegrityError as exc:
        raise Conflict(
            f"weight profile {name!r} version {latest + 1} was written by another request; retry"
        ) from exc
    return row


def view(profile: WeightProfile) -> dict[str, Any]:
    """A stored version as the API shows it; the default profile carries each criterion's rationale."""
    total = sum(profile.weights.get(c, 0.0) for c in CRITERIA) or 1.0
    documented = profile.name == "default"
    criteria = []
    for c in CRITERIA:
        info = CRITERION_INFO[c]
        weight = float(profile.weights.get(c, 0.0))
        criteria.append(
            {
                "criterion": c,
                "label_en": info.label_en,
                "label_ko": info.label_ko,
                "weight": weight,
                "share": round(weight / total, 6),
                "rationale": info.rationale if documented else None,
                "source": info.source if documented else None,
            }
        )
    return {
        "name": profile.name,
        "version": profile.version,
        "weights": profile.weights,
        "criteria": criteria,
        "description": profile.description,
        "method": profile.method,
        "details": profile.details,
        "created_by": profile.created_by,
        "created_at": profile.created_at,
    }


def create_manual(
    session: Session,
    *,
    name: str,
    weights: dict[str, float],
    description: str = "",
    created_by: str | None = None,
) -> WeightProfile:
    """Write the next version of `name` from weights given for all seven criteria."""
    # A stored profile must say what it means on its own: a criterion silently read as 0
    # (or silently taken from another profile) would surprise whoever reads the version later.
    validate_weights(weights)
    missing = [c for c in CRITERIA if c not in weights]
    if missing:
        raise InvalidInput(
            f"weights.{missing[0]}",
            f"missing {', '.join(missing)}; give all {len(CRITERIA)} criteria {list(CRITERIA)} "
            "(0 leaves a criterion out)",
        )
    return _create_next(
        session, name=name, weights=weights, description=description, method="manual", created_by=created_by
    )


def create_from_ahp(
    session: Session,
    *,
    name: str,
    criteria: list[str],
    matrices: list[list[list[float]]],
    experts: list[str] | None = None,
    description: str = "",
    created_by: str | None = None,
) -> WeightProfile:
    """Write the next version of `name` from AHP pairwise comparisons; refused when CR > 0.10."""
    unknown = [c for c in criteria if c not in CRITERIA]
    if unknown:
        raise InvalidInput(
            f"criteria.{criteria.index(unknown[0])}",
            f"unknown criterion {unknown[0]!r}; expected some of {list(CRITERIA)}",
        )
    repeated = sorted({c for c in criteria if criteria.count(c) > 1})
    if repeated:
        raise InvalidInput("criteria", f"{repeated[0]!r} is listed twice")
    if experts is not None and len(experts) != len(matrices):
        raise InvalidInput("experts", f"{len(experts)} labels for {len(matrices)} matrices")
    n = len(criteria)
    individual = []
    for e, matrix in enumerate(matrices):
        if len(matrix) != n:
            raise InvalidInput(f"matrices.{e}", f"{len(matrix)} rows for {n} criteria {criteria}")
        try:
            result = ahp.priorities(matrix)
        except ahp.AhpError as exc:
            raise InvalidInput(".".join(["matrices", str(e), *map(str, exc.where)]), str(exc)) from exc
        individual.append(
            {
                "expert": experts[e] if experts else None,
                "consistency_ratio": round(result.consistency_ratio, 6),
                "lambda_max": round(result.lambda_max, 6),
                "weights": dict(zip(criteria, (round(w, 6) for w in result.weights), strict=True)),
            }
        )
    pooled = ahp.aggregate(matrices) if len(matrices) > 1 else ahp.validate(matrices[0])
    result = ahp.priorities(pooled)
    if not result.consistent:
        what = "the pooled matrix" if len(matrices) > 1 else "the matrix"
        hint = ""
        # With three criteria every judgement is equally at odds with the other two; name one only from four.
        if n >= 4:
            i, j, given, implied = ahp.most_inconsistent(pooled, result.weights)
            hint = (
                f" (the most inconsistent is {criteria[i]} vs {criteria[j]}: {given:.3g} given, "
                f"{implied:.3g} implied by the weights)"
            )
        raise InvalidInput(
            "matrices",
            f"consistency ratio of {what} is {result.consistency_ratio:.3f}, above Saaty's limit of "
            f"{ahp.CR_THRESHOLD:.2f}; revise the judgements{hint}",
            consistency_ratio=round(result.consistency_ratio, 6),
            individual_consistency_ratios=[r["consistency_ratio"] for r in individual],
        )
    by_criterion = dict(zip(criteria, result.weights, strict=True))
    weights = {c: round(by_criterion.get(c, 0.0), 6) for c in CRITERIA}
    details = {
        "criteria": criteria,
        "excluded_criteria": [c for c in CRITERIA if c not in by_criterion],
        "matrices": matrices,
        "experts": experts,
        "individual": individual,
        "aggregation": "element-wise geometric mean of judgements (Aczel & Saaty 1983)"
        if len(matrices) > 1
        else "single expert",
        "aggregated_matrix": [[round(float(x), 6) for x in row] for row in pooled],
        "eigenvalue": round(result.lambda_max, 6),
        "consistency_index": round(result.consistency_index, 6),
        "random_index": result.random_index,
        "consistency_ratio": round(result.consistency_ratio, 6),
        "consistency_ratios": [r["consistency_ratio"] for r in individual],
        "method": "principal eigenvector, Saaty (1980) The Analytic Hierarchy Process",
    }
    return _create_next(
        session,
        name=name,
        weights=weights,
        description=description,
        method="ahp",
        details=details,
        created_by=created_by,
    )


CREATE_ATTEMPTS = 3


def _create_next(session: Session, **fields: Any) -> WeightProfile:
    # Two consultants posting the same name at once both mean "add a version": the loser of the
    # race re-reads the latest version and takes the next one; 409 only after repeated losses.
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            return create(session, **fields)
        except Conflict:
            if attempt == CREATE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
