"""The rule engine: fits, gates and weighted aggregation for the four models.

The core works on arrays so that one profile, a batch of a thousand and the
ranking of every country for one model all go through the same arithmetic:
profiles are rows of `encode(...)`, fits are `fit_matrix(...)`, scores are
`scores(...)`. `evaluate(...)` wraps that for one profile and explains it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA, FIT_CURVES, GATE_PENALTY, GATES, NUMERIC_CRITERIA, STAGE_FIT, Gate
from scoring.profile import STAGES, CountryProfile

# 1.1: ties within TIE go to the fixed model order; the counterfactual is solved, not searched.
# 1.2: a counterfactual stage change is one step (developing <-> chaser <-> leader), as for the numbers.
ENGINE_VERSION = "rules-1.2"

N_MODELS = len(MODEL_IDS)
N_CRITERIA = len(CRITERIA)
_STAGE_INDEX = {s: i for i, s in enumerate(STAGES)}
# STAGE_TABLE[m, s]: fit of stage s for model m.
STAGE_TABLE = np.array([[STAGE_FIT[m][s] for s in STAGES] for m in MODEL_IDS])


# Weights are relative. A non-zero weight below this would reach the scores as a subnormal float and
# lose its precision (5e-324 times a fit is 0), so it is refused rather than silently mis-scored.
MIN_WEIGHT = 1e-9


class WeightsError(ValueError):
    """Weights that cannot be used: unknown criteria, negative, non-finite or too small, or all zero."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def encode(profile: CountryProfile) -> np.ndarray:
    """One profile as a row: stage index (0 leader, 1 chaser, 2 developing), then numbers; NaN = unknown."""
    row = np.full(N_CRITERIA, np.nan)
    if profile.innovation_stage is not None:
        row[0] = _STAGE_INDEX[profile.innovation_stage]
    for j, name in enumerate(NUMERIC_CRITERIA, start=1):
        value = profile.value_of(name)
        if value is not None:
            row[j] = value
    return row


def weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    """Validate a full weight mapping and return it in criterion order."""
    unknown = sorted(set(weights) - set(CRITERIA))
    if unknown:
        raise WeightsError(
            f"weights.{unknown[0]}", f"unknown criterion {unknown[0]!r}; expected one of {list(CRITERIA)}"
        )
    vector = np.array([float(weights.get(c, 0.0)) for c in CRITERIA])
    for name, value in zip(CRITERIA, vector, strict=True):
        if not math.isfinite(value) or value < 0:
            raise WeightsError(f"weights.{name}", f"weight must be a finite number >= 0, got {value}")
        if 0 < value < MIN_WEIGHT:
            raise WeightsError(
                f"weights.{name}", f"weight must be 0 or at least {MIN_WEIGHT:g}, got {value:g}"
            )
    if vector.sum() <= 0:
        raise WeightsError("weights", "at least one weight must be greater than 0")
    return vector


# Every fit curve has its knots among (0, 0.5, 1), so each is exactly three values: the fit at
# 0, at 0.5 and at 1. Holding them as one array lets a single expression score any number of
# profiles for every model and criterion at once.
KNOTS_X = (0.0, 0.5, 1.0)
for _model, _curves in FIT_CURVES.items():
    for _name, (_xs, _ys) in _curves.items():
        assert set(_xs) <= set(KNOTS_X), f"{_model}/{_name}: knots must lie on {KNOTS_X}"
# CURVES[k, m, j]: fit of model m on numeric criterion j at KNOTS_X[k].
CURVES = np.array(
    [[[np.interp(k, *FIT_CURVES[m][c]) for c in NUMERIC_CRITERIA] for m in MODEL_IDS] for k in KNOTS_X]
)
SLOPE_LOW = (CURVES[1] - CURVES[0]) / 0.5
SLOPE_HIGH = (CURVES[2] - CURVES[1]) / 0.5


def fit_matrix(rows: np.ndarray) -> np.ndarray:
    """Fits for every profile, model and criterion: shape (n, models, criteria); NaN where unknown."""
    rows = np.atleast_2d(rows)
    n = rows.shape[0]
    fits = np.empty((n, N_MODELS, N_CRITERIA))
    stage = rows[:, 0]
    known = ~np.isnan(stage)
    fits[:, :, 0] = np.nan
    fits[known, :, 0] = STAGE_TABLE[:, stage[known].astype(int)].T
    x = rows[:, None, 1:]  # (n, 1, numeric criteria); NaN in, NaN out
    # Below the middle knot only the low slope applies, above it the high slope takes over.
    fits[:, :, 1:] = CURVES[0] + SLOPE_LOW * np.minimum(x, 0.5) + SLOPE_HIGH * np.maximum(x - 0.5, 0.0)
    return fits


