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
    STAGE_TABLE,
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
        if (codes == codes[0]).all():  # the usual case, one mask: what np.unique says, for less
            masks, group = active[:1], np.zeros(n, dtype=int)
        else:
            _, first, group = np.unique(codes, return_index=True, return_inverse=True)
            masks = active[first]
    for g, mask in enumerate(masks):
        sampled = _sampled_weights(w, mask, samples, concentration, seed)  # (samples, criteria)
        in_group = np.arange(n) if len(masks) == 1 else (group.ravel() == g).nonzero()[0]
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
        np.putmask(winners, better, m)  # winners[better] = m, for less
        # Where better, model m's score; elsewhere the best or a score equal to it (no NaN here: the
        # fits are filled and the weights lie on the simplex): half the cost of np.where. The first
        # is a new array, then written in place (in place on a view of sample_scores, numpy would
        # check the two for overlap and copy).
        best = np.maximum(best, sample_scores[:, m, :], out=best if m > 1 else None)
    counts = np.bincount(
        (winners + len(MODEL_IDS) * np.arange(n)[:, None]).ravel(), minlength=n * len(MODEL_IDS)
    )
    return counts.reshape(n, len(MODEL_IDS)) / samples


def _leave_one_out(fits: np.ndarray, factors: np.ndarray, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    wa = w * ~np.isnan(rows)  # (n, criteria)
    weighted = np.where(np.isnan(fits), 0.0, fits) * wa[:, None, :]  # (n, models, criteria)
    total = wa.sum(axis=1)  # (n,)
    # Dropping criterion j removes its term from the numerator and its weight from the total.
    numerator = weighted.sum(axis=2)[:, None, :] - weighted.transpose(0, 2, 1)  # (n, criteria, models)
    remaining = total[:, None] - wa  # (n, criteria)
    with np.errstate(invalid="ignore", divide="ignore"):
        dropped = numerator / remaining[:, :, None] * factors[:, None, :]
    # (Array methods: numpy's functions of the same name only dispatch to them, at about 1 us a call.)
    top = np.where(np.isnan(dropped), -1.0, dropped.round(TIE_DECIMALS)).argmax(axis=2)
    weighted_in = wa > 0
    applicable = weighted_in & (weighted_in.sum(axis=1, keepdims=True) >= 2)
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

# The gates as `gate_matrix` and `gate_factors` apply them, split by the input each reads: a move of
# one input decides only that input's gates anew, and a profile's failures on the others are counted
# once. A stage gate passes by its `stages`, any other by x >= `minimum`.
# (Checked at import, and not with assert, which `python -O` drops: a gate of another kind needs
# the counterfactual's scoring of candidates changed with it.)
if not all((g.stages is None) != (g.minimum is None) for g in GATES):
    raise ImportError("every gate needs exactly one of `stages` and `minimum`")
if not all(g.criterion == CRITERIA[0] for g in GATES if g.stages is not None):
    raise ImportError("stage gates must read the stage input")
_GATE_COLUMN = np.array([CRITERIA.index(g.criterion) for g in GATES])
# _FAILS_OFF[g, c * models + m]: 1 where gate g counts against model m and reads another input than c.
_OTHER_INPUT = _GATE_COLUMN[:, None] != np.arange(len(CRITERIA))  # (gates, criteria)
_FAILS_OFF = (GATE_MODEL.T[:, None, :] * _OTHER_INPUT[:, :, None]).astype(np.intp).reshape(len(GATES), -1)
# _MINIMUM[c, m]: the threshold of model m's numeric gate on input c, below which it fails; -inf for none.
_MINIMUM = np.full((len(CRITERIA), len(MODEL_IDS)), -np.inf)
for _gate in GATES:
    if _gate.minimum is not None:
        _at = CRITERIA.index(_gate.criterion), MODEL_IDS.index(_gate.model)
        if _MINIMUM[_at] != -np.inf:
            raise ImportError("one numeric gate per input and model")
        _MINIMUM[_at] = _gate.minimum
# _STAGE_FAILS[s, m]: model m's stage gates that stage s fails.
_STAGE_FAILS = np.array(
    [
        [sum(g.model == m and g.stages is not None and s not in g.stages for g in GATES) for m in MODEL_IDS]
        for s in STAGES
    ]
)
_STAGE_VALUES = np.arange(len(STAGES), dtype=float)  # the stage column's values, STAGES in order
# Each piece is [lo, hi): a gate passes at its threshold (x >= minimum), so the threshold opens a piece.
# Failures of the input's own gates on each piece, (models, 1, numeric, pieces).
_PIECE_FAILS = (_PIECE_LO[None] < _MINIMUM[1:].T[:, :, None]).astype(np.intp)[:, None]
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
# As (models, 1, numeric, pieces), the layout the solver works in: models first, so that a maximum
# over the models is a few whole-array operations rather than a reduction along a short last axis.
_PIECE_SLOPE = _PIECE_SLOPE[:, None]
_PIECE_INTERCEPT = _PIECE_INTERCEPT[:, None]
# A numeric input's fit curve, as `fit_matrix` evaluates it: (numeric, [value at 0, slope below 0.5,
# slope above], models).
_CURVE_PARTS = np.stack([CURVES[0].T, SLOPE_LOW.T, SLOPE_HIGH.T], axis=1)
_NUMERIC_INDEX = np.arange(len(_NUMERIC))[None, :, None]
_WAY_INDEX = np.arange(2)[None, None, :]


def _counterfactual(
    rows: np.ndarray, w: np.ndarray, fits: np.ndarray, gates: np.ndarray, runner_up: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, value, value as reported) of each profile's smallest winning change for its runner-up;
    column -1 (value NaN) where there is none, 0 for a stage change (value: the stage index)."""
    n = len(rows)
    everyone = np.arange(n)
    wa = w * ~np.isnan(rows)  # weights of the known inputs
    total = wa.sum(axis=1)
    # Each input's weighted fit, (n, models, criteria): the terms `scores` adds up, in its layout.
    terms = np.where(np.isnan(fits), 0.0, fits) * wa[:, None, :]
    weighted = terms.sum(axis=2)  # (n, models)
    # Per profile, criterion and model, the failed gates that read another input: (n, criteria, models)
    # (NaN, not assessed, counts as not failed, as in `gate_factors`).
    failed_off = ((gates == 0) @ _FAILS_OFF).reshape(n, len(CRITERIA), len(MODEL_IDS))

    # Each numeric input j, on each piece: score_m(x) = p_m + q_m * x, shape (models, n, numeric, pieces).
    factor = PENALTY_BY_FAILURES.take(failed_off[:, 1:, :].transpose(2, 0, 1)[..., None] + _PIECE_FAILS)
    others = (weighted[:, :, None] - terms[:, :, 1:]).transpose(1, 0, 2)[..., None]  # (models, n, numeric, 1)
    w_j = w[1:, None]
    scale = total[:, None, None]
    p = factor * (others + w_j * _PIECE_INTERCEPT) / scale
    q = factor * (w_j * _PIECE_SLOPE) / scale

    # The runner-up r can be first at x only where (p_r - p_m) + (q_r - q_m) x >= 0 for every other
    # model m (r's own differences are exactly 0 and bound nothing); exact ties (which go to the fixed
    # model order) are settled by the check below.
    dp = p[runner_up, everyone] - p
    dq = q[runner_up, everyone] - q
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -dp / dq
    lower = np.where(dq > 0, bound, -np.inf).max(axis=0)  # (n, numeric, pieces)
    upper = np.where(dq < 0, bound, np.inf).min(axis=0)
    never = ((dq == 0) & (dp < -TIE)).any(axis=0)  # a model ahead by a constant margin

    x = rows[:, 1:, None]  # (n, numeric, 1); NaN where unknown
    lo = np.maximum(lower, _PIECE_LO)
    lo[never] = np.inf  # an empty interval: no point of the piece wins
    hi = np.minimum(upper, _PIECE_HI)
    # On each piece the nearest point of [lo, hi] within one level: just inside the interval, or
    # the point itself when that is all there is (a threshold reached by exactly one level). An
    # interval that closes by less than TIE is a rounding artefact of such a point and is kept.
    reach_up, reach_down = np.minimum(x + _STEP, 1.0), np.maximum(x - _STEP, 0.0)
    up_lo, up_hi = np.maximum(lo, x), np.minimum(hi, reach_up)
    down_lo, down_hi = np.maximum(lo, reach_down), np.minimum(hi, x)
    up_gap, down_gap = np.maximum(up_hi - up_lo, 0.0), np.maximum(down_hi - down_lo, 0.0)
    up = np.minimum(up_lo + np.minimum(_NUDGE, up_gap / 2), reach_up)  # within one level
    down = np.maximum(down_hi - np.minimum(_NUDGE, down_gap / 2), reach_down)
    target = np.empty((*up.shape, 2))  # (n, numeric, pieces, up/down)
    # Kept where the interval is there and the move goes its own way (NaN compares false: dropped).
    target[..., 0] = np.where((up_hi >= up_lo - TIE) & (up > x), up, np.nan)
    target[..., 1] = np.where((down_hi >= down_lo - TIE) & (down < x), down, np.nan)

    # The algebra proposes; the engine's own scoring (with its tie rule) decides. One pass checks
    # every stage of every profile (the next stage up or down, size 1.0: any numeric move within one
    # level is smaller) and every proposed point, as solved and as rounded as it is usually reported
    # (to the first of _SHOWN_DECIMALS; see `_reported`). A candidate differs from its profile in one
    # input, so it is scored from the profile's terms with that one replaced and only that input's
    # gates decided anew: the same numbers, added in the same order, as `_wins` (the engine's `scores`
    # of the candidate row), for a fraction of the operations.
    valid = ~np.isnan(target)
    i_idx, j_idx, _, _ = valid.nonzero()
    proposed = target[valid]
    current = rows[i_idx, j_idx + 1]
    shown = _away(proposed, current, _SHOWN_DECIMALS[0])
    n_stage = n * len(STAGES)
    # Candidates: each profile at each stage, then the proposals as solved, then as shown.
    at = np.concatenate([everyone.repeat(len(STAGES)), i_idx, i_idx])  # each candidate's profile
    column = np.concatenate([j_idx, j_idx]) + 1  # the numeric candidates' input,
    value = np.concatenate([proposed, shown])  # and its value
    candidate = terms.take(at, axis=0)  # (candidates, models, criteria)
    # The moved input's term: a stage's fit from the table, a number's from its curve (as `fit_matrix`).
    # A profile without a stage gets stage candidates too, scored without a real total (its stage
    # weight is not in `total`); they are dropped below, as no stage is one step from an unknown one.
    candidate[:n_stage].reshape(n, len(STAGES), *terms.shape[1:])[..., 0] = STAGE_TABLE.T * w[0]
    curve = _CURVE_PARTS.take(column - 1, axis=0)  # (numeric candidates, 3, models)
    fit = (
        curve[:, 0]
        + curve[:, 1] * np.minimum(value, 0.5)[:, None]
        + curve[:, 2] * np.maximum(value - 0.5, 0.0)[:, None]
    )
    candidate[np.arange(n_stage, len(at)), :, column] = fit * w[column, None]
    failures = np.concatenate(
        [
            (failed_off[:, None, 0, :] + _STAGE_FAILS).reshape(n_stage, -1),
            failed_off[at[n_stage:], column] + (value[:, None] < _MINIMUM.take(column, axis=0)),
        ]
    )
    score = candidate.sum(axis=2) / total.take(at)[:, None] * PENALTY_BY_FAILURES.take(failures)
    # rank_order's first column (see `_wins`). (Array methods: numpy's functions of the same name
    # only dispatch to them, at about 1 us a call.)
    won = score.round(TIE_DECIMALS).argmax(axis=1) == runner_up.take(at)

    # One step only, as for the numbers (STAGES is in order): developing <-> chaser <-> leader. A
    # chaser with both neighbours winning is shown the first in STAGES order. (NaN: no step.)
    won_stage = won[:n_stage].reshape(n, len(STAGES)) & (np.abs(rows[:, :1] - _STAGE_VALUES) == 1)
    has = won_stage.any(axis=1)
    best_column = np.where(has, 0, -1)
    best_value = np.where(has, won_stage.argmax(axis=1), np.nan)
    won_solved, won_shown = won[n_stage:].reshape(2, -1)
    moves = np.full(target.shape, np.inf)
    moves[valid] = np.where(won_solved, np.abs(proposed - current), np.inf)
    proposal = np.full(target.shape, -1)
    proposal[valid] = np.arange(len(proposed))
    nearest = moves.argmin(axis=2)  # (n, numeric, up/down): the nearest confirmed piece
    # Indexed directly (take_along_axis builds the same index arrays, at several times the cost).
    at_nearest = (everyone[:, None, None], _NUMERIC_INDEX, nearest, _WAY_INDEX)
    best_moves = moves[at_nearest].reshape(n, -1)  # (n, numeric * 2), criterion order, up first
    best_proposal = proposal[at_nearest].reshape(n, -1)

    # Smallest move per profile; the first of equals is the earlier criterion, up before down.
    k = best_moves.round(9).argmin(axis=1)
    found = np.isfinite(best_moves[everyone, k]).nonzero()[0]
    chosen = best_proposal[found, k[found]]
    best_column[found] = _NUMERIC[k[found] // 2]
    best_value[found] = proposed[chosen]
    best_shown = best_value.copy()
    rounded_wins = won_shown[chosen]
    best_shown[found[rounded_wins]] = shown[chosen[rounded_wins]]
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
    scaled = value * scale
    away = np.where(value > current, np.ceil(scaled), np.floor(scaled))
    away /= scale
    return away.clip(0.0, 1.0)


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
