"""How much an answer depends on the weights, and what input would change it.

- robustness: draw weight vectors on the simplex around the weights in use
  (Dirichlet with mean equal to the normalised weights), rescore, and count how
  often the top model stays on top. A fixed seed makes a stored assessment
  reproduce exactly.
- leave-one-out: the winner when each criterion is dropped in turn.
- counterfactual: the smallest change of one input, within one level step,
  that would put the runner-up first.

`analyse` does all of it for many profiles in one pass of array arithmetic, so a
batch of a thousand costs little more than one; `robustness`, `leave_one_out` and
`counterfactual` are the one-profile views of the same computation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA
from scoring.engine import (
    Evaluation,
    encode,
    explain_row,
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

_STEP = 1 / 3  # one level
_COARSE = 10  # the counterfactual first tries moves in steps of a tenth of a level ...
_FINE_POINTS = 32  # ... then narrows the smallest winning move in 32 steps,
_FINE_ROUNDS = 2  # twice: to 1/(30 * 32 * 32) of the scale, about 3e-5


@dataclass(frozen=True, slots=True)
class Robustness:
    robustness: float  # share of samples whose top model is the unperturbed top model
    first_place_shares: dict[str, float]
    samples: int
    concentration: float
    seed: int


@dataclass(frozen=True, slots=True)
class LeaveOneOut:
    criterion: str
    top_model: str
    changes_top: bool


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


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the rules say about n profiles, as arrays (row i belongs to profile i)."""

    rows: np.ndarray  # (n, criteria) encoded profiles
    weights: np.ndarray  # (criteria,)
    fits: np.ndarray  # (n, models, criteria)
    gates: np.ndarray  # (n, gates)
    factors: np.ndarray  # (n, models)
    scores: np.ndarray  # (n, models)
    robustness: np.ndarray  # (n,)
    first_place: np.ndarray  # (n, models) share of samples won
    loo_top: np.ndarray  # (n, criteria) top model index without that criterion; -1 if not applicable
    cf_column: np.ndarray  # (n,) criterion moved for the runner-up to win; -1 if none
    cf_value: np.ndarray  # (n,) to what
    samples: int
    concentration: float
    seed: int

    def evaluation(self, i: int) -> Evaluation:
        return explain_row(
            self.rows[i], self.fits[i], self.gates[i], self.factors[i], self.scores[i], self.weights
        )

    def robustness_of(self, i: int) -> Robustness:
        return Robustness(
            robustness=float(self.robustness[i]),
            first_place_shares={m: float(self.first_place[i, k]) for k, m in enumerate(MODEL_IDS)},
            samples=self.samples,
            concentration=self.concentration,
            seed=self.seed,
        )

    def leave_one_out_of(self, i: int) -> list[LeaveOneOut]:
        top = int(rank_order(self.scores[i])[0])
        return [
            LeaveOneOut(CRITERIA[j], MODEL_IDS[t], bool(t != top))
            for j, t in enumerate(self.loo_top[i])
            if t >= 0
        ]

    def counterfactual_of(self, i: int) -> Counterfactual:
        runner_up = MODEL_IDS[int(rank_order(self.scores[i])[1])]
        j = int(self.cf_column[i])
        if j < 0:
            return Counterfactual(runner_up, None)
        value = float(self.cf_value[i])
        if j == 0:
            current_stage = STAGES[int(self.rows[i, 0])].value
            return Counterfactual(
                runner_up,
                Change("innovation_stage", current_stage, STAGES[int(value)].value, None, None, 1.0),
            )
        current = float(self.rows[i, j])
        # Reported to 4 decimals, rounded away from the current value: the search stops just past
        # the boundary (often a gate threshold such as 2/3), and rounding back towards the current
        # value could land on the losing side.
        rounded = math.ceil(value * 1e4) / 1e4 if value > current else math.floor(value * 1e4) / 1e4
        rounded = min(1.0, max(0.0, rounded))
        change = Change(
            CRITERIA[j],
            round(current, 4),
            rounded,
            level_of(current).value,
            level_of(rounded).value,
            round(abs(rounded - current), 6),
        )
        return Counterfactual(runner_up, change)


@lru_cache(maxsize=256)
def _dirichlet(alpha: tuple[float, ...], samples: int, seed: int) -> np.ndarray:
    """Weight samples on the simplex; a pure function of its arguments, so it is kept."""
    drawn = np.random.default_rng(seed).dirichlet(alpha, size=samples)
    drawn.setflags(write=False)
    return drawn


def _sampled_weights(
    w: np.ndarray, active: np.ndarray, samples: int, concentration: float, seed: int
) -> np.ndarray:
    full = np.zeros((samples, len(CRITERIA)))
    full[:, active] = _dirichlet(tuple(concentration * w[active] / w[active].sum()), samples, seed)
    return full