# Every gate as columns of arrays, so one comparison decides all gates of all profiles: the input
# column it reads, its minimum (numeric gates) and, for stage gates, which stage indices pass.
_GATE_COLUMN = np.array([CRITERIA.index(gate.criterion) for gate in GATES])
_GATE_IS_STAGE = np.array([gate.stages is not None for gate in GATES])
_GATE_MINIMUM = np.array([np.inf if gate.minimum is None else gate.minimum for gate in GATES])
_GATE_STAGE_PASS = np.array(
    [[gate.stages is not None and s in gate.stages for s in STAGES] for gate in GATES], dtype=float
)  # (gates, stages)


def gate_matrix(rows: np.ndarray) -> np.ndarray:
    """Gate outcomes, shape (n, len(GATES)): 1 passed, 0 failed, NaN not assessed."""
    rows = np.atleast_2d(rows)
    x = rows[:, _GATE_COLUMN]  # (n, gates); NaN where the input is unknown
    numeric = (x >= _GATE_MINIMUM).astype(float)
    stage_index = np.where(np.isnan(x) | ~_GATE_IS_STAGE, 0, x).astype(int)
    by_stage = _GATE_STAGE_PASS[np.arange(len(GATES)), stage_index]
    out = np.where(_GATE_IS_STAGE, by_stage, numeric)
    out[np.isnan(x)] = np.nan
    return out


GATE_MODEL = np.array([[gate.model == m for gate in GATES] for m in MODEL_IDS], dtype=float)


PENALTY_BY_FAILURES = GATE_PENALTY ** np.arange(len(GATES) + 1)


def gate_factors(gates: np.ndarray) -> np.ndarray:
    """Per-model multiplier from the gates, shape (n, models)."""
    failed = (gates == 0).astype(float)  # NaN (not assessed) counts as not failed
    return PENALTY_BY_FAILURES[(failed @ GATE_MODEL.T).astype(int)]


