"""The learned classifier: labelled reference cases -> features -> one scikit-learn Pipeline.

The cases are few (about 30) and their labels partly inferred, so everything here is about
being honest with little data: candidates are chosen by repeated stratified cross-validation,
the rule engine and a majority-class baseline are scored on the very same folds, and the
chosen model must keep the domain's one hard direction (more government investment will
never makes the public-led models less likely). Serving goes through `FastPredictor`, plain
numpy arithmetic equal to the pipeline's `predict_proba`, because scikit-learn's per-call
overhead on one row is ~6.5 ms against ~10 us for the same arithmetic.

Features (`FEATURE_NAMES`), all on the [0, 1] scale of `scoring.profile`:
  - stage one-hot: stage_leader, stage_chaser, stage_developing (all 0 when the stage is unknown);
  - the six numeric inputs in `NUMERIC_CRITERIA` order; levels map by `LEVEL_VALUE`
    (low 1/6, medium 1/2, high 5/6); an unknown input is filled with `NEUTRAL_FILL` (0.5) ...
  - ... and flagged by its own `<input>_missing` column (1 = unknown), so the model can tell a
    known "medium" from "nobody said", and the fill is never silent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import math
import os
import platform
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import skops
import skops.io as sio
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneOut, RepeatedStratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from scoring.cluster_models import CLUSTER_MODELS, MODEL_IDS
from scoring.criteria import DEFAULT_WEIGHTS, NUMERIC_CRITERIA
from scoring.engine import fit_matrix, gate_factors, gate_matrix, rank_order, scores, weight_vector
from scoring.profile import LEVEL_VALUE, STAGES, CountryProfile, Level

# --- the case file --------------------------------------------------------------------------

CASE_COLUMNS: tuple[str, ...] = (
    "case_id",
    "name",
    "name_ko",
    "host_country_iso3",
    "kind",
    "innovation_stage",
    "rd_level",
    "government_investment_will",
    "healthcare_capacity",
    "research_capacity",
    "manufacturing_base",
    "private_sector_strength",
    "label",
    "label_basis",
    "label_argument",
    "profile_argument",
    "source",
)
# The case file names two inputs as the API does; the engine names them after profile fields.
CASE_COLUMN_OF: dict[str, str] = {
    "public_investment_will": "government_investment_will",
    "rd": "rd_level",
    "healthcare_capacity": "healthcare_capacity",
    "research_capacity": "research_capacity",
    "manufacturing_base": "manufacturing_base",
    "private_sector_strength": "private_sector_strength",
}
LEVEL_COLUMNS: tuple[str, ...] = tuple(CASE_COLUMN_OF[c] for c in NUMERIC_CRITERIA)
LABELS: tuple[str, ...] = MODEL_IDS
LABEL_BASES: tuple[str, ...] = ("stated", "inferred", "outcome")  # outcome: recorded after an assessment
PUBLIC_LED: tuple[str, ...] = tuple(m.id for m in CLUSTER_MODELS if m.led_by == "public")
_ISO3 = re.compile(r"^[A-Z]{3}$")

# --- features ---------------------------------------------------------------------------------

NEUTRAL_FILL = 0.5  # the middle of the scale: an unknown input pulls no way before the model learns
STAGE_FEATURES: tuple[str, ...] = tuple(f"stage_{s.value}" for s in STAGES)
MISSING_FEATURES: tuple[str, ...] = tuple(f"{c}_missing" for c in NUMERIC_CRITERIA)
FEATURE_NAMES: tuple[str, ...] = (*STAGE_FEATURES, *NUMERIC_CRITERIA, *MISSING_FEATURES)
N_FEATURES = len(FEATURE_NAMES)
_VALUE_SLICE = slice(len(STAGES), len(STAGES) + len(NUMERIC_CRITERIA))
_MISSING_SLICE = slice(_VALUE_SLICE.stop, N_FEATURES)
WILL_FEATURE = FEATURE_NAMES.index("public_investment_will")

# --- evaluation -------------------------------------------------------------------------------

DEFAULT_SEED = 20240601
N_REPEATS = 10
MAX_SPLITS = 5
# Every class needs two cases: with one, the fold that holds it out trains without that class.
MIN_CASES_PER_CLASS = 2
# Below this many cases in the smallest class, K-fold would train on half the data; use LOO.
MIN_CASES_FOR_KFOLD = 3
# Mean macro-F1 within this of the best counts as a tie (well inside the noise of ~30 cases).
TIE_TOLERANCE = 0.01
# Log-loss clips the probability of the true class to at least this: one confident miss costs
# at most ln(1e4) ~ 9.2 instead of infinity (pure tree leaves give probability 0).
LOG_LOSS_CLIP = 1e-4
# The rule engine's scores become probabilities by flooring at this and normalising to sum 1.
ENGINE_PROBABILITY_FLOOR = 0.01

ESTIMATORS: tuple[str, ...] = ("logistic_regression", "decision_tree", "gradient_boosting")
MONOTONE_PROJECTION = "monotone_projection"  # a params key: not scikit-learn's, applied after fit


class ArtefactError(Exception):
    """A model artefact that must not be used: wrong hash, wrong versions, unexpected content."""


# ============================================================================================
# Cases and features
# ============================================================================================


def load_cases(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate the labelled reference cases (ValueError naming the row and column)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a readable UTF-8 CSV: {exc}") from exc
    return validate_cases(raw, source=os.fspath(path))


def validate_cases(frame: pd.DataFrame, *, source: str = "cases") -> pd.DataFrame:
    """Check columns and enums; returns the `CASE_COLUMNS` as stripped strings, '' where empty."""
    missing = [c for c in CASE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; expected {list(CASE_COLUMNS)}")
    df = pd.DataFrame(
        {c: [("" if _is_blank(v) else str(v).strip()) for v in frame[c]] for c in CASE_COLUMNS},
        dtype=object,
    )
    if df.empty:
        raise ValueError(f"{source}: no cases")
    enums: dict[str, tuple[str, ...]] = {
        "innovation_stage": tuple(s.value for s in STAGES),
        "label": LABELS,
        "label_basis": LABEL_BASES,
        **{c: tuple(level.value for level in Level) for c in LEVEL_COLUMNS},
    }
    seen: dict[str, int] = {}
    for i, row in enumerate(df.itertuples(index=False), start=1):
        values = row._asdict()
        where = f"{source}: row {i} (case_id {values['case_id']!r})"
        for col in ("case_id", "name", "innovation_stage", "label", "label_basis"):
            if values[col] == "":
                raise ValueError(f"{where}, column {col!r}: empty; a value is required")
        if values["case_id"] in seen:
            raise ValueError(f"{where}, column 'case_id': duplicate of row {seen[values['case_id']]}")
        seen[values["case_id"]] = i
        for col, allowed in enums.items():
            value = values[col]
            if value == "" and col in LEVEL_COLUMNS:
                continue  # unknown input: handled explicitly by the missing indicator
            if value not in allowed:
                raise ValueError(f"{where}, column {col!r}: {value!r} is not one of {list(allowed)}")
        iso3 = values["host_country_iso3"]
        if iso3 and not _ISO3.match(iso3):
            raise ValueError(
                f"{where}, column 'host_country_iso3': {iso3!r} is not three capital letters (or empty)"
            )
    return df


def _is_blank(value: object) -> bool:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return True
    return str(value).strip() == ""


def cases_to_engine_rows(cases: pd.DataFrame) -> np.ndarray:
    """Cases as `scoring.engine.encode` rows: stage index, then the six inputs; NaN = unknown."""
    stage_index = {s.value: float(i) for i, s in enumerate(STAGES)}
    level_value = {level.value: v for level, v in LEVEL_VALUE.items()}
    rows = np.full((len(cases), 1 + len(NUMERIC_CRITERIA)), np.nan)
    rows[:, 0] = [stage_index[s] for s in cases["innovation_stage"]]
    for j, col in enumerate(LEVEL_COLUMNS, start=1):
        rows[:, j] = [level_value.get(v, np.nan) for v in cases[col]]
    return rows


def engine_rows_to_features(rows: np.ndarray) -> np.ndarray:
    """Encoded engine rows (NaN = unknown) as classifier features, shape (n, N_FEATURES)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=float))
    if rows.ndim != 2 or rows.shape[1] != 1 + len(NUMERIC_CRITERIA):
        raise ValueError(f"engine rows must have {1 + len(NUMERIC_CRITERIA)} columns, got shape {rows.shape}")
    stage = rows[:, 0]
    known = ~np.isnan(stage)
    index = stage[known]
    if not np.all((index >= 0) & (index <= len(STAGES) - 1) & (index == np.floor(index))):
        raise ValueError("stage index must be 0 (leader), 1 (chaser), 2 (developing) or NaN")
    values = rows[:, 1:]
    missing = np.isnan(values)
    if np.any((values[~missing] < 0) | (values[~missing] > 1)):
        raise ValueError("inputs must be in [0, 1] or NaN")
    features = np.zeros((rows.shape[0], N_FEATURES))
    features[np.flatnonzero(known), stage[known].astype(int)] = 1.0  # unknown stage: all three 0
    features[:, _VALUE_SLICE] = np.where(missing, NEUTRAL_FILL, values)
    features[:, _MISSING_SLICE] = missing
    return features


