"""How much an answer depends on the weights, and what input would change it.

- `robustness`: draw weight vectors on the simplex around the weights in use
  (Dirichlet with mean equal to the normalised weights), rescore, and count how
  often the top model stays on top. A fixed seed makes a stored assessment
  reproduce exactly.
- `leave_one_out`: the winner when each criterion is dropped in turn.
- `counterfactual`: the smallest change of one input, within one level step,
  that would put the runner-up first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA
from scoring.engine import (
    encode,
    fit_matrix,
    gate_factors,
    gate_matrix,
    rank_order,
    scores,
    weight_vector,
)
from scoring.profile import STAGES, CountryProfile, level_of

DEFAULT_SAMPLES = 1000
DEFAULT_CONCENTRATION = 50.0  # Dirichlet alpha = concentration * normalised weight
DEFAULT_SEED = 20231  # fixed: the same request always gets the same figure


@dataclass(frozen=True, slots=True)
class Robustness:
    robustness: float  # share of samples whose top model is the unperturbed top model
    first_place_shares: dict[str, float]
    samples: int
    concentration: float
    seed: int


def robustness(
    profile: CountryProfile,
    weights: dict[str, float],
    *,
    samples: int = DEFAULT_SAMPLES,
    concentration: float = DEFAULT_CONCENTRATION,
    seed: int = DEFAULT_SEED,
) -> Robustness:
    """Share of Dirichlet-perturbed weight vectors under which the top model stays on top."""
    w = weight_vector(weights)
    row = encode(profile)[None, :]
    fits = fit_matrix(row)[0]  # (models, criteria)
    factors = gate_factors(gate_matrix(row))[0]
    assessed = ~np.isnan(row[0])
    active = assessed & (w > 0)
    base = (np.nan_to_num(fits) @ (w * assessed)) / (w * assessed).sum() * factors
    top = rank_order(base)[0]

    rng = np.random.default_rng(seed)
    alpha = concentration * w[active] / w[active].sum()
    sampled = np.zeros((samples, len(CRITERIA)))
    sampled[:, active] = rng.dirichlet(alpha, size=samples)
    # Each sampled vector already sums to 1 over active criteria, so the weighted mean is a dot product.
    sample_scores = sampled @ np.nan_to_num(fits).T * factors  # (samples, models)
    winners = np.argmax(sample_scores, axis=1)  # argmax keeps the first of equals, as rank_order does
    counts = np.bincount(winners, minlength=len(MODEL_IDS))
    return Robustness(
        robustness=float(counts[top] / samples),
        first_place_shares={m: float(counts[i] / samples) for i, m in enumerate(MODEL_IDS)},
        samples=samples,
        concentration=concentration,
        seed=seed,
    )


@dataclass(frozen=True, slots=True)
class LeaveOneOut:
    criterion: str
    top_model: str
    changes_top: bool


def leave_one_out(profile: CountryProfile, weights: dict[str, float]) -> list[LeaveOneOut]:
    """The top model when each weighted, assessed criterion is left out in turn."""
    w = weight_vector(weights)
    row = encode(profile)[None, :]
    fits = fit_matrix(row)
    factors = gate_factors(gate_matrix(row))
    top = rank_order(scores(fits, factors, w)[0])[0]
    candidates = [j for j in range(len(CRITERIA)) if w[j] > 0 and not np.isnan(row[0, j])]
    if len(candidates) < 2:
        return []
    variants = np.repeat(w[None, :], len(candidates), axis=0)
    for i, j in enumerate(candidates):
        variants[i, j] = 0.0
    many = scores(
        np.repeat(fits, len(candidates), axis=0), np.repeat(factors, len(candidates), axis=0), variants
    )
    winners = rank_order(many)[:, 0]
    return [
        LeaveOneOut(
            criterion=CRITERIA[j], top_model=MODEL_IDS[winners[i]], changes_top=bool(winners[i] != top)
        )
        for i, j in enumerate(candidates)
    ]


@dataclass(frozen=True, slots=True)
class Change:
    input: str
    from_value: str | float
    to_value: str | float
    from_level: str | None
    to_level: str | None
    size: float  # distance moved on the [0, 1] scale (1.0 for a stage change)


@dataclass(frozen=True, slots=True)
class Counterfactual:
    target_model: str  # the runner-up
    change: Change | None  # None: no single change within one level step puts it first


_STEP = 1 / 3  # one level
_OFFSETS = np.round(np.arange(-100, 101) / 300, 6)  # moves of up to one level, in steps of 1/300
_OFFSETS = _OFFSETS[(_OFFSETS != 0) & (np.abs(_OFFSETS) <= _STEP + 1e-9)]


def counterfactual(profile: CountryProfile, weights: dict[str, float]) -> Counterfactual:
    """The smallest one-input change (one level step at most) that puts the runner-up first."""
    w = weight_vector(weights)
    base_row = encode(profile)
    base = scores(fit_matrix(base_row), gate_factors(gate_matrix(base_row)), w)[0]
    runner_up = int(rank_order(base)[1])

    # Candidate rows: every other stage, then every numeric input moved by each offset.
    columns: list[np.ndarray] = []  # which criterion column each candidate changes
    values: list[np.ndarray] = []  # to what
    if profile.innovation_stage is not None:
        others = [float(i) for i, stage in enumerate(STAGES) if stage != profile.innovation_stage]
        columns.append(np.zeros(len(others), dtype=int))
        values.append(np.array(others))
    for j in range(1, len(CRITERIA)):
        if np.isnan(base_row[j]):
            continue
        moved = base_row[j] + _OFFSETS
        moved = moved[(moved >= 0.0) & (moved <= 1.0)]
        columns.append(np.full(len(moved), j))
        values.append(moved)
    if not columns:
        return Counterfactual(MODEL_IDS[runner_up], None)
    column = np.concatenate(columns)
    target = np.concatenate(values)
    rows = np.repeat(base_row[None, :], len(column), axis=0)
    rows[np.arange(len(column)), column] = target

    new = scores(fit_matrix(rows), gate_factors(gate_matrix(rows)), w)
    wins = np.flatnonzero(rank_order(new)[:, 0] == runner_up)
    if wins.size == 0:
        return Counterfactual(MODEL_IDS[runner_up], None)
    size = np.where(column == 0, 1.0, np.abs(target - base_row[column]))
    # Smallest move first; between equal moves, the criterion listed first (lexsort: last key first).
    best = int(wins[np.lexsort((column[wins], np.round(size[wins], 9)))[0]])
    j, value = int(column[best]), float(target[best])
    if j == 0:
        change = Change("innovation_stage", profile.innovation_stage.value, STAGES[int(value)].value, None, None, 1.0)  # type: ignore[union-attr]
    else:
        current = float(base_row[j])
        change = Change(
            CRITERIA[j],
            round(current, 4),
            round(value, 4),
            level_of(current).value,
            level_of(value).value,
            round(abs(value - current), 6),
        )
    return Counterfactual(MODEL_IDS[runner_up], change)