def scores(fits: np.ndarray, factors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Gated weighted-mean scores in [0, 1], shape (n, models); weights of unknown inputs drop out.

    `weights` is one vector (criteria,) or one per profile (n, criteria).
    """
    assessed = ~np.isnan(fits[:, 0, :])  # (n, criteria); unknown inputs are unknown for every model
    w = weights * assessed
    total = w.sum(axis=1)
    if np.any(total <= 0):
        raise WeightsError("weights", "every criterion with a weight > 0 lacks an input value")
    weighted = (np.where(np.isnan(fits), 0.0, fits) * w[:, None, :]).sum(axis=2)
    return weighted / total[:, None] * factors


# Scores are compared rounded to TIE_DECIMALS: equal fits reach a score by different sums, so an
# exact tie can come out a last bit apart, and rounding puts both on the same value so that the fixed
# model order decides. It is a grid, not a tolerance: two scores a bit apart that straddle the middle
# of a grid step still round apart (rare: the tie would have to fall on such a middle).
TIE_DECIMALS = 12
TIE = 10.0**-TIE_DECIMALS


def rank_order(score_rows: np.ndarray) -> np.ndarray:
    """Model indices best first; ties (equal at TIE_DECIMALS) broken by the fixed model order (stable sort)."""
    return np.argsort(-np.round(score_rows, TIE_DECIMALS), axis=-1, kind="stable")


class Contribution(NamedTuple):  # a tuple: an explanation builds 28 of them, and tuples are cheap
    criterion: str
    weight: float  # normalised over the assessed criteria
    fit: float | None
    contribution: float  # weight * fit, before gates


@dataclass(frozen=True, slots=True)
class GateResult:
    criterion: str
    passed: bool
    assessed: bool
    reason: str
    reason_ko: str
    source: str


@dataclass(frozen=True, slots=True)
class ModelScore:
    model: str
    rank: int
    score: float
    fit: float  # weighted fit before gates
    gate_factor: float
    contributions: tuple[Contribution, ...]
    gates: tuple[GateResult, ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    ranking: tuple[ModelScore, ...]
    confidence: float  # share of the total weight whose input was known
    missing_inputs: tuple[str, ...]
    weights: dict[str, float]  # the weights used, as given (not normalised)

    @property
    def recommended(self) -> str:
        return self.ranking[0].model

    def by_model(self, model: str) -> ModelScore:
        return next(s for s in self.ranking if s.model == model)


def evaluate(profile: CountryProfile, weights: Mapping[str, float]) -> Evaluation:
    """Score, gate and rank the four models for one profile, with every step kept for explanation."""
    w = weight_vector(weights)
    rows = encode(profile)[None, :]
    fits = fit_matrix(rows)
    gates = gate_matrix(rows)
    factors = gate_factors(gates)
    score_rows = scores(fits, factors, w)
    return explain(rows, fits, gates, factors, score_rows, w, rank_order(score_rows)).evaluation(0)


def _gate_result(gate: Gate, outcome: float) -> GateResult:
    assessed = outcome == outcome  # NaN (not assessed) is the one value unequal to itself
    return GateResult(
        criterion=gate.criterion,
        passed=outcome != 0,
        assessed=assessed,
        reason=gate.reason_en if assessed else f"not assessed (no {gate.criterion} input); {gate.reason_en}",
        reason_ko=gate.reason_ko,
        source=gate.source,
    )


# A gate has three outcomes, each with one (immutable) result: failed, passed, not assessed.
_GATE_RESULTS = [{outcome: _gate_result(gate, outcome) for outcome in (0.0, 1.0)} for gate in GATES]
_NOT_ASSESSED = [_gate_result(gate, math.nan) for gate in GATES]
_GATE_MODEL_INDEX = [MODEL_IDS.index(gate.model) for gate in GATES]


SHOWN_DECIMALS = 6  # fits, contributions and scores as the API shows them


def rounded(values: np.ndarray, decimals: int) -> np.ndarray:
    """`round(x, decimals)` of every element, in bulk, with Python's result exactly. NaN stays NaN.

    Python rounds the exact value of x; rint(x * 10**d) / 10**d rounds the product, which is itself
    rounded to a double. Below 2**52 every half-integer is a double, so that rounding can move the
    product onto a half but never past one: rint then gives Python's integer except where the product
    sits at (or, to be safe, within 1e-6 of) a half, and dividing that integer by 10**d gives the same
    double Python returns. Those few elements, and any whose product is too large for the argument
    (|x| * 10**d >= 2**50, with a margin), are rounded by Python itself. So is everything when
    10**d is not itself a double (more than 22 decimals).
    """
    if not 0 <= decimals <= 22:
        return np.array([round(float(v), decimals) for v in values.ravel()]).reshape(values.shape)
    scale = 10.0**decimals
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * scale
        out = np.rint(scaled) / scale
        by_python = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (np.abs(scaled) >= 2.0**50)
    for index in zip(*np.nonzero(by_python), strict=True):
        out[index] = round(float(values[index]), decimals)
    return out


@dataclass(frozen=True, slots=True)
class Explained:
    """What explaining n profiles needs, as plain Python lists (row i belongs to profile i): per-element
    access to numpy scalars costs more than the maths, so each array is converted once, in bulk."""

    assessed: list[list[bool]]  # (n, criteria) whether the input is known
    weights: list[list[float]]  # (n, criteria) normalised over the assessed criteria
    fits: list[list[list[float | None]]]  # (n, models, criteria); None where unknown
    contributions: list[list[list[float]]]  # (n, models, criteria) weight * fit, 0 where unknown
    gates: list[list[float]]  # (n, gates) 1 passed, 0 failed, NaN not assessed
    factors: list[list[float]]  # (n, models)
    scores: list[list[float]]  # (n, models)
    order: list[list[int]]  # (n, models) model indices best first
    fits_shown: list[list[list[float]]]  # fits rounded to SHOWN_DECIMALS; NaN where unknown
    contributions_shown: list[list[list[float]]]  # contributions rounded to SHOWN_DECIMALS
    strongest: list[list[list[int]]]  # (n, models, <= 2) criteria of the largest contributions, largest first
    confidence: list[float]  # (n,) share of the total weight whose input was known
    raw_weights: dict[str, float]  # the weights used, as given

    def gate_results(self, i: int) -> list[tuple[GateResult, ...]]:
        """Profile i's gate results, per model (in MODEL_IDS order), each model's in GATES order."""
        of_model: list[list[GateResult]] = [[] for _ in MODEL_IDS]
        for g, outcome in enumerate(self.gates[i]):
            of_model[_GATE_MODEL_INDEX[g]].append(_GATE_RESULTS[g].get(outcome) or _NOT_ASSESSED[g])
        return [tuple(results) for results in of_model]

    def missing_inputs(self, i: int) -> tuple[str, ...]:
        """Profile i's criteria without an input value, in criterion order."""
        return tuple(c for c, known in zip(CRITERIA, self.assessed[i], strict=True) if not known)

    def evaluation(self, i: int) -> Evaluation:
        """The Evaluation of profile i."""
        fit_rows, contribution_rows, weights = self.fits[i], self.contributions[i], self.weights[i]
        score_list, factor_list = self.scores[i], self.factors[i]
        gates_of = self.gate_results(i)
        ranking = []
        for rank, m in enumerate(self.order[i], start=1):
            contributions_m = contribution_rows[m]
            ranking.append(
                ModelScore(
                    model=MODEL_IDS[m],
                    rank=rank,
                    score=score_list[m],
                    fit=sum(contributions_m),
                    gate_factor=factor_list[m],
                    contributions=tuple(map(Contribution, CRITERIA, weights, fit_rows[m], contributions_m)),
                    gates=gates_of[m],
                )
            )
        return Evaluation(
            ranking=tuple(ranking),
            confidence=self.confidence[i],
            missing_inputs=self.missing_inputs(i),
            weights=dict(self.raw_weights),
        )


STRONGEST = 2  # criteria a rationale names as a model's largest contributions
_MODEL_ROWS = np.arange(N_MODELS)[None, :, None]


def _strongest(fits: np.ndarray, w_norm: np.ndarray, contribution: np.ndarray) -> list[list[list[int]]]:
    """Per profile and model, the criteria (indices) of the STRONGEST largest contributions, largest
    first, among those assessed with a weight above 0; equal contributions in criterion order."""
    counted = ~np.isnan(fits) & (w_norm > 0)[:, None, :]  # (n, models, criteria)
    # A stable sort of the negated values keeps equal ones in criterion order; -inf sorts the
    # uncounted last, and they are cut below.
    order = np.argsort(-np.where(counted, contribution, -np.inf), axis=2, kind="stable")[:, :, :STRONGEST]
    n = len(order)
    kept = counted[np.arange(n)[:, None, None], _MODEL_ROWS, order]  # take_along_axis, at less cost
    if kept.all():  # the usual case: the lists as they are, without a Python filter over each
        return order.tolist()
    return [
        [
            [j for j, keep in zip(row, keeps, strict=True) if keep]
            for row, keeps in zip(rows, kept_rows, strict=True)
        ]
        for rows, kept_rows in zip(order.tolist(), kept.tolist(), strict=True)
    ]


def _none_for_nan(values: np.ndarray) -> list[Any]:
    """`values.tolist()` with None where a value is NaN."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.tolist()


def explain(
    rows: np.ndarray,
    fits: np.ndarray,
    gates: np.ndarray,
    factors: np.ndarray,
    score_rows: np.ndarray,
    w: np.ndarray,
    order: np.ndarray,
) -> Explained:
    """The explanation arrays of n profiles from their computed fits, gates, scores and rank order."""
    assessed = ~np.isnan(rows)
    w_used = w * assessed
    total = w_used.sum(axis=1)
    w_norm = w_used / total[:, None]
    contribution = np.where(np.isnan(fits), 0.0, fits * w_norm[:, None, :])
    shown = rounded(np.stack([fits, contribution]), SHOWN_DECIMALS)  # elementwise: one call for both
    return Explained(
        assessed=assessed.tolist(),
        weights=w_norm.tolist(),
        fits=_none_for_nan(fits),
        contributions=contribution.tolist(),
        gates=gates.tolist(),
        factors=factors.tolist(),
        scores=score_rows.tolist(),
        order=order.tolist(),
        fits_shown=shown[0].tolist(),
        contributions_shown=shown[1].tolist(),
        strongest=_strongest(fits, w_norm, contribution),
        confidence=(total / w.sum()).tolist(),
        raw_weights=dict(zip(CRITERIA, w.tolist(), strict=True)),
    )