def _robustness(
    fits: np.ndarray,
    factors: np.ndarray,
    top: np.ndarray,
    w: np.ndarray,
    rows: np.ndarray,
    samples: int,
    concentration: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    robust = np.zeros(n)
    shares = np.zeros((n, len(MODEL_IDS)))
    active = ~np.isnan(rows) & (w > 0)
    filled = np.where(np.isnan(fits), 0.0, fits)
    # Profiles with the same known inputs share one set of weight samples.
    if n == 1:
        masks, group = active, np.zeros(1, dtype=int)
    else:
        masks, group = np.unique(active, axis=0, return_inverse=True)
    for g, mask in enumerate(masks):
        members = np.flatnonzero(group.ravel() == g)
        sampled = _sampled_weights(w, mask, samples, concentration, seed)  # (samples, criteria)
        # Samples sum to 1 over the known inputs, so each weighted mean is a dot product.
        sub = filled[members]  # (members, models, criteria)
        sample_scores = (sub.reshape(-1, sub.shape[2]) @ sampled.T).reshape(
            len(members), len(MODEL_IDS), samples
        )
        sample_scores *= factors[members, :, None]
        winners = np.argmax(sample_scores, axis=1)  # (members, samples); first of equals, as rank_order
        counts = np.bincount(
            (winners + len(MODEL_IDS) * np.arange(len(members))[:, None]).ravel(),
            minlength=len(members) * len(MODEL_IDS),
        )
        shares[members] = counts.reshape(len(members), len(MODEL_IDS)) / samples
        robust[members] = shares[members, top[members]]
    return robust, shares


def _leave_one_out(fits: np.ndarray, factors: np.ndarray, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    assessed = ~np.isnan(rows)
    wa = w * assessed  # (n, criteria)
    weighted = np.where(np.isnan(fits), 0.0, fits) * wa[:, None, :]  # (n, models, criteria)
    total = wa.sum(axis=1)  # (n,)
    # Dropping criterion j removes its term from the numerator and its weight from the total.
    numerator = weighted.sum(axis=2)[:, None, :] - np.transpose(weighted, (0, 2, 1))  # (n, criteria, models)
    remaining = total[:, None] - wa  # (n, criteria)
    with np.errstate(invalid="ignore", divide="ignore"):
        dropped = numerator / remaining[:, :, None] * factors[:, None, :]
    top = np.argmax(np.where(np.isnan(dropped), -1.0, dropped), axis=2)
    applicable = (wa > 0) & ((wa > 0).sum(axis=1, keepdims=True) >= 2)
    return np.where(applicable, top, -1)


def _wins(rows: np.ndarray, w: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """Whether `runner_up[i]` ranks first for each candidate row i."""
    new = scores(fit_matrix(rows), gate_factors(gate_matrix(rows)), w)
    return rank_order(new)[:, 0] == runner_up


def _counterfactual(rows: np.ndarray, w: np.ndarray, score_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(rows)
    runner_up = rank_order(score_rows)[:, 1]
    best_column = np.full(n, -1)
    best_value = np.full(n, np.nan)
    best_size = np.full(n, np.inf)

    # Candidates, all scored in one call: (1) every other stage, size 1.0 (any numeric move found
    # is at most one level, so smaller); (2) each numeric input moved by up to one level, both ways,
    # on a coarse grid of a tenth of a level.
    stages = np.arange(len(STAGES), dtype=float)
    stage_rows = np.repeat(rows, len(stages), axis=0)
    stage_rows[:, 0] = np.tile(stages, n)
    pairs = [(j, sign) for j in range(1, len(CRITERIA)) for sign in (1.0, -1.0)]
    column_of = np.array([j for j, _ in pairs])
    sign_of = np.array([sign for _, sign in pairs])
    offsets = np.arange(1, _COARSE + 1) / _COARSE * _STEP
    x = rows[:, column_of]  # (n, pairs)
    target = x[:, :, None] + sign_of[None, :, None] * offsets[None, None, :]  # (n, pairs, offsets)
    valid = ~np.isnan(target) & (target >= 0.0) & (target <= 1.0)
    i_idx, p_idx, k_idx = np.nonzero(valid)
    moved_rows = rows[i_idx].copy()
    moved_rows[np.arange(len(i_idx)), column_of[p_idx]] = target[i_idx, p_idx, k_idx]
    won_all = _wins(
        np.concatenate([stage_rows, moved_rows]),
        w,
        np.concatenate([np.repeat(runner_up, len(stages)), runner_up[i_idx]]),
    )

    won_stage = won_all[: len(stage_rows)].reshape(n, len(stages))
    won_stage &= ~np.isnan(rows[:, :1]) & (rows[:, :1] != stages[None, :])
    has = won_stage.any(axis=1)
    best_column[has], best_value[has], best_size[has] = 0, np.argmax(won_stage, axis=1)[has], 1.0

    won = np.zeros(valid.shape, dtype=bool)
    won[i_idx, p_idx, k_idx] = won_all[len(stage_rows) :]
    any_win = won.any(axis=2)
    coarse = np.where(any_win, offsets[np.argmax(won, axis=2)], np.inf)  # (n, pairs)
    smallest = coarse.min(axis=1, keepdims=True)
    # The moves tied for the smallest coarse win are then narrowed on a finer grid towards the
    # current value, all at once.
    i_idx, p_idx = np.nonzero(any_win & (coarse == smallest))
    if len(i_idx):
        hi = coarse[i_idx, p_idx]
        lo = hi - _STEP / _COARSE  # the next smaller coarse move lost (or is no move at all)
        cols = column_of[p_idx]
        fractions = np.arange(1, _FINE_POINTS + 1) / _FINE_POINTS
        for _ in range(_FINE_ROUNDS):
            # Split each (lo, hi] into _FINE_POINTS steps; the first winning one is the new hi.
            moves = lo[:, None] + (hi - lo)[:, None] * fractions[None, :]  # (pairs found, points)
            candidate = np.repeat(rows[i_idx], _FINE_POINTS, axis=0)
            candidate[np.arange(len(candidate)), np.repeat(cols, _FINE_POINTS)] = (
                x[i_idx, p_idx][:, None] + sign_of[p_idx][:, None] * moves
            ).ravel()
            ok = _wins(candidate, w, np.repeat(runner_up[i_idx], _FINE_POINTS)).reshape(moves.shape)
            ok[:, -1] = True  # hi itself won
            first = np.argmax(ok, axis=1)
            rows_idx = np.arange(len(first))
            hi = moves[rows_idx, first]
            lo = np.where(first > 0, moves[rows_idx, np.maximum(first - 1, 0)], lo)
        # Smallest refined move per profile; pairs are in criterion order, + before -, so the
        # first of equals is the earlier criterion.
        taken = np.zeros(n, dtype=bool)
        for k in np.lexsort((p_idx, np.round(hi, 9), i_idx)):
            i = i_idx[k]
            if taken[i]:
                continue  # a smaller move of this profile came first (sorted ascending)
            taken[i] = True
            best_column[i] = cols[k]
            best_value[i] = x[i, p_idx[k]] + sign_of[p_idx[k]] * hi[k]
            best_size[i] = hi[k]
    return best_column, best_value


def analyse(
    rows: np.ndarray,
    weights: Mapping[str, float],
    *,
    samples: int = DEFAULT_SAMPLES,
    concentration: float = DEFAULT_CONCENTRATION,
    seed: int = DEFAULT_SEED,
    what_if: bool = True,
) -> Analysis:
    """Scores, robustness, leave-one-out and counterfactuals for many encoded profiles at once.

    `what_if=False` skips the leave-one-out and counterfactual searches (their arrays say "none").
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    w = weight_vector(weights)
    fits = fit_matrix(rows)
    gates = gate_matrix(rows)
    factors = gate_factors(gates)
    score_rows = scores(fits, factors, w)
    top = rank_order(score_rows)[:, 0]
    robust, shares = _robustness(fits, factors, top, w, rows, samples, concentration, seed)
    if what_if:
        cf_column, cf_value = _counterfactual(rows, w, score_rows)
        loo_top = _leave_one_out(fits, factors, w, rows)
    else:
        cf_column, cf_value = np.full(len(rows), -1), np.full(len(rows), np.nan)
        loo_top = np.full(rows.shape, -1)
    return Analysis(
        rows=rows,
        weights=w,
        fits=fits,
        gates=gates,
        factors=factors,
        scores=score_rows,
        robustness=robust,
        first_place=shares,
        loo_top=loo_top,
        cf_column=cf_column,
        cf_value=cf_value,
        samples=samples,
        concentration=concentration,
        seed=seed,
    )


def robustness(
    profile: CountryProfile,
    weights: Mapping[str, float],
    *,
    samples: int = DEFAULT_SAMPLES,
    concentration: float = DEFAULT_CONCENTRATION,
    seed: int = DEFAULT_SEED,
) -> Robustness:
    """Share of Dirichlet-perturbed weight vectors under which the top model stays on top."""
    return analyse(
        encode(profile), weights, samples=samples, concentration=concentration, seed=seed
    ).robustness_of(0)


def leave_one_out(profile: CountryProfile, weights: Mapping[str, float]) -> list[LeaveOneOut]:
    """The top model when each weighted, assessed criterion is left out in turn."""
    return analyse(encode(profile), weights, samples=1).leave_one_out_of(0)


def counterfactual(profile: CountryProfile, weights: Mapping[str, float]) -> Counterfactual:
    """The smallest one-input change (one level step at most) that puts the runner-up first."""
    return analyse(encode(profile), weights, samples=1).counterfactual_of(0)