def cases_to_features(cases: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature matrix of validated cases and the feature names (see the module docstring)."""
    return engine_rows_to_features(cases_to_engine_rows(cases)), FEATURE_NAMES


_STAGE_COLUMN = {s: i for i, s in enumerate(STAGES)}


def profile_features(profile: CountryProfile) -> np.ndarray:
    """One profile as a feature row, shape (N_FEATURES,): `engine_rows_to_features(encode(profile))[0]`,
    built directly. A CountryProfile is checked when it is made, and the array route's checks and a
    dozen small array operations cost more than the whole prediction (tests hold the two equal)."""
    stage = [0.0] * len(STAGES)
    if profile.innovation_stage is not None:
        stage[_STAGE_COLUMN[profile.innovation_stage]] = 1.0
    values = [profile.value_of(c) for c in NUMERIC_CRITERIA]
    filled = [NEUTRAL_FILL if v is None else v for v in values]
    return np.array([*stage, *filled, *(1.0 if v is None else 0.0 for v in values)], dtype=float)


def features_frame(features: np.ndarray) -> pd.DataFrame:
    """Features as the DataFrame the pipeline was fitted on (column names checked by sklearn)."""
    return pd.DataFrame(np.atleast_2d(features), columns=list(FEATURE_NAMES))


def training_data_hash(cases: pd.DataFrame) -> str:
    """sha256 of the cases as canonical CSV: schema columns, rows sorted, so row order does not matter."""
    canonical = validate_cases(cases, source="training data")
    canonical = canonical.sort_values(list(CASE_COLUMNS), kind="stable").reset_index(drop=True)
    data = canonical.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _canonical_order(cases: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered by what the model sees (then basis, then id), so folds ignore file order and names."""
    key = ["label", "innovation_stage", *LEVEL_COLUMNS, "label_basis", "case_id"]
    return cases.sort_values(key, kind="stable").reset_index(drop=True)


def check_class_counts(labels: Sequence[str]) -> dict[str, int]:
    """Cases per label; ValueError unless every one of the four labels has MIN_CASES_PER_CLASS."""
    counts = {label: 0 for label in LABELS}
    for label in labels:
        counts[label] += 1
    short = {label: n for label, n in counts.items() if n < MIN_CASES_PER_CLASS}
    if short:
        raise ValueError(
            f"too few cases to train and cross-validate: every label needs at least "
            f"{MIN_CASES_PER_CLASS} cases; have {counts} (short: {sorted(short)})"
        )
    return counts


# ============================================================================================
# Estimators and the pipeline
# ============================================================================================


@dataclass(frozen=True)
class EstimatorSpec:
    """What to fit: an estimator name and its parameters (enough to refit it on other data)."""

    estimator: str
    params: Mapping[str, Any]

    @property
    def monotone_projection(self) -> bool:
        return bool(self.params.get(MONOTONE_PROJECTION, False))

    @property
    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()) if k != "random_state")
        return f"{self.estimator}({shown})"

    def as_dict(self) -> dict[str, Any]:
        return {"estimator": self.estimator, "params": dict(self.params)}


def candidate_specs(seed: int = DEFAULT_SEED, *, include_boosting: bool = False) -> tuple[EstimatorSpec, ...]:
    """The candidates, simplest first (the order breaks ties).

    Gradient boosting is opt-in: on the shipped cases it costs ~3.5 s of cross-validation (most
    of the training budget), scores no better than the logistic regressions and breaks the
    will direction, which scikit-learn cannot constrain for more than two classes.
    """
    tree = {"min_samples_leaf": 2, "random_state": seed}
    specs = (
        EstimatorSpec("decision_tree", {"max_depth": 2, **tree}),
        # Stronger regularisation is the simpler model.
        *(EstimatorSpec("logistic_regression", {"C": c, "max_iter": 5000}) for c in (0.1, 0.3, 1.0, 3.0)),
        EstimatorSpec("decision_tree", {"max_depth": 3, **tree}),
    )
    if include_boosting:
        boosting = {"n_estimators": 50, "max_depth": 2, "learning_rate": 0.1, "random_state": seed}
        specs = (*specs, EstimatorSpec("gradient_boosting", boosting))
    return specs


