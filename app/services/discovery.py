"""Target discovery: every reference country scored for one export model, best first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.services import reference, weight_profiles
from scoring.cluster_models import MODEL_IDS
from scoring.engine import (
    TIE_DECIMALS,
    WeightsError,
    fit_matrix,
    gate_factors,
    gate_matrix,
    scores,
    weight_vector,
)
from scoring.profile import Stage


def _selected(
    table: reference.ReferenceTable, region: str | None, income_group: str | None, stage: Stage | str | None
) -> list[int]:
    """Row indices of the countries that pass the filters (case-insensitive names)."""
    wanted_stage = Stage(stage) if stage is not None else None
    out = []
    for i, iso3 in enumerate(table.order):
        c = table.countries[iso3]
        if region is not None and c.region.lower() != region.lower():
            continue
        if income_group is not None and (c.income_group or "").lower() != income_group.lower():
            continue
        if wanted_stage is not None and c.profile.innovation_stage != wanted_stage:
            continue
        out.append(i)
    return out


def rank_countries(
    session: Session,
    *,
    model_id: str,
    weights: Mapping[str, float],
    region: str | None = None,
    income_group: str | None = None,
    stage: Stage | str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Reference countries ranked by one model's rule score (same arithmetic as POST /v1/match, rules)."""
    if model_id not in MODEL_IDS:
        raise NotFound(f"unknown cluster model {model_id!r}; expected one of {list(MODEL_IDS)}")
    table = reference.reference_table(session)
    if table is None:
        raise NotFound("no reference data is loaded; run `python -m app.cli data load`")
    try:
        w = weight_vector(weights)
    except WeightsError as exc:
        raise InvalidInput(exc.field, str(exc), where=None) from exc  # a stored profile's weights

    picked = _selected(table, region, income_group, stage)
    if not picked:
        return []
    rows = table.rows[picked]
    assessed = ~np.isnan(rows)
    known_weight = (assessed * w).sum(axis=1)
    # A country with no figure for any weighted criterion has no score at all; `scores` would
    # refuse the whole batch, so such rows are left out rather than ranked at zero.
    scorable = known_weight > 0
    rows = rows[scorable]
    picked = [i for i, ok in zip(picked, scorable, strict=True) if ok]
    if not picked:
        return []
    m = MODEL_IDS.index(model_id)
    model_scores = scores(fit_matrix(rows), gate_factors(gate_matrix(rows)), w)[:, m]
    confidence = known_weight[scorable] / w.sum()

    # Best first; equal scores keep the ISO3 order of the table, so the order is reproducible.
    order = np.argsort(-np.round(model_scores, TIE_DECIMALS), kind="stable")  # equal scores keep ISO3 order
    if limit is not None:
        order = order[:limit]
    out = []
    for rank, k in enumerate(order, start=1):
        c = table.countries[table.order[picked[k]]]
        out.append(
            {
                "rank": rank,
                "iso3": c.iso3,
                "name": c.name,
                "region": c.region,
                "income_group": c.income_group,
                "stage": c.profile.innovation_stage.value if c.profile.innovation_stage else None,
                "score": round(float(model_scores[k]), 6),
                "confidence": round(float(confidence[k]), 6),
            }
        )
    return out


def ranking(
    session: Session,
    *,
    model_id: str,
    weight_profile: str = "default",
    region: str | None = None,
    income_group: str | None = None,
    stage: Stage | str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """`rank_countries` with a named weight profile, plus what a reader needs to reproduce it."""
    weights = weight_profiles.resolve(
        session, name=weight_profile, version=None, overrides=None, loc=("query", "weight_profile")
    )
    items = rank_countries(
        session,
        model_id=model_id,
        weights=weights.weights,
        region=region,
        income_group=income_group,
        stage=stage,
    )
    return {
        "model": model_id,
        "weight_profile": {"name": weights.name, "version": weights.version},
        "data_version": reference.current_version(session),
        "total": len(items),
        "items": items if limit is None else items[:limit],
    }
