"""The classifier: case validation, features, honest evaluation, fast inference, artefacts, behaviour."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn

from scoring import classifier as clf
from scoring.classifier import (
    FEATURE_NAMES,
    LABELS,
    NEUTRAL_FILL,
    PUBLIC_LED,
    ArtefactError,
    EstimatorSpec,
    FastPredictor,
    TrainedModel,
    cases_to_features,
    compare_on_same_folds,
    engine_rows_to_features,
    fit_pipeline,
    load_artefact,
    load_cases,
    make_folds,
    max_public_led_drop,
    model_card_markdown,
    profile_features,
    random_engine_rows,
    save_artefact,
    train_classifier,
    training_data_hash,
)
from scoring.criteria import NUMERIC_CRITERIA
from scoring.engine import encode
from scoring.profile import CountryProfile, Stage
from tests.factories import profile

CASES_PATH = Path(__file__).resolve().parents[2] / "data" / "reference_cases.csv"
SEED = 7
FAST_REPEATS = 3  # for tests that retrain only to compare two runs


@pytest.fixture(scope="module")
def cases() -> pd.DataFrame:
    return load_cases(CASES_PATH)


@pytest.fixture(scope="module")
def model(cases: pd.DataFrame) -> TrainedModel:
    return train_classifier(cases, seed=SEED)


def random_features(n: int, seed: int = 0) -> np.ndarray:
    return engine_rows_to_features(random_engine_rows(np.random.default_rng(seed), n))


def write_cases(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


# --- cases and features ------------------------------------------------------------------------


def test_shipped_cases_load_with_every_label_and_both_bases(cases):
    assert list(cases.columns) == list(clf.CASE_COLUMNS)
    assert len(cases) >= 20
    assert set(cases["label"]) == set(LABELS)
    assert set(cases["label_basis"]) <= {"stated", "inferred"}


def test_bad_enum_is_reported_with_row_and_column(cases, tmp_path):
    bad = cases.copy()
    bad.loc[1, "label"] = "hospitl"
    with pytest.raises(ValueError, match=r"row 2 \(case_id .*\), column 'label': 'hospitl'"):
        load_cases(write_cases(bad, tmp_path / "bad.csv"))


def test_bad_level_is_reported_with_row_and_column(cases, tmp_path):
    bad = cases.copy()
    bad.loc[0, "research_capacity"] = "very high"
    with pytest.raises(ValueError, match=r"row 1 .*column 'research_capacity': 'very high'"):
        load_cases(write_cases(bad, tmp_path / "bad.csv"))


def test_missing_column_is_named(cases, tmp_path):
    with pytest.raises(ValueError, match="label_basis"):
        load_cases(write_cases(cases.drop(columns=["label_basis"]), tmp_path / "bad.csv"))


def test_duplicate_case_id_is_refused(cases, tmp_path):
    bad = pd.concat([cases, cases.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="column 'case_id': duplicate of row 1"):
        load_cases(write_cases(bad, tmp_path / "bad.csv"))


def test_unknown_inputs_are_filled_neutrally_and_flagged():
    rows = np.array([[1.0, np.nan, 5 / 6, np.nan, np.nan, np.nan, 1 / 6]])
    x = engine_rows_to_features(rows)[0]
    named = dict(zip(FEATURE_NAMES, x, strict=True))
    assert named["stage_chaser"] == 1 and named["stage_leader"] == named["stage_developing"] == 0
    assert named["public_investment_will"] == NEUTRAL_FILL and named["public_investment_will_missing"] == 1
    assert named["rd"] == pytest.approx(5 / 6) and named["rd_missing"] == 0
    assert named["private_sector_strength"] == pytest.approx(1 / 6)


def test_unknown_stage_sets_no_stage_column():
    x = profile_features(CountryProfile(innovation_stage=None, rd=0.5, public_investment_will=0.5))
    assert x[:3].tolist() == [0.0, 0.0, 0.0]


def test_profile_features_equal_case_features_for_the_same_inputs(cases):
    x, names = cases_to_features(cases)
    assert names == FEATURE_NAMES and x.shape == (len(cases), len(FEATURE_NAMES))
    row = cases.iloc[0]
    levels = {c: row[clf.CASE_COLUMN_OF[c]] for c in NUMERIC_CRITERIA}
    p = CountryProfile(
        innovation_stage=Stage(row["innovation_stage"]),
        **{c: (clf.LEVEL_VALUE[clf.Level(v)] if v else None) for c, v in levels.items()},
    )
    np.testing.assert_array_equal(profile_features(p), x[0])
    np.testing.assert_array_equal(engine_rows_to_features(encode(p))[0], x[0])


def random_profiles(n: int, seed: int) -> list[CountryProfile]:
    """Any stage or none; each input a level, a number (0 and 1 included) or unknown."""
    rows = random_engine_rows(np.random.default_rng(seed), n)
    rows[::7, 1:] = np.where(rows[::7, 1:] > 0.5, 1.0, 0.0)  # the ends of the scale
    stages = list(clf.STAGES)
    return [
        CountryProfile(
            None if np.isnan(r[0]) else stages[int(r[0])],
            *(None if np.isnan(v) else float(v) for v in r[1:]),
        )
        for r in rows
    ]


def test_profile_features_equal_the_features_of_the_encoded_profile():
    profiles = random_profiles(3000, seed=3)
    expected = engine_rows_to_features(np.array([encode(p) for p in profiles]))
    assert np.array_equal(np.array([profile_features(p) for p in profiles]), expected)


@pytest.mark.parametrize(
    "spec",
    [
        None,  # the chosen model
        EstimatorSpec("logistic_regression", {"C": 0.3, "max_iter": 5000}),
        EstimatorSpec("decision_tree", {"max_depth": 3, "min_samples_leaf": 2, "random_state": 0}),
    ],
    ids=["chosen", "lr", "tree"],
)
def test_explain_equals_predict_proba_and_contributions_of_the_features(spec, model, cases):
    x_cases, _ = cases_to_features(cases)
    pipeline = model.pipeline if spec is None else fit_pipeline(spec, x_cases, cases["label"].to_numpy())
    fast = FastPredictor(pipeline)
    for p in random_profiles(400, seed=5):
        # one row at a time, as explain does: a matrix product of many rows may round differently
        features = engine_rows_to_features(encode(p))
        row = fast.predict_proba(features)[0]
        probs, pairs = fast.explain(p)
        assert list(probs.values()) == [float(row[fast.classes.index(m)]) for m in clf.MODEL_IDS]
        assert (max(probs, key=probs.__getitem__), pairs) == fast.contributions(features[0])


def test_recorded_outcomes_join_training_but_not_the_stated_subset(cases):
    outcome = cases.iloc[[0]].assign(case_id="outcome_1", label_basis="outcome", kind="outcome")
    model = train_classifier(pd.concat([cases, outcome]), seed=SEED, n_repeats=FAST_REPEATS)
    assert model.metrics["data"]["per_label_basis"]["outcome"] == 1
    assert model.metrics["stated"]["classifier"]["n_cases"] == int((cases["label_basis"] == "stated").sum())
    assert "1 recorded outcomes" in model_card_markdown(model)


def test_training_data_hash_ignores_row_order_but_not_labels(cases):
    shuffled = cases.sample(frac=1.0, random_state=1)
    assert training_data_hash(shuffled) == training_data_hash(cases)
    relabelled = cases.copy()
    relabelled.loc[0, "label"] = "research" if relabelled.loc[0, "label"] != "research" else "hospital"
    assert training_data_hash(relabelled) != training_data_hash(cases)


# --- evaluation ----------------------------------------------------------------------------------


def test_training_reports_classifier_engine_and_majority_on_the_same_folds(model, cases):
    m = model.metrics
    assert m["evaluation"]["scheme"] == "repeated_stratified_kfold"
    smallest = min(cases["label"].value_counts())
    assert m["evaluation"]["n_splits"] == min(5, smallest)
    for name in ("classifier", "rule_engine", "majority"):
        for metric in ("accuracy", "macro_f1", "log_loss"):
            assert set(m[name][metric]) >= {"mean", "std"}
            assert set(m["stated"][name][metric]) >= {"mean", "std"}
        counts = np.array(m[name]["confusion_matrix"]["mean_counts"])
        assert counts.sum() == pytest.approx(len(cases))
    assert m["stated"]["classifier"]["n_cases"] == int((cases["label_basis"] == "stated").sum())
    assert "calibration" in m and "uncalibrated" in m["calibration"]
    json.dumps(m)  # JSON-serialisable as stored


def test_chosen_candidate_has_the_best_admissible_macro_f1_up_to_the_tie_tolerance(model):
    admissible = [c for c in model.metrics["candidates"] if c["admissible"]]
    best = max(c["macro_f1"]["mean"] for c in admissible)
    chosen = next(c for c in admissible if c["estimator"] == model.estimator and c["params"] == model.params)
    assert chosen["macro_f1"]["mean"] >= best - clf.TIE_TOLERANCE
    earlier = admissible[: admissible.index(chosen)]
    assert all(c["macro_f1"]["mean"] < best - clf.TIE_TOLERANCE for c in earlier)


def test_cv_metrics_are_reproducible_with_a_fixed_seed(model, cases):
    again = train_classifier(cases, seed=SEED)
    assert again.metrics == model.metrics
    x, _ = cases_to_features(cases)
    np.testing.assert_array_equal(again.predictor().predict_proba(x), model.predictor().predict_proba(x))


def test_training_with_every_estimator_kind_raises_no_warning(cases):
    specs = [
        *clf.candidate_specs(SEED)[:2],
        EstimatorSpec("gradient_boosting", {"n_estimators": 5, "max_depth": 2, "random_state": SEED}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # feature-name mismatches, convergence, ill-defined metrics
        trained = train_classifier(cases, seed=SEED, n_repeats=2, specs=specs)
    assert [c["estimator"] for c in trained.metrics["candidates"]] == [s.estimator for s in specs]


def test_rule_engine_probabilities_are_floored_and_normalised(cases):
    p = clf.engine_probabilities(clf.cases_to_engine_rows(cases))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p.min() > 0


def test_macro_f1_equals_sklearn_with_the_present_labels():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(1, 25))
        y, p = rng.choice(LABELS, n), rng.choice(LABELS, n)
        labels = sorted(set(y) | set(p))
        expected = f1_score(y, p, labels=labels, average="macro", zero_division=0)
        assert clf.macro_f1(y, p) == pytest.approx(expected, abs=1e-12)


def test_too_few_cases_per_class_is_a_clear_error(cases):
    one_hospital = cases[cases["label"] != "hospital"]
    one_hospital = pd.concat([one_hospital, cases[cases["label"] == "hospital"].iloc[:1]])
    with pytest.raises(ValueError, match=r"too few cases.*hospital"):
        train_classifier(one_hospital)


def test_a_class_with_two_cases_switches_to_leave_one_out(cases):
    keep = cases[cases["label"] != "hospital"]
    two = pd.concat([keep, cases[cases["label"] == "hospital"].iloc[:2]])
    plan = make_folds(two["label"].to_numpy(), seed=SEED)
    assert plan.scheme == "leave_one_out" and len(plan.folds) == len(two)


# --- fast inference ------------------------------------------------------------------------------


def test_probabilities_sum_to_one(model, cases):
    x = np.vstack([cases_to_features(cases)[0], random_features(500)])
    fast = model.predictor().predict_proba(x)
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, atol=1e-12)
    assert fast.min() >= 0


@pytest.mark.parametrize(
    "spec",
    [
        None,  # the chosen model
        EstimatorSpec("logistic_regression", {"C": 0.3, "max_iter": 5000}),
        EstimatorSpec("decision_tree", {"max_depth": 3, "min_samples_leaf": 2, "random_state": 0}),
        EstimatorSpec("gradient_boosting", {"n_estimators": 10, "max_depth": 2, "random_state": 0}),
    ],
    ids=["chosen", "lr", "tree", "boosting-fallback"],
)
def test_fast_predictor_equals_pipeline_on_cases_and_500_random_profiles(spec, model, cases):
    x_cases, _ = cases_to_features(cases)
    pipeline = model.pipeline if spec is None else fit_pipeline(spec, x_cases, cases["label"].to_numpy())
    x = np.vstack([x_cases, random_features(500, seed=11)])
    fast = FastPredictor(pipeline)
    expected = pipeline.predict_proba(clf.features_frame(x))
    assert np.max(np.abs(fast.predict_proba(x) - expected)) < 1e-9
    for row in x[:40]:  # one row at a time too
        assert (
            np.max(np.abs(fast.predict_proba(row) - pipeline.predict_proba(clf.features_frame(row)))) < 1e-9
        )


def test_lr_contributions_add_up_to_the_predicted_logit_and_are_sorted(cases):
    x, _ = cases_to_features(cases)
    pipeline = fit_pipeline(
        EstimatorSpec("logistic_regression", {"C": 1.0, "max_iter": 5000}), x, cases["label"]
    )
    fast = FastPredictor(pipeline)
    for row in x[:10]:
        predicted, pairs = fast.contributions(row)
        k = fast.classes.index(predicted)
        logit = pipeline.decision_function(clf.features_frame(row))[0, k]
        assert sum(c for _, c in pairs) + pipeline.named_steps["model"].intercept_[k] == pytest.approx(logit)
        assert [abs(c) for _, c in pairs] == sorted((abs(c) for _, c in pairs), reverse=True)
        assert {f for f, _ in pairs} == set(FEATURE_NAMES)


def test_tree_contributions_follow_the_decision_path(cases):
    x, _ = cases_to_features(cases)
    spec = EstimatorSpec("decision_tree", {"max_depth": 3, "min_samples_leaf": 2, "random_state": 0})
    fast = FastPredictor(fit_pipeline(spec, x, cases["label"]))
    root = fast._node_proba(0)
    for row in x:
        predicted, pairs = fast.contributions(row)
        k = fast.classes.index(predicted)
        assert root[k] + sum(c for _, c in pairs) == pytest.approx(fast.predict_proba(row)[0, k])
        assert len(pairs) <= 3


def test_explain_gives_a_probability_per_cluster_model(model):
    probs, pairs = model.predictor().explain(profile("developing", rd="low", will="high"))
    assert list(probs) == list(clf.MODEL_IDS)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert pairs and all(isinstance(f, str) and isinstance(c, float) for f, c in pairs)


# --- behaviour -----------------------------------------------------------------------------------


def test_raising_government_will_never_lowers_public_led_probability(model):
    predictor = model.predictor()
    rng = np.random.default_rng(2024)
    rows = random_engine_rows(rng, 500)
    will = np.linspace(0.0, 1.0, 41)
    batch = np.repeat(rows, len(will), axis=0)
    batch[:, 1 + NUMERIC_CRITERIA.index("public_investment_will")] = np.tile(will, len(rows))
    proba = predictor.predict_proba(engine_rows_to_features(batch))
    public = [predictor.classes.index(c) for c in PUBLIC_LED]
    summed = proba[:, public].sum(axis=1).reshape(len(rows), len(will))
    assert np.all(np.diff(summed, axis=1) >= -1e-12)
    assert model.metrics["monotonicity"]["holds"]


def test_when_no_candidate_keeps_the_will_direction_the_lr_is_constrained(cases):
    x, _ = cases_to_features(cases)
    free = fit_pipeline(
        EstimatorSpec("logistic_regression", {"C": 100.0, "max_iter": 5000}), x, cases["label"]
    )
    # The premise, checked rather than skipped on: if new cases let this LR keep the direction by
    # itself, the test shows nothing of the projection and needs another estimator that breaks it.
    assert not clf.public_led_monotonicity(free)["holds"], "the free LR keeps the direction on these cases"
    constrained = train_classifier(
        cases,
        seed=SEED,
        n_repeats=FAST_REPEATS,
        specs=[EstimatorSpec("logistic_regression", {"C": 100.0, "max_iter": 5000})],
    )
    assert constrained.metrics["monotonicity"]["projection_applied"]
    assert constrained.params[clf.MONOTONE_PROJECTION] is True
    assert max_public_led_drop(constrained.predictor(), n_profiles=300) <= 1e-12


def test_case_names_ids_and_row_order_do_not_affect_predictions(cases):
    renamed = cases.copy()
    renamed["case_id"] = [f"case_{i:03d}" for i in range(len(cases))][::-1]
    renamed["name"] = "anonymous"
    renamed["name_ko"] = ""
    renamed = renamed.sample(frac=1.0, random_state=5)
    a = train_classifier(cases, seed=SEED, n_repeats=FAST_REPEATS)
    b = train_classifier(renamed, seed=SEED, n_repeats=FAST_REPEATS)
    assert a.metrics["classifier"] == b.metrics["classifier"]
    assert a.metrics["candidates"] == b.metrics["candidates"]
    x = random_features(200, seed=9)
    np.testing.assert_allclose(a.predictor().predict_proba(x), b.predictor().predict_proba(x), atol=1e-12)


def test_a_developing_country_with_strong_will_and_low_rd_leans_public_led(model):
    probs = model.predictor().probabilities(
        profile("developing", rd="low", will="high", manufacturing_base="medium")
    )
    assert sum(probs[m] for m in PUBLIC_LED) > 0.5


# --- comparing versions --------------------------------------------------------------------------


def test_comparison_on_same_folds_reproduces_the_training_figures(model, cases):
    other = EstimatorSpec("logistic_regression", {"C": 0.1, "max_iter": 5000})
    result = compare_on_same_folds(cases, active=other, candidate=model.spec, seed=SEED)
    assert result.candidate_macro_f1["mean"] == pytest.approx(model.metrics["classifier"]["macro_f1"]["mean"])
    listed = next(c for c in model.metrics["candidates"] if c["params"] == other.params)
    assert result.active_macro_f1["mean"] == pytest.approx(listed["macro_f1"]["mean"])
    assert result.beats_active() == (result.candidate_macro_f1["mean"] > result.active_macro_f1["mean"])
    json.dumps(result.as_dict())


def test_a_spec_does_not_beat_itself(model, cases):
    result = compare_on_same_folds(cases, active=model.spec, candidate=model.spec, seed=SEED, n_repeats=2)
    assert result.per_repeat_difference == (0.0, 0.0)
    assert not result.beats_active()


# --- artefacts -----------------------------------------------------------------------------------


def test_artefact_round_trip_keeps_predictions_and_metadata(model, tmp_path):
    path, sha = save_artefact(model, tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    loaded = load_artefact(path, sha, sklearn.__version__)
    x = random_features(100)
    np.testing.assert_array_equal(loaded.predictor().predict_proba(x), model.predictor().predict_proba(x))
    assert loaded.metrics == model.metrics
    assert loaded.training_data_hash == model.training_data_hash
    assert loaded.library_versions == model.library_versions


def test_tampered_artefact_is_refused_before_deserialising(model, tmp_path, monkeypatch):
    path, sha = save_artefact(model, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    def must_not_load(*args, **kwargs):
        raise AssertionError("deserialised a tampered artefact")

    monkeypatch.setattr(clf.sio, "loads", must_not_load)
    monkeypatch.setattr(clf.sio, "load", must_not_load)
    with pytest.raises(ArtefactError, match="sha256"):
        load_artefact(path, sha, sklearn.__version__)


def test_unexpected_sklearn_version_is_refused(model, tmp_path):
    path, sha = save_artefact(model, tmp_path)
    with pytest.raises(ArtefactError, match="scikit-learn"):
        load_artefact(path, sha, "0.0.1")


def test_artefact_recorded_under_another_sklearn_is_refused(model, tmp_path):
    path, _ = save_artefact(model, tmp_path)
    # Rebuild the archive with metadata claiming another version; its own sha256 is then correct.
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == clf.METADATA_MEMBER:
                meta = json.loads(content)
                meta["library_versions"]["sklearn"] = "1.0.0"
                content = json.dumps(meta).encode()
            dst.writestr(item, content)
    forged = tmp_path / "forged.skops"
    forged.write_bytes(out.getvalue())
    sha = hashlib.sha256(out.getvalue()).hexdigest()
    with pytest.raises(ArtefactError, match=r"1\.0\.0"):
        load_artefact(forged, sha, "1.0.0")


def test_artefact_holds_only_trusted_types(model, tmp_path, cases):
    import skops.io as sio

    x, _ = cases_to_features(cases)
    tree = fit_pipeline(
        EstimatorSpec("decision_tree", {"max_depth": 2, "random_state": 0}), x, cases["label"]
    )
    for pipeline in (model.pipeline, tree):
        assert set(sio.get_untrusted_types(data=sio.dumps(pipeline))) <= set(clf.TRUSTED_TYPES)


# --- model card and boundaries -------------------------------------------------------------------


def test_model_card_states_data_baselines_and_limits(model, cases):
    card = model_card_markdown(model)
    assert f"{len(cases)} labelled reference cases" in card
    for text in ("rule engine", "majority", "stated labels only", "Known limits", "inferred", "±"):
        assert text in card
    for label in LABELS:
        assert f"| {label} | {int((cases['label'] == label).sum())} |" in card


def test_classifier_module_imports_no_web_or_database_code():
    tree = ast.parse(Path(clf.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    roots = {name.split(".")[0] for name in imported}
    assert not roots & {"fastapi", "sqlalchemy", "app", "models", "starlette", "pickle", "joblib"}


@pytest.mark.parametrize("stage", [-1.0, 0.5, 3.0, np.inf])
def test_engine_rows_with_a_stage_index_that_is_no_stage_are_refused(stage):
    row = np.full(1 + len(NUMERIC_CRITERIA), 0.5)
    row[0] = stage
    with pytest.raises(ValueError, match="stage index"):
        engine_rows_to_features(row)
    row[0] = 2.0
    assert engine_rows_to_features(row)[0][2] == 1.0  # developing, the third stage column