def build_pipeline(spec: EstimatorSpec) -> Pipeline:
    """The one place the classifier pipeline is built: standardise, then the estimator."""
    params = {k: v for k, v in spec.params.items() if k != MONOTONE_PROJECTION}
    if spec.estimator == "logistic_regression":
        model: Any = LogisticRegression(**params)
    elif spec.estimator == "decision_tree":
        model = DecisionTreeClassifier(**params)
    elif spec.estimator == "gradient_boosting":
        model = GradientBoostingClassifier(**params)
    else:
        raise ValueError(f"unknown estimator {spec.estimator!r}; expected one of {list(ESTIMATORS)}")
    if spec.monotone_projection and spec.estimator != "logistic_regression":
        raise ValueError("monotone_projection applies to logistic_regression only")
    # Trees ignore the scaling; it stays so that every version has the same two steps.
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def fit_pipeline(
    spec: EstimatorSpec, features: np.ndarray, labels: np.ndarray, *, named: bool = True
) -> Pipeline:
    """Build and fit the pipeline for `spec` (with the monotone projection if the spec asks).

    `named=False` fits on the bare array: the same numbers, half the time, but no feature names
    recorded; cross-validation uses it because it predicts through `FastPredictor` anyway.
    """
    pipeline = build_pipeline(spec)
    pipeline.fit(features_frame(features) if named else np.asarray(features, dtype=float), labels)
    if spec.monotone_projection:
        _project_public_led(pipeline)
    return pipeline


def _project_public_led(pipeline: Pipeline) -> None:
    """Edit the LR's will coefficients so that every public-led class's is >= every private-led one's.

    With that ordering P(public-led) cannot fall as will rises (see `public_led_monotonicity`).
    The edit moves coefficients only as far as the midpoint between the two groups.
    """
    model = pipeline.named_steps["model"]
    classes = list(model.classes_)
    public = [classes.index(c) for c in PUBLIC_LED]
    private = [i for i in range(len(classes)) if i not in public]
    w = model.coef_[:, WILL_FEATURE]
    low, high = w[public].min(), w[private].max()
    if low >= high:
        return
    mid = (low + high) / 2
    w[public] = np.maximum(w[public], mid)
    w[private] = np.minimum(w[private], mid)
    model.coef_[:, WILL_FEATURE] = w


# ============================================================================================
# Fast inference
# ============================================================================================


