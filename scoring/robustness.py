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

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA, GATES
from scoring.engine import (
    CURVES,
    GATE_MODEL,
    PENALTY_BY_FAILURES,
    SLOPE_HIGH,
    SLOPE_LOW,
    TIE,
    TIE_DECIMALS,
    Evaluation,
    Explained,
    encode,
    explain,
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
    order: np.ndarray  # (n, models) model indices best first (rank_order of scores)
    explained: Explained  # the same, as the lists an explanation is built from
    robustness: np.ndarray  # (n,)
    first_place: np.ndarray  # (n, models) share of samples won
    loo_top: np.ndarray  # (n, criteria) top model index without that criterion; -1 if not applicable
    cf_column: np.ndarray  # (n,) criterion moved for the runner-up to win; -1 if none
    cf_value: np.ndarray  # (n,) to what (the smallest winning value, unrounded)
    cf_shown: np.ndarray  # (n,) the same as reported: rounded away from the current value, still winning
    samples: int
    concentration: float
    seed: int

    def evaluation(self, i: int) -> Evaluation:
        return self.explained.evaluation(i)

    def robustness_of(self, i: int) -> Robustness:
        return Robustness(
            robustness=float(self.robustness[i]),
            first_place_shares=dict(zip(MODEL_IDS, self.first_place[i].tolist(), strict=True)),
            samples=self.samples,
            concentration=self.concentration,
            seed=self.seed,
        )

    def leave_one_out_of(self, i: int) -> list[LeaveOneOut]:
        top = self.explained.order[i][0]
        return [
            LeaveOneOut(CRITERIA[j], MODEL_IDS[t], t != top)
            for j, t in enumerate(self.loo_top[i].tolist())  # Python ints: numpy scalars cost more
            if t >= 0
        ]

    def counterfactual_of(self, i: int) -> Counterfactual:
        runner_up = MODEL_IDS[int(self.order[i, 1])]
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
        shown = float(self.cf_shown[i])
        change = Change(
            CRITERIA[j],
            round(current, 4),
            shown,
            level_of(current).value,
            level_of(shown).value,
            round(abs(shown - current), 6),
        )
        return Counterfactual(runner_up, change)


def _sampled_weights(
    w: np.ndarray, active: np.ndarray, samples: int, concentration: float, seed: int
) -> np.ndarray:
    """Weight samples on the simplex of the `active` criteria, 0 elsewhere: (samples, criteria)."""
    return _sampled(w.tobytes(), active.tobytes(), samples, concentration, seed)


@lru_cache(maxsize=256)
def _sampled(
    w_bytes: bytes, active_bytes: bytes, samples: int, concentration: float, seed: int
) -> np.ndarray:
    """`_sampled_weights` of the arrays given as bytes (hashable): a pure function of its arguments,
    so each is drawn once and kept, read-only."""
    w, active = np.frombuffer(w_bytes), np.frombuffer(active_bytes, dtype=bool)
    alpha = concentration * w[active] / w[active].sum()
    full = np.zeros((samples, len(CRITERIA)))
    full[:, active] = np.random.default_rng(seed).dirichlet(alpha, size=samples)
    full.setflags(write=False)
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
    else:  # each mask as one integer: a 1-D unique is much cheaper than a row-wise one
        codes = active.astype(np.int64) @ (1 << np.arange(active.shape[1], dtype=np.int64))
        _, first, group = np.unique(codes, return_index=True, return_inverse=True)
        masks = active[first]
    for g, mask in enumerate(masks):
        sampled = _sampled_weights(w, mask, samples, concentration, seed)  # (samples, criteria)
        in_group = np.flatnonzero(group.ravel() == g)
        # A block at a time: for a thousand profiles the score arrays are ~32 MB each, and in blocks
        # they stay in the CPU's caches (about 1.5x faster at 1,000). Each row's figures are its own.
        for start in range(0, len(in_group), _BLOCK):
            members = in_group[start : start + _BLOCK]
            shares[members] = _first_place_shares(filled[members], factors[members], sampled)
            robust[members] = shares[members, top[members]]
    return robust, shares


_BLOCK = 128  # profiles scored together in `_robustness`


def _first_place_shares(filled: np.ndarray, factors: np.ndarray, sampled: np.ndarray) -> np.ndarray:
    """(profiles, models): the share of the weight samples under which each model ranks first, for
    profiles whose fits are `filled` (NaN as 0) and gate factors `factors`."""
    n, samples = len(filled), len(sampled)
    # Samples sum to 1 over the known inputs, so each weighted mean is a dot product.
    sample_scores = (filled.reshape(-1, filled.shape[2]) @ sampled.T).reshape(n, len(MODEL_IDS), samples)
    sample_scores *= factors[:, :, None]
    # The first model with the highest score wins (first of equals, as rank_order). Walking the
    # four models is much faster than argmax along a short, strided middle axis.
    np.round(sample_scores, TIE_DECIMALS, out=sample_scores)  # ties as rank_order sees them
    winners = np.zeros((n, samples), dtype=np.intp)
    best = sample_scores[:, 0, :]
    for m in range(1, len(MODEL_IDS)):
        better = sample_scores[:, m, :] > best
        winners[better] = m
        best = np.where(better, sample_scores[:, m, :], best)
    counts = np.bincount(
        (winners + len(MODEL_IDS) * np.arange(n)[:, None]).ravel(), minlength=n * len(MODEL_IDS)
    )
    return counts.reshape(n, len(MODEL_IDS)) / samples


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
    top = np.argmax(np.where(np.isnan(dropped), -1.0, np.round(dropped, TIE_DECIMALS)), axis=2)
    applicable = (wa > 0) & ((wa > 0).sum(axis=1, keepdims=True) >= 2)
    return np.where(applicable, top, -1)


def _wins(rows: np.ndarray, w: np.ndarray, runner_up: np.ndarray) -> np.ndarray:
    """Whether `runner_up[i]` ranks first for each candidate row i."""
    new = scores(fit_matrix(rows), gate_factors(gate_matrix(rows)), w)
    # rank_order's first column: the first of the highest rounded scores (argmax takes the first
    # of equals, as the stable sort does), without sorting the rest.
    return np.argmax(np.round(new, TIE_DECIMALS), axis=1) == runner_up


# The exact counterfactual. Along one numeric input, with the others fixed, every model's score is
# piecewise affine: the fit curves bend only at 0.5 and the gates on that input switch only at their
# thresholds. Between those breakpoints "the runner-up ranks first" is a set of affine inequalities,
# so the smallest winning move is solved for, piece by piece, instead of searched for on a grid.
_NUDGE = 1e-9  # a solved boundary is a tie; the reported point lies this far inside the winning side
_NUMERIC = np.arange(1, len(CRITERIA))  # criterion columns of the numeric inputs
_BREAKS = [
    sorted(
        {0.0, 0.5, 1.0} | {g.minimum for g in GATES if g.criterion == CRITERIA[j] and g.minimum is not None}
    )
    for j in _NUMERIC
]
_PIECES = max(len(b) for b in _BREAKS) - 1
_PIECE_LO = np.array([b[:-1] + [1.0] * (_PIECES + 1 - len(b)) for b in _BREAKS])  # (numeric, pieces)
_PIECE_HI = np.array([b[1:] + [1.0] * (_PIECES + 1 - len(b)) for b in _BREAKS])  # empty pieces: [1, 1)
# Each piece is [lo, hi): a gate passes at its threshold (x >= minimum), so the threshold opens a piece.
# Gate outcome on each piece for gates on that input, NaN for gates on other inputs (kept as they are).
_PIECE_GATES = np.array(
    [
        [
            [
                float(lo >= g.minimum) if g.criterion == CRITERIA[j] and g.minimum is not None else np.nan
                for g in GATES
            ]
            for lo in _PIECE_LO[k]
        ]
        for k, j in enumerate(_NUMERIC)
    ]
)  # (numeric, pieces, gates)
# Fit on a piece as a + b * x: the curve's slope on that side of 0.5 and its value at the piece's start.
_PIECE_SLOPE = np.where(
    _PIECE_HI[None] <= 0.5, SLOPE_LOW[..., None], SLOPE_HIGH[..., None]
)  # (models, numeric, pieces)
_PIECE_START_FIT = (
    CURVES[0][..., None]
    + SLOPE_LOW[..., None] * np.minimum(_PIECE_LO[None], 0.5)
    + SLOPE_HIGH[..., None] * np.maximum(_PIECE_LO[None] - 0.5, 0.0)
)
_PIECE_INTERCEPT = _PIECE_START_FIT - _PIECE_SLOPE * _PIECE_LO[None]
# As (1, numeric, pieces, models), the layout the solver works in.
_PIECE_SLOPE = np.transpose(_PIECE_SLOPE, (1, 2, 0))[None]
_PIECE_INTERCEPT = np.transpose(_PIECE_INTERCEPT, (1, 2, 0))[None]
_MODEL_INDEX = np.arange(len(MODEL_IDS))[None, None, None, :]
_NUMERIC_INDEX = np.arange(len(_NUMERIC))[None, :, None]
_WAY_INDEX = np.arange(2)[None, None, :]


def _counterfactual(
    rows: np.ndarray, w: np.ndarray, fits: np.ndarray, gates: np.ndarray, runner_up: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, value, value as reported) of each profile's smallest winning change for its runner-up;
    column -1 (value NaN) where there is none, 0 for a stage change (value: the stage index)."""
    n = len(rows)
    best_column = np.full(n, -1)
    best_value = np.full(n, np.nan)

    # 1. The next stage up or down (size 1.0: any numeric move within one level is smaller), scored directly
    # (with the numeric candidates of step 2, in one call).
    stages = np.arange(len(STAGES), dtype=float)
    stage_candidate = np.repeat(rows, len(stages), axis=0)
    stage_candidate.reshape(n, len(stages), rows.shape[1])[:, :, 0] = (
        stages  # a view: row i's copies, each stage
    )

    # 2. Each numeric input j, on each piece: score_m(x) = p_m + q_m * x, shape (n, numeric, pieces, models).
    wa = w * ~np.isnan(rows)  # weights of the known inputs
    total = wa.sum(axis=1)[:, None, None, None]
    filled = np.where(np.isnan(fits), 0.0, fits)
    weighted = (filled * wa[:, None, :]).sum(axis=2)  # (n, models)
    others = weighted[:, :, None] - filled[:, :, _NUMERIC] * wa[:, None, _NUMERIC]  # (n, models, numeric)
    piece_gates = np.where(np.isnan(_PIECE_GATES), gates[:, None, None, :], _PIECE_GATES)
    failed = (piece_gates == 0).astype(float) @ GATE_MODEL.T  # (n, numeric, pieces, models)
    factor = PENALTY_BY_FAILURES[failed.astype(int)]
    w_j = w[_NUMERIC][None, :, None, None]
    others = np.transpose(others, (0, 2, 1))[:, :, None, :]  # (n, numeric, 1, models)
    p = factor * (others + w_j * _PIECE_INTERCEPT) / total
    q = factor * (w_j * _PIECE_SLOPE) / total

    # The runner-up r can be first at x only where (p_r - p_m) + (q_r - q_m) x >= 0 for every other
    # model m; exact ties (which go to the fixed model order) are settled by the check below.
    everyone = np.arange(n)
    dp = p[everyone, :, :, runner_up][..., None] - p
    dq = q[everyone, :, :, runner_up][..., None] - q
    r = runner_up[:, None, None, None]
    others_mask = r != _MODEL_INDEX
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -dp / dq
    lower = np.where(others_mask & (dq > 0), bound, -np.inf).max(axis=3)  # (n, numeric, pieces)
    upper = np.where(others_mask & (dq < 0), bound, np.inf).min(axis=3)
    never = (others_mask & (dq == 0) & (dp < -TIE)).any(axis=3)  # a model ahead by a constant margin

    x = rows[:, _NUMERIC][:, :, None]  # (n, numeric, 1); NaN where unknown
    lo = np.maximum(lower, _PIECE_LO[None])
    hi = np.minimum(upper, _PIECE_HI[None])
    # On each piece the nearest point of [lo, hi] within one level: just inside the interval, or
    # the point itself when that is all there is (a threshold reached by exactly one level). An
    # interval that closes by less than TIE is a rounding artefact of such a point and is kept.
    reach_up, reach_down = np.minimum(x + _STEP, 1.0), np.maximum(x - _STEP, 0.0)
    up_lo, up_hi = np.maximum(lo, x), np.minimum(hi, reach_up)
    down_lo, down_hi = np.maximum(lo, reach_down), np.minimum(hi, x)
    up_gap, down_gap = np.maximum(up_hi - up_lo, 0.0), np.maximum(down_hi - down_lo, 0.0)
    up = np.where(~never & (up_hi >= up_lo - TIE), up_lo + np.minimum(_NUDGE, up_gap / 2), np.nan)
    down = np.where(~never & (down_hi >= down_lo - TIE), down_hi - np.minimum(_NUDGE, down_gap / 2), np.nan)
    # Within one level, and a move in its own direction (NaN compares false: dropped).
    up = np.minimum(up, reach_up)
    up[~(up > x)] = np.nan
    down = np.maximum(down, reach_down)
    down[~(down < x)] = np.nan
    target = np.empty((*up.shape, 2))  # (n, numeric, pieces, up/down)
    target[..., 0], target[..., 1] = up, down

    # The algebra proposes; the engine's own scoring (with its tie rule) decides. One call checks
    # every proposed point of every profile, and each rounded as it is usually reported (to the
    # first of _SHOWN_DECIMALS; see `_reported`).
    i_idx, j_idx, k_idx, d_idx = np.nonzero(~np.isnan(target))
    proposed = target[i_idx, j_idx, k_idx, d_idx]
    current = x[i_idx, j_idx, 0]
    tried = np.empty((len(proposed), 2))  # (proposals, as solved / rounded)
    tried[:, 0], tried[:, 1] = proposed, _away(proposed, current, _SHOWN_DECIMALS[0])
    candidate = np.repeat(rows[i_idx], 2, axis=0)
    candidate[np.arange(len(candidate)), np.repeat(_NUMERIC[j_idx], 2)] = tried.ravel()
    won_all = _wins(
        np.concatenate([stage_candidate, candidate]),
        w,
        np.concatenate([np.repeat(runner_up, len(stages)), np.repeat(runner_up[i_idx], 2)]),
    )
    won_stage = won_all[: len(stage_candidate)].reshape(n, len(stages))
    # One step only, as for the numbers (STAGES is in order): developing <-> chaser <-> leader. A
    # chaser with both neighbours winning is shown the first in STAGES order.
    won_stage &= ~np.isnan(rows[:, :1]) & (np.abs(rows[:, :1] - stages[None, :]) == 1)
    has = won_stage.any(axis=1)
    best_column[has], best_value[has] = 0, np.argmax(won_stage, axis=1)[has]
    won_tried = won_all[len(stage_candidate) :].reshape(tried.shape)
    won = won_tried[:, 0]
    moves = np.full(target.shape, np.inf)
    moves[i_idx[won], j_idx[won], k_idx[won], d_idx[won]] = np.abs(proposed[won] - current[won])
    proposal = np.full(target.shape, -1)
    proposal[i_idx, j_idx, k_idx, d_idx] = np.arange(len(proposed))
    nearest = np.argmin(moves, axis=2)  # (n, numeric, up/down): the nearest confirmed piece
    # Indexed directly (take_along_axis builds the same index arrays, at several times the cost).
    at_nearest = (everyone[:, None, None], _NUMERIC_INDEX, nearest, _WAY_INDEX)
    best_moves = moves[at_nearest].reshape(n, -1)  # (n, numeric * 2), criterion order, up first
    best_proposal = proposal[at_nearest].reshape(n, -1)

    # Smallest move per profile; the first of equals is the earlier criterion, up before down.
    k = np.argmin(np.round(best_moves, 9), axis=1)
    found = np.flatnonzero(np.isfinite(best_moves[np.arange(n), k]))
    chosen = best_proposal[found, k[found]]
    best_column[found] = _NUMERIC[k[found] // 2]
    best_value[found] = proposed[chosen]
    best_shown = best_value.copy()
    rounded_wins = won_tried[chosen, 1]
    best_shown[found[rounded_wins]] = tried[chosen[rounded_wins], 1]
    finer = found[~rounded_wins]  # rare: a winning window narrower than the rounding
    if len(finer):
        best_shown[finer] = _reported(
            rows[finer], w, runner_up[finer], best_column[finer], best_value[finer], _SHOWN_DECIMALS[1:]
        )
    return best_column, best_value, best_shown


_SHOWN_DECIMALS = (4, 6, 9)  # a counterfactual value is reported to the fewest of these that still wins


def _away(value: np.ndarray, current: np.ndarray, decimals: int) -> np.ndarray:
    """`value` rounded to `decimals` away from `current` (so the change does not shrink), within [0, 1]."""
    scale = 10.0**decimals
    away = np.where(value > current, np.ceil(value * scale), np.floor(value * scale))
    return np.clip(away / scale, 0.0, 1.0)


def _reported(
    rows: np.ndarray,
    w: np.ndarray,
    runner_up: np.ndarray,
    column: np.ndarray,
    value: np.ndarray,
    decimals: tuple[int, ...],
) -> np.ndarray:
    """Numeric counterfactual values (column > 0) as reported: rounded away from the current value to
    the fewest of `decimals` that still wins (checked by scoring), else exact."""
    current = rows[np.arange(len(rows)), column]
    tried = np.stack([_away(value, current, d) for d in decimals], axis=1)  # (values, decimals)
    candidate = np.repeat(rows, len(decimals), axis=0)
    candidate[np.arange(len(candidate)), np.repeat(column, len(decimals))] = tried.ravel()
    ok = _wins(candidate, w, np.repeat(runner_up, len(decimals))).reshape(tried.shape)
    first = np.argmax(ok, axis=1)
    return np.where(ok.any(axis=1), tried[np.arange(len(rows)), first], value)


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
    order = rank_order(score_rows)
    robust, shares = _robustness(fits, factors, order[:, 0], w, rows, samples, concentration, seed)
    if what_if:
        cf_column, cf_value, cf_shown = _counterfactual(rows, w, fits, gates, order[:, 1])
        loo_top = _leave_one_out(fits, factors, w, rows)
    else:
        cf_column, cf_value = np.full(len(rows), -1), np.full(len(rows), np.nan)
        cf_shown = cf_value
        loo_top = np.full(rows.shape, -1)
    return Analysis(
        rows=rows,
        weights=w,
        fits=fits,
        gates=gates,
        factors=factors,
        scores=score_rows,
        order=order,
        explained=explain(rows, fits, gates, factors, score_rows, w, order),
        robustness=robust,
        first_place=shares,
        loo_top=loo_top,
        cf_column=cf_column,
        cf_value=cf_value,
        cf_shown=cf_shown,
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
        encode(profile), weights, samples=samples, concentration=concentration, seed=seed, what_if=False
    ).robustness_of(0)


def leave_one_out(profile: CountryProfile, weights: Mapping[str, float]) -> list[LeaveOneOut]:
    """The top model when each weighted, assessed criterion is left out in turn."""
    return analyse(encode(profile), weights, samples=1).leave_one_out_of(0)


def counterfactual(profile: CountryProfile, weights: Mapping[str, float]) -> Counterfactual:
    """The smallest one-input change (one level step at most) that puts the runner-up first."""
    return analyse(encode(profile), weights, samples=1).counterfactual_of(0)