class FastPredictor:
    """The fitted pipeline's predict_proba in plain numpy (LR, trees); other estimators use the pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        scaler = pipeline.named_steps["scale"]
        model = pipeline.named_steps["model"]
        self.pipeline = pipeline
        self.classes: tuple[str, ...] = tuple(str(c) for c in model.classes_)
        self.feature_names: tuple[str, ...] = FEATURE_NAMES
        self._mean = np.array(scaler.mean_, dtype=float)
        self._scale = np.array(scaler.scale_, dtype=float)
        self._model_index = [self.classes.index(m) for m in MODEL_IDS]
        if isinstance(model, LogisticRegression):
            self.kind = "linear"
            self._coef_t = np.ascontiguousarray(model.coef_.T)
            self._intercept = np.array(model.intercept_, dtype=float)
        elif isinstance(model, DecisionTreeClassifier):
            self.kind = "tree"
            tree = model.tree_
            self._left = tree.children_left.copy()
            self._right = tree.children_right.copy()
            self._feature = tree.feature.copy()
            self._threshold = tree.threshold.copy()
            self._value = tree.value[:, 0, : len(self.classes)].copy()
            self._max_depth = int(tree.max_depth)
        else:
            self.kind = "pipeline"

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=float)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"expected {N_FEATURES} features per row, got shape {np.shape(features)}")
        return (x - self._mean) / self._scale

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, classes), columns in `self.classes` order; one row or many."""
        return self._proba(features, self._standardise(features))

    def _proba(self, features: np.ndarray, z: np.ndarray) -> np.ndarray:
        # `z` is `features` standardised.
        if self.kind == "linear":
            logits = z @ self._coef_t + self._intercept
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=1, keepdims=True)
            return logits
        if self.kind == "tree":
            proba = self._value[self._leaves(z)]
            total = proba.sum(axis=1, keepdims=True)
            total[total == 0] = 1.0
            return proba / total
        x = np.atleast_2d(np.asarray(features, dtype=float))
        named = hasattr(self.pipeline, "feature_names_in_")
        return np.asarray(self.pipeline.predict_proba(features_frame(x) if named else x))

    def _leaves(self, z: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 features with float64 thresholds; so must we.
        z32 = z.astype(np.float32).astype(np.float64)
        node = np.zeros(z.shape[0], dtype=np.intp)
        rows = np.arange(z.shape[0])
        for _ in range(self._max_depth):
            inner = self._left[node] != -1
            if not inner.any():
                break
            go_left = z32[rows, np.maximum(self._feature[node], 0)] <= self._threshold[node]
            child = np.where(go_left, self._left[node], self._right[node])
            node = np.where(inner, child, node)
        return node

    def contributions(self, features: np.ndarray) -> tuple[str, list[tuple[str, float]]]:
        """The predicted class of one row and per-feature contributions to it, largest magnitude first.

        LR: coefficient of the predicted class times the standardised feature, i.e. the feature's
        share of that class's logit relative to an average training case. Tree: along the decision
        path, the change in the predicted class's probability at each split, summed per feature.
        Gradient boosting: no decomposition (empty list).
        """
        x = np.asarray(features, dtype=float).reshape(1, -1)
        z = self._standardise(x)
        return self._contributions(z, self._proba(x, z)[0].tolist())

    def _contributions(self, z: np.ndarray, proba: list[float]) -> tuple[str, list[tuple[str, float]]]:
        # `z`: one row standardised, shape (1, N_FEATURES); `proba` its probabilities.
        # Ties go to the engine's model order, as everywhere in this module.
        best = max(self._model_index, key=proba.__getitem__)
        predicted = self.classes[best]
        if self.kind == "linear":
            values = self._coef_t[:, best] * z[0]
            pairs = list(zip(FEATURE_NAMES, values.tolist(), strict=True))
        elif self.kind == "tree":
            leaf = int(self._leaves(z)[0])
            by_feature: dict[str, float] = {}
            node = 0
            while node != leaf and self._left[node] != -1:
                f = int(self._feature[node])
                value = float(np.float32(z[0, f]))  # float32, as scikit-learn compares
                child = self._left[node] if value <= self._threshold[node] else self._right[node]
                gain = self._node_proba(child)[best] - self._node_proba(node)[best]
                by_feature[FEATURE_NAMES[f]] = by_feature.get(FEATURE_NAMES[f], 0.0) + float(gain)
                node = child
            pairs = list(by_feature.items())
        else:
            pairs = []
        pairs.sort(key=lambda p: (-abs(p[1]), p[0]))
        return predicted, pairs

    def _node_proba(self, node: int) -> np.ndarray:
        v = self._value[node]
        return v / v.sum() if v.sum() > 0 else v

    def probabilities(self, profile: CountryProfile) -> dict[str, float]:
        """Probability per cluster model for one profile, in the engine's model order."""
        proba = self.predict_proba(profile_features(profile))[0]
        return {m: float(proba[i]) for m, i in zip(MODEL_IDS, self._model_index, strict=True)}

    def explain(self, profile: CountryProfile) -> tuple[dict[str, float], list[tuple[str, float]]]:
        """Probabilities per model and the per-feature contributions to the most probable one."""
        x = profile_features(profile)[None, :]
        z = self._standardise(x)
        proba = self._proba(x, z)[0].tolist()
        _, pairs = self._contributions(z, proba)
        return {m: proba[i] for m, i in zip(MODEL_IDS, self._model_index, strict=True)}, pairs


# ============================================================================================
# Monotonicity in government investment will
# ============================================================================================


def public_led_monotonicity(pipeline: Pipeline, *, seed: int = 0, n_profiles: int = 400) -> dict[str, Any]:
    """Whether raising will (all else fixed) can lower P(production) + P(composite).

    LR: exact. P(S) as a function of one logit-linear input has derivative
    P(S) P(not S) (mean_S w - mean_notS w) with probability-weighted means, so it is non-negative
    for every profile when min over public-led classes of the will coefficient >= the max over
    the others; that sufficient condition is what is checked. Trees and boosting: probed on
    `n_profiles` random profiles at every split threshold on will and a grid of 101 values.
    """
    model = pipeline.named_steps["model"]
    classes = list(model.classes_)
    public = [classes.index(c) for c in PUBLIC_LED]
    if isinstance(model, LogisticRegression):
        w = model.coef_[:, WILL_FEATURE]
        private = [i for i in range(len(classes)) if i not in public]
        margin = float(w[public].min() - w[private].max())
        return {
            "holds": margin >= 0,
            "method": "exact: min public-led will coefficient >= max private-led one",
            "margin": margin,
        }
    drop = max_public_led_drop(FastPredictor(pipeline), seed=seed, n_profiles=n_profiles)
    return {
        "holds": drop <= 1e-12,
        "method": f"probed: {n_profiles} random profiles x will grid incl. every split threshold",
        "max_drop": drop,
    }


def random_engine_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random encoded profiles: any stage or unknown; inputs a level, any number or unknown."""
    rows = np.empty((n, 1 + len(NUMERIC_CRITERIA)))
    rows[:, 0] = rng.choice([0.0, 1.0, 2.0, np.nan], size=n)
    levels = np.array(list(LEVEL_VALUE.values()))
    kind = rng.integers(0, 3, size=(n, len(NUMERIC_CRITERIA)))
    rows[:, 1:] = np.where(
        kind == 0,
        rng.choice(levels, size=(n, len(NUMERIC_CRITERIA))),
        np.where(kind == 1, rng.uniform(0, 1, size=(n, len(NUMERIC_CRITERIA))), np.nan),
    )
    # Unknown inputs one time in three is more than the API sees; it keeps the indicators exercised.
    return rows


def max_public_led_drop(predictor: FastPredictor, *, seed: int = 0, n_profiles: int = 400) -> float:
    """Largest fall of P(public-led) seen when will rises, over random profiles and a will grid."""
    rng = np.random.default_rng(seed)
    grid = set(np.linspace(0.0, 1.0, 101).tolist()) | set(LEVEL_VALUE.values())
    for threshold in _will_thresholds(predictor.pipeline):
        raw = threshold * predictor._scale[WILL_FEATURE] + predictor._mean[WILL_FEATURE]
        grid |= {float(np.clip(raw + d, 0.0, 1.0)) for d in (-1e-7, 1e-7)}
    will = np.array(sorted(grid))
    rows = random_engine_rows(rng, n_profiles)
    public = [predictor.classes.index(c) for c in PUBLIC_LED]
    batch = np.repeat(rows, len(will), axis=0)
    batch[:, 1 + NUMERIC_CRITERIA.index("public_investment_will")] = np.tile(will, n_profiles)
    p = predictor.predict_proba(engine_rows_to_features(batch))[:, public].sum(axis=1)
    p = p.reshape(n_profiles, len(will))
    return float(max(0.0, -np.diff(p, axis=1).min()))


def _will_thresholds(pipeline: Pipeline) -> list[float]:
    model = pipeline.named_steps["model"]
    if isinstance(model, DecisionTreeClassifier):
        trees = [model.tree_]
    elif isinstance(model, GradientBoostingClassifier):
        trees = [t.tree_ for t in model.estimators_.ravel()]
    else:
        return []
    return [float(t.threshold[i]) for t in trees for i in np.flatnonzero(t.feature == WILL_FEATURE)]


# ============================================================================================
# Cross-validation: the classifier, the rule engine and the majority class on the same folds
# ============================================================================================


@dataclass(frozen=True)
class FoldPlan:
    """The folds every scorer is evaluated on; fold f belongs to repeat f // n_splits."""

    scheme: str  # "repeated_stratified_kfold" or "leave_one_out"
    n_splits: int
    n_repeats: int
    seed: int
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]

    def describe(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "n_splits": self.n_splits,
            "n_repeats": self.n_repeats,
            "seed": self.seed,
        }


def make_folds(labels: np.ndarray, *, seed: int = DEFAULT_SEED, n_repeats: int = N_REPEATS) -> FoldPlan:
    """Repeated stratified K-fold (K = min(5, smallest class)); leave-one-out when a class has 2 cases."""
    counts = check_class_counts(list(labels))
    smallest = min(counts.values())
    dummy = np.zeros((len(labels), 1))
    if smallest >= MIN_CASES_FOR_KFOLD:
        n_splits = min(MAX_SPLITS, smallest)
        splitter = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
        folds = tuple(splitter.split(dummy, labels))
        return FoldPlan("repeated_stratified_kfold", n_splits, n_repeats, seed, folds)
    folds = tuple(LeaveOneOut().split(dummy))
    return FoldPlan("leave_one_out", len(labels), 1, seed, folds)


def _aligned(proba: np.ndarray, fitted_classes: Sequence[str]) -> np.ndarray:
    """Probabilities with columns in LABELS order (a class absent from the training fold gets 0)."""
    out = np.zeros((proba.shape[0], len(LABELS)))
    for j, c in enumerate(fitted_classes):
        out[:, LABELS.index(str(c))] = proba[:, j]
    return out


def engine_probabilities(rows: np.ndarray) -> np.ndarray:
    """Rule-engine scores (DEFAULT_WEIGHTS) as probabilities in LABELS order: floored, then normalised."""
    fits = fit_matrix(rows)
    raw = scores(fits, gate_factors(gate_matrix(rows)), weight_vector(DEFAULT_WEIGHTS))
    order = [MODEL_IDS.index(label) for label in LABELS]
    floored = np.maximum(raw[:, order], ENGINE_PROBABILITY_FLOOR)
    return floored / floored.sum(axis=1, keepdims=True)


def _engine_predictions(rows: np.ndarray) -> np.ndarray:
    raw = scores(fit_matrix(rows), gate_factors(gate_matrix(rows)), weight_vector(DEFAULT_WEIGHTS))
    return np.array([MODEL_IDS[i] for i in rank_order(raw)[:, 0]])  # the engine's own first place


def _predict_labels(proba: np.ndarray) -> np.ndarray:
    """Argmax in LABELS (= engine model) order; ties (within the engine's TIE) go to the earlier model."""
    return np.array(LABELS)[rank_order(proba)[:, 0]]


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    index = np.array([LABELS.index(label) for label in y])
    p_true = np.clip(proba[np.arange(len(y)), index], LOG_LOSS_CLIP, 1.0)
    return float(-np.mean(np.log(p_true)))


def macro_f1(y: Sequence[str] | np.ndarray, predicted: Sequence[str] | np.ndarray) -> float:
    """Macro-F1 over the labels present in either argument; a label with no true and no predicted
    case cannot occur, one with F1 undefined counts 0. Equals sklearn's f1_score(average="macro",
    zero_division=0) with those labels, at a fraction of its validation cost (it runs ~600 times
    per training)."""
    y, predicted = np.asarray(y), np.asarray(predicted)
    f1 = []
    for label in sorted(set(y.tolist()) | set(predicted.tolist())):
        is_true, is_pred = y == label, predicted == label
        tp = float(np.sum(is_true & is_pred))
        denominator = float(np.sum(is_true) + np.sum(is_pred))
        f1.append(2 * tp / denominator if denominator else 0.0)
    return float(np.mean(f1))


def _summary(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


@dataclass
class _OutOfFold:
    """Out-of-fold probabilities per repeat (n_repeats, n, labels) and explicit predictions."""

    proba: np.ndarray
    predicted: np.ndarray  # (n_repeats, n)


def _out_of_fold(
    plan: FoldPlan, n: int, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> _OutOfFold:
    proba = np.full((plan.n_repeats, n, len(LABELS)), np.nan)
    for f, (train, test) in enumerate(plan.folds):
        proba[f // plan.n_splits, test] = fit_predict(train, test)
    return _OutOfFold(proba, np.stack([_predict_labels(p) for p in proba]))


def _metric_block(
    oof: _OutOfFold, y: np.ndarray, plan: FoldPlan, subset: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, macro-F1, log-loss over pooled out-of-fold predictions, mean/std across repeats."""
    mask = np.ones(len(y), dtype=bool) if subset is None else subset
    acc, f1, ll, cms = [], [], [], []
    for r in range(plan.n_repeats):
        yt, yp, p = y[mask], oof.predicted[r, mask], oof.proba[r, mask]
        acc.append(float(np.mean(yt == yp)))
        f1.append(macro_f1(yt, yp))
        ll.append(_log_loss(yt, p))
        cm = np.zeros((len(LABELS), len(LABELS)))
        for t, q in zip(yt, yp, strict=True):
            cm[LABELS.index(t), LABELS.index(q)] += 1
        cms.append(cm)
    block: dict[str, Any] = {
        "n_cases": int(mask.sum()),
        "accuracy": _summary(acc),
        "macro_f1": _summary(f1),
        "log_loss": _summary(ll),
        "confusion_matrix": {
            "labels": list(LABELS),
            "rows": "true label",
            "columns": "predicted label",
            "mean_counts": np.mean(cms, axis=0).round(6).tolist(),
        },
    }
    if subset is None:
        # Fold-level spread too: each fold holds only ~n/K cases, so it is wide by nature.
        fold_acc, fold_ll, fold_f1 = [], [], []
        for f, (_, test) in enumerate(plan.folds):
            r = f // plan.n_splits
            fold_acc.append(float(np.mean(y[test] == oof.predicted[r, test])))
            fold_ll.append(_log_loss(y[test], oof.proba[r, test]))
            fold_f1.append(macro_f1(y[test], oof.predicted[r, test]))
        block["per_fold"] = {
            "n_folds": len(plan.folds),
            "accuracy": _summary(fold_acc),
            "macro_f1": _summary(fold_f1),
            "log_loss": _summary(fold_ll),
        }
    return block


@dataclass
class _Prepared:
    cases: pd.DataFrame
    features: np.ndarray
    labels: np.ndarray
    stated: np.ndarray
    engine_rows: np.ndarray
    plan: FoldPlan


def _prepare(cases: pd.DataFrame, seed: int, n_repeats: int) -> _Prepared:
    cases = _canonical_order(validate_cases(cases, source="cases"))
    labels = cases["label"].to_numpy(dtype=str)
    check_class_counts(list(labels))
    rows = cases_to_engine_rows(cases)
    return _Prepared(
        cases=cases,
        features=engine_rows_to_features(rows),
        labels=labels,
        stated=(cases["label_basis"] == "stated").to_numpy(),
        engine_rows=rows,
        plan=make_folds(labels, seed=seed, n_repeats=n_repeats),
    )


def _classifier_oof(spec: EstimatorSpec, data: _Prepared) -> _OutOfFold:
    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        pipeline = fit_pipeline(spec, data.features[train], data.labels[train], named=False)
        proba = FastPredictor(pipeline).predict_proba(data.features[test])
        return _aligned(proba, pipeline.classes_)

    return _out_of_fold(data.plan, len(data.labels), fit_predict)


def _majority_oof(data: _Prepared) -> _OutOfFold:
    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        dummy = DummyClassifier(strategy="prior").fit(data.features[train], data.labels[train])
        return _aligned(dummy.predict_proba(data.features[test]), dummy.classes_)

    return _out_of_fold(data.plan, len(data.labels), fit_predict)


def _engine_oof(data: _Prepared) -> _OutOfFold:
    # The engine learns nothing: every fold gets the same scores, so repeats agree (std 0).
    proba = engine_probabilities(data.engine_rows)
    oof = _out_of_fold(data.plan, len(data.labels), lambda _train, test: proba[test])
    predicted = _engine_predictions(data.engine_rows)
    return _OutOfFold(oof.proba, np.tile(predicted, (data.plan.n_repeats, 1)))


# ============================================================================================
# Training
# ============================================================================================


@dataclass(frozen=True)
class TrainedModel:
    """One immutable classifier version: the fitted pipeline and everything needed to trust it."""

    pipeline: Pipeline
    estimator: str
    params: dict[str, Any]
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    metrics: dict[str, Any]  # JSON-serialisable
    training_data_hash: str
    library_versions: dict[str, str]
    training_seconds: float | None = field(default=None, compare=False)

    @property
    def spec(self) -> EstimatorSpec:
        return EstimatorSpec(self.estimator, self.params)

    def predictor(self) -> FastPredictor:
        """A numpy predictor equal to `pipeline.predict_proba`."""
        return FastPredictor(self.pipeline)

    def metadata(self) -> dict[str, Any]:
        """Everything but the pipeline, JSON-serialisable."""
        return {
            "estimator": self.estimator,
            "params": self.params,
            "feature_names": list(self.feature_names),
            "classes": list(self.classes),
            "metrics": self.metrics,
            "training_data_hash": self.training_data_hash,
            "library_versions": self.library_versions,
            "training_seconds": self.training_seconds,
        }


def library_versions() -> dict[str, str]:
    """Versions of the libraries a fitted pipeline depends on."""
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "skops": skops.__version__,
        "python": platform.python_version(),
    }


def _probability_note(spec: EstimatorSpec) -> str:
    base = {
        "logistic_regression": "the regularised logistic regression's own predict_proba",
        "decision_tree": "the tree's leaf class frequencies (coarse; pure leaves give 0 and 1)",
        "gradient_boosting": "gradient boosting's own predict_proba",
    }[spec.estimator]
    return (
        f"uncalibrated: {base}. No CalibratedClassifierCV: with the smallest class this small, "
        "calibration folds would hold one or two cases of it."
    )


def train_classifier(
    cases: pd.DataFrame,
    *,
    seed: int = DEFAULT_SEED,
    n_repeats: int = N_REPEATS,
    specs: Sequence[EstimatorSpec] | None = None,
) -> TrainedModel:
    """Choose among `specs` (default `candidate_specs(seed)`) by CV macro-F1, then fit on all cases."""
    started = time.perf_counter()
    # ~300 fits on a 30 x 15 matrix: BLAS threads only add hand-offs, and on a busy 2-core host
    # OpenBLAS's spinning threads made training 5-10x slower (measured 3.5 s vs 15-45 s).
    with threadpool_limits(limits=1):
        model = _train(cases, seed=seed, n_repeats=n_repeats, specs=specs)
    return dataclasses.replace(model, training_seconds=time.perf_counter() - started)


def _train(
    cases: pd.DataFrame, *, seed: int, n_repeats: int, specs: Sequence[EstimatorSpec] | None
) -> TrainedModel:
    data = _prepare(cases, seed, n_repeats)
    y, stated = data.labels, data.stated

    specs = candidate_specs(seed) if specs is None else tuple(specs)
    if not specs:
        raise ValueError("no candidate estimators given")
    candidates = []
    for spec in specs:
        oof = _classifier_oof(spec, data)
        full = fit_pipeline(spec, data.features, y)
        candidates.append((spec, oof, full, public_led_monotonicity(full, seed=seed)))
    projected = False
    if not any(mono["holds"] for *_, mono in candidates):
        # No candidate keeps the direction: constrain the logistic regressions and choose among those.
        projected = True
        lr_specs = [s for s, *_ in candidates if s.estimator == "logistic_regression"] or [
            s for s in candidate_specs(seed) if s.estimator == "logistic_regression"
        ]
        candidates = []
        for s in lr_specs:
            spec = EstimatorSpec(s.estimator, {**s.params, MONOTONE_PROJECTION: True})
            oof = _classifier_oof(spec, data)
            full = fit_pipeline(spec, data.features, y)
            candidates.append((spec, oof, full, public_led_monotonicity(full, seed=seed)))

    summaries = []
    for spec, oof, _, mono in candidates:
        block = _metric_block(oof, y, data.plan)
        summaries.append(
            {
                **spec.as_dict(),
                "macro_f1": block["macro_f1"],
                "accuracy": block["accuracy"],
                "log_loss": block["log_loss"],
                "public_led_monotone": mono,
                "admissible": bool(mono["holds"]),
            }
        )
    admissible = [i for i, s in enumerate(summaries) if s["admissible"]]
    best = max(summaries[i]["macro_f1"]["mean"] for i in admissible)
    chosen_index = next(i for i in admissible if summaries[i]["macro_f1"]["mean"] >= best - TIE_TOLERANCE)
    spec, oof, pipeline, mono = candidates[chosen_index]

    engine, majority = _engine_oof(data), _majority_oof(data)
    metrics: dict[str, Any] = {
        "evaluation": {
            **data.plan.describe(),
            "n_folds": len(data.plan.folds),
            "spread": "mean and std (ddof=1) across repeats of metrics on pooled out-of-fold "
            "predictions (each repeat predicts every case once); per_fold gives the fold-level spread",
            "same_folds": "classifier, rule engine and majority baseline are scored on identical folds",
            "selection": f"highest mean macro-F1 among candidates that keep the will direction; "
            f"within {TIE_TOLERANCE} of the best goes to the simpler (earlier) candidate",
            "log_loss_clip": LOG_LOSS_CLIP,
            "tie_break": "argmax ties go to the earlier model in " + ", ".join(LABELS),
        },
        "data": _data_summary(data.cases),
        "chosen": {**spec.as_dict(), "label": spec.label},
        "classifier": _metric_block(oof, y, data.plan),
        "rule_engine": _metric_block(engine, y, data.plan),
        "majority": _metric_block(majority, y, data.plan),
        "stated": {
            "note": "the same out-of-fold predictions, restricted to cases whose label is stated "
            "by a source (not inferred)",
            "classifier": _metric_block(oof, y, data.plan, stated),
            "rule_engine": _metric_block(engine, y, data.plan, stated),
            "majority": _metric_block(majority, y, data.plan, stated),
        },
        "baselines": {
            "rule_engine": "argmax of scoring.engine scores with DEFAULT_WEIGHTS; probabilities for "
            f"log-loss are the scores floored at {ENGINE_PROBABILITY_FLOOR} and normalised to sum 1",
            "majority": "DummyClassifier(strategy='prior') fitted on each training fold",
        },
        "candidates": summaries,
        "calibration": _probability_note(spec),
        "monotonicity": {
            "property": "raising public_investment_will, all else fixed, never lowers "
            "P(" + ") + P(".join(PUBLIC_LED) + ")",
            **mono,
            "projection_applied": projected,
            "how_enforced": "only candidates keeping the property are eligible"
            + (
                "; none did, so the logistic regressions' will coefficients were projected "
                "(public-led >= private-led) in every fold and in the final fit"
                if projected
                else ""
            ),
        },
        "features": {
            "names": list(FEATURE_NAMES),
            "missing_values": f"an unknown input is filled with {NEUTRAL_FILL} and flagged in its "
            "own <input>_missing column; an unknown stage is all three stage columns 0",
        },
    }
    return TrainedModel(
        pipeline=pipeline,
        estimator=spec.estimator,
        params=dict(spec.params),
        feature_names=FEATURE_NAMES,
        classes=tuple(str(c) for c in pipeline.classes_),
        metrics=_jsonable(metrics),
        training_data_hash=training_data_hash(data.cases),
        library_versions=library_versions(),
    )


def _data_summary(cases: pd.DataFrame) -> dict[str, Any]:
    by = cases.groupby(["label", "label_basis"]).size()
    return {
        "n_cases": len(cases),
        "per_label": {label: int((cases["label"] == label).sum()) for label in LABELS},
        "per_label_basis": {b: int((cases["label_basis"] == b).sum()) for b in LABEL_BASES},
        "per_label_and_basis": {
            label: {b: int(by.get((label, b), 0)) for b in LABEL_BASES} for label in LABELS
        },
        "missing_inputs": {col: int((cases[col] == "").sum()) for col in LEVEL_COLUMNS},
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (numpy scalars out); fails loudly on anything else."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


# ============================================================================================
# Comparing a new version with the active one
# ============================================================================================


@dataclass(frozen=True)
class FoldComparison:
    """Active and candidate specs refitted and scored on identical folds of the same cases."""

    active: EstimatorSpec
    candidate: EstimatorSpec
    plan: dict[str, Any]
    active_macro_f1: dict[str, float]
    candidate_macro_f1: dict[str, float]
    rule_engine_macro_f1: dict[str, float]
    per_repeat_difference: tuple[float, ...]  # candidate - active, one per repeat

    def beats_active(self, margin: float = 0.0) -> bool:
        """True when the candidate's mean macro-F1 exceeds the active one's by more than `margin`."""
        return self.candidate_macro_f1["mean"] - self.active_macro_f1["mean"] > margin

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "active": self.active.as_dict(),
                "candidate": self.candidate.as_dict(),
                "folds": self.plan,
                "active_macro_f1": self.active_macro_f1,
                "candidate_macro_f1": self.candidate_macro_f1,
                "rule_engine_macro_f1": self.rule_engine_macro_f1,
                "per_repeat_difference": list(self.per_repeat_difference),
                "candidate_wins_repeats": sum(d > 0 for d in self.per_repeat_difference),
                "beats_active": self.beats_active(),
            }
        )


def compare_on_same_folds(
    cases: pd.DataFrame,
    *,
    active: EstimatorSpec,
    candidate: EstimatorSpec,
    seed: int = DEFAULT_SEED,
    n_repeats: int = N_REPEATS,
) -> FoldComparison:
    """Refit both specs on the same folds of `cases` and report both macro-F1 means."""
    with threadpool_limits(limits=1):  # see train_classifier
        return _compare(cases, active, candidate, seed, n_repeats)


def _compare(
    cases: pd.DataFrame, active: EstimatorSpec, candidate: EstimatorSpec, seed: int, n_repeats: int
) -> FoldComparison:
    data = _prepare(cases, seed, n_repeats)

    def per_repeat(oof: _OutOfFold) -> list[float]:
        return [macro_f1(data.labels, oof.predicted[r]) for r in range(data.plan.n_repeats)]

    a = per_repeat(_classifier_oof(active, data))
    c = per_repeat(_classifier_oof(candidate, data))
    e = per_repeat(_engine_oof(data))
    return FoldComparison(
        active=active,
        candidate=candidate,
        plan=data.plan.describe(),
        active_macro_f1=_summary(a),
        candidate_macro_f1=_summary(c),
        rule_engine_macro_f1=_summary(e),
        per_repeat_difference=tuple(ci - ai for ai, ci in zip(a, c, strict=True)),
    )


# ============================================================================================
# Artefacts
# ============================================================================================

ARTEFACT_FORMAT = "clustermatch-classifier/1"
METADATA_MEMBER = "clustermatch-metadata.json"  # inside the skops zip; skops reads only its own members
# The one type our pipelines hold that skops does not trust by default (every tree carries one);
# the estimators, the scaler and numpy arrays are in skops' default trusted set.
TRUSTED_TYPES: tuple[str, ...] = ("sklearn.tree._tree.Tree",)
_ALLOWED_MODELS = (LogisticRegression, DecisionTreeClassifier, GradientBoostingClassifier)


def save_artefact(model: TrainedModel, directory: str | os.PathLike[str]) -> tuple[Path, str]:
    """Write the pipeline (skops) and its metadata in one file named by its hash; returns (path, sha256)."""
    buffer = io.BytesIO()
    sio.dump(model.pipeline, buffer)
    metadata = {"format": ARTEFACT_FORMAT, **model.metadata()}
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(_jsonable(metadata), sort_keys=True, indent=2))
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"classifier-{digest[:16]}.skops"
    # Write then rename, so a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".classifier-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest


def load_artefact(
    path: str | os.PathLike[str], expected_sha256: str, expected_sklearn_version: str
) -> TrainedModel:
    """Verify sha256, then versions and features, then load with skops and explicit trusted types."""
    try:
        data = Path(path).read_bytes()  # read once: what is hashed is what is loaded
    except OSError as exc:
        raise ArtefactError(f"{path}: cannot read artefact: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(digest.encode(), str(expected_sha256).strip().lower().encode()):
        raise ArtefactError(f"{path}: sha256 is {digest}, expected {expected_sha256}; refusing to load")

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            metadata = json.loads(archive.read(METADATA_MEMBER))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtefactError(f"{path}: no readable {METADATA_MEMBER}: {exc}") from exc
    if not isinstance(metadata, dict) or not isinstance(metadata.get("library_versions"), dict):
        raise ArtefactError(f"{path}: {METADATA_MEMBER} is not the expected object")
    if metadata.get("format") != ARTEFACT_FORMAT:
        raise ArtefactError(f"{path}: format {metadata.get('format')!r}, expected {ARTEFACT_FORMAT!r}")
    recorded = metadata["library_versions"].get("sklearn")
    if recorded != expected_sklearn_version:
        raise ArtefactError(
            f"{path}: trained with scikit-learn {recorded}, expected {expected_sklearn_version}"
        )
    if recorded != sklearn.__version__:
        raise ArtefactError(
            f"{path}: trained with scikit-learn {recorded} but {sklearn.__version__} is installed; "
            "retrain instead of loading across versions"
        )
    if tuple(metadata.get("feature_names", ())) != FEATURE_NAMES:
        raise ArtefactError(
            f"{path}: features {metadata.get('feature_names')} differ from {list(FEATURE_NAMES)}"
        )

    try:
        untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
        if untrusted:
            raise ArtefactError(f"{path}: holds types outside the trusted list: {sorted(untrusted)}")
        pipeline = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except ArtefactError:
        raise
    except Exception as exc:  # skops raises several kinds; all mean the same thing here
        raise ArtefactError(f"{path}: skops could not load the pipeline: {exc}") from exc

    steps = getattr(pipeline, "named_steps", {})
    if (
        not isinstance(pipeline, Pipeline)
        or list(steps) != ["scale", "model"]
        or not isinstance(steps["scale"], StandardScaler)
        or not isinstance(steps["model"], _ALLOWED_MODELS)
    ):
        raise ArtefactError(f"{path}: not a scale + estimator pipeline")
    classes = tuple(str(c) for c in steps["model"].classes_)
    if classes != tuple(metadata.get("classes", ())) or sorted(classes) != sorted(LABELS):
        raise ArtefactError(f"{path}: classes {classes} do not match the metadata or {list(LABELS)}")
    return TrainedModel(
        pipeline=pipeline,
        estimator=metadata["estimator"],
        params=metadata["params"],
        feature_names=FEATURE_NAMES,
        classes=classes,
        metrics=metadata["metrics"],
        training_data_hash=metadata["training_data_hash"],
        library_versions=metadata["library_versions"],
        training_seconds=metadata.get("training_seconds"),
    )


# ============================================================================================
# Model card
# ============================================================================================


def model_card_markdown(model: TrainedModel) -> str:
    """A model card for consultants: data, metrics with spread, baselines, known limits."""
    m = model.metrics
    ev, data = m["evaluation"], m["data"]
    n_outcomes = data["per_label_basis"].get("outcome", 0)
    bases = [b for b in LABEL_BASES if b != "outcome" or n_outcomes]
    lines = [
        f"# ClusterMatch classifier: {m['chosen']['label']}",
        "",
        f"Training data sha256 `{model.training_data_hash}`; "
        + ", ".join(f"{k} {v}" for k, v in model.library_versions.items())
        + ".",
        "",
        "## Data",
        "",
        f"{data['n_cases']} labelled reference cases "
        f"({data['per_label_basis']['stated']} with a label stated by a source, "
        f"{data['per_label_basis']['inferred']} inferred"
        + (f", {n_outcomes} recorded outcomes" if n_outcomes else "")
        + ").",
        "",
        "| label | cases | " + " | ".join(bases) + " |",
        "| --- | ---: |" + " ---: |" * len(bases),
        *(
            f"| {label} | {data['per_label'][label]} | "
            + " | ".join(str(data["per_label_and_basis"][label][b]) for b in bases)
            + " |"
            for label in LABELS
        ),
        "",
        "Unknown inputs per column: "
        + ", ".join(f"{c} {n}" for c, n in data["missing_inputs"].items())
        + f". An unknown input is filled with {NEUTRAL_FILL} and flagged by a missing-indicator feature.",
        "",
        "## How it was evaluated",
        "",
        f"{ev['scheme'].replace('_', ' ')}: {ev['n_splits']} folds x {ev['n_repeats']} repeats "
        f"(seed {ev['seed']}). The classifier, the rule engine and a majority-class baseline are "
        "scored on the same folds. Figures are mean ± std across repeats of metrics on pooled "
        "out-of-fold predictions. Log-loss clips the true-class probability at "
        f"{ev['log_loss_clip']}; the rule engine's scores are floored at {ENGINE_PROBABILITY_FLOOR} "
        "and normalised to sum 1 to give it probabilities.",
        "",
        "| scorer | cases | accuracy | macro-F1 | log-loss |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for title, blocks in (("all cases", m), ("stated labels only", m["stated"])):
        for name in ("classifier", "rule_engine", "majority"):
            b = blocks[name]
            lines.append(
                f"| {name.replace('_', ' ')} ({title}) | {b['n_cases']} | {_pm(b['accuracy'])} "
                f"| {_pm(b['macro_f1'])} | {_pm(b['log_loss'])} |"
            )
    pf = m["classifier"]["per_fold"]
    lines += [
        "",
        f"Fold-level spread of the classifier ({pf['n_folds']} folds): accuracy {_pm(pf['accuracy'])}, "
        f"macro-F1 {_pm(pf['macro_f1'])}.",
        "",
        "Confusion matrix of the classifier (mean counts per repeat; rows true, columns predicted):",
        "",
        "| true \\ predicted | " + " | ".join(LABELS) + " |",
        "| --- |" + " ---: |" * len(LABELS),
        *(
            f"| {label} | " + " | ".join(f"{v:.1f}" for v in row) + " |"
            for label, row in zip(LABELS, m["classifier"]["confusion_matrix"]["mean_counts"], strict=True)
        ),
        "",
        "## Candidates",
        "",
        "| candidate | macro-F1 | keeps will direction |",
        "| --- | --- | --- |",
        *(
            f"| {EstimatorSpec(c['estimator'], c['params']).label} | {_pm(c['macro_f1'])} "
            f"| {'yes' if c['admissible'] else 'no'} |"
            for c in m["candidates"]
        ),
        "",
        f"Selection: {ev['selection']}.",
        "",
        f"Probabilities: {m['calibration']}",
        "",
        f"Direction: {m['monotonicity']['property']} ({m['monotonicity']['method']}; "
        f"{m['monotonicity']['how_enforced']}).",
        "",
        "## Known limits",
        "",
        f"- Few cases: {data['n_cases']} in all, the smallest class has "
        f"{min(data['per_label'].values())}; a single relabelled case moves macro-F1 by several "
        "points, and the std above understates that because repeats reuse the same cases.",
        f"- Label noise: {data['per_label_basis']['inferred']} labels are inferred by the curators, "
        "not stated by a source; the stated-only rows above show how much the figures lean on them.",
        "- Many Korean cases carry little more than their stage, so the classifier partly learns "
        "'a chaser with unknown inputs is production-type', a fact about the case list, not about "
        "countries.",
        "- The cases describe clusters (mostly in Korea, the US and Europe), not target countries; "
        "a target country resembling none of them gets an extrapolation, so read the classifier "
        "beside the rule engine, never instead of it.",
        "- Probabilities are not calibrated (see above).",
    ]
    return "\n".join(lines) + "\n"


def _pm(summary: Mapping[str, float]) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"
