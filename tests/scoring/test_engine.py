"""The rule engine: the seed's own examples as behaviour, and properties that must always hold."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA, DEFAULT_WEIGHTS, FIT_CURVES, GATE_PENALTY, STAGE_FIT
from scoring.engine import (
    MIN_WEIGHT,
    TIE,
    WeightsError,
    encode,
    evaluate,
    explain,
    fit_matrix,
    gate_factors,
    gate_matrix,
    rank_order,
    scores,
    weight_vector,
)
from scoring.profile import STAGES, CountryProfile, rd_intensity_to_scale
from tests.factories import profile

# --- seeds/000 Tables 2-3 as behaviour -------------------------------------------------


def test_developing_country_with_low_rd_and_strong_will_gets_production_first():
    result = evaluate(profile("developing", rd="low", will="high"), DEFAULT_WEIGHTS)
    assert result.recommended == "production"


def test_innovation_leader_with_high_rd_and_will_gets_composite_first():
    result = evaluate(profile("leader", rd="high", will="high"), DEFAULT_WEIGHTS)
    assert result.recommended == "composite"


def test_kazakhstan_like_chaser_gets_hospital_or_research():
    result = evaluate(profile("chaser", rd="medium", will="medium"), DEFAULT_WEIGHTS)
    assert result.recommended in {"hospital", "research"}
    assert {s.model for s in result.ranking[:2]} == {"hospital", "research"}


def test_kazakhstan_like_chaser_follows_healthcare_capacity_to_hospital():
    result = evaluate(
        profile("chaser", healthcare_capacity="high", research_capacity="medium"), DEFAULT_WEIGHTS
    )
    assert result.recommended == "hospital"


def test_kazakhstan_like_chaser_follows_research_capacity_to_research():
    result = evaluate(
        profile("chaser", healthcare_capacity="medium", research_capacity="high"), DEFAULT_WEIGHTS
    )
    assert result.recommended == "research"


def test_uae_like_chaser_with_high_rd_and_will_gets_composite():
    result = evaluate(profile("chaser", rd="high", will="high"), DEFAULT_WEIGHTS)
    assert result.recommended == "composite"


# --- gates ------------------------------------------------------------------------------


def test_composite_gate_fails_for_a_developing_country_and_is_reported():
    result = evaluate(profile("developing", rd="high", will="high"), DEFAULT_WEIGHTS)
    composite = result.by_model("composite")
    stage_gate = next(g for g in composite.gates if g.criterion == "stage")
    assert stage_gate.assessed and not stage_gate.passed
    assert composite.gate_factor == pytest.approx(GATE_PENALTY)
    assert composite.score == pytest.approx(composite.fit * GATE_PENALTY)


def test_gate_on_a_missing_input_is_reported_as_not_assessed():
    result = evaluate(profile("chaser"), DEFAULT_WEIGHTS)
    gate = result.by_model("hospital").gates[0]
    assert gate.criterion == "healthcare_capacity"
    assert gate.passed and not gate.assessed
    assert "not assessed" in gate.reason


def test_missing_optional_inputs_lower_confidence_and_drop_out_of_the_weights():
    result = evaluate(profile("chaser"), DEFAULT_WEIGHTS)
    core = DEFAULT_WEIGHTS["stage"] + DEFAULT_WEIGHTS["public_investment_will"] + DEFAULT_WEIGHTS["rd"]
    assert result.confidence == pytest.approx(core / sum(DEFAULT_WEIGHTS.values()))
    hospital = result.by_model("hospital")
    assert sum(c.weight for c in hospital.contributions) == pytest.approx(1.0)
    assert hospital.fit == pytest.approx(sum(c.contribution for c in hospital.contributions))


# --- weights ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "field"),
    [
        ({**DEFAULT_WEIGHTS, "charisma": 1.0}, "weights.charisma"),
        ({**DEFAULT_WEIGHTS, "rd": -0.1}, "weights.rd"),
        ({**DEFAULT_WEIGHTS, "rd": math.nan}, "weights.rd"),
        (dict.fromkeys(CRITERIA, 0.0), "weights"),
        ({**DEFAULT_WEIGHTS, "healthcare_capacity": 5e-324}, "weights.healthcare_capacity"),  # subnormal
        ({**DEFAULT_WEIGHTS, "rd": MIN_WEIGHT / 2}, "weights.rd"),
    ],
)
def test_unusable_weights_are_refused_naming_the_field(weights, field):
    with pytest.raises(WeightsError) as info:
        evaluate(profile(), weights)
    assert info.value.field == field


def test_the_smallest_weight_allowed_scores_like_any_other_with_the_same_proportions():
    p = profile("developing", rd="low", will="high", healthcare_capacity=0.4)
    tiny = evaluate(p, {"rd": MIN_WEIGHT, "public_investment_will": 2 * MIN_WEIGHT})
    plain = evaluate(p, {"rd": 1.0, "public_investment_will": 2.0})
    assert [m.model for m in tiny.ranking] == [m.model for m in plain.ranking]
    for a, b in zip(tiny.ranking, plain.ranking, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-12)


def test_rd_intensity_maps_to_levels_at_the_documented_bounds():
    assert rd_intensity_to_scale(0.0) == 0.0
    assert rd_intensity_to_scale(0.5) == pytest.approx(1 / 3)
    assert rd_intensity_to_scale(1.5) == pytest.approx(2 / 3)
    assert rd_intensity_to_scale(10.0) == 1.0


# --- properties -------------------------------------------------------------------------

unit = st.floats(0.0, 1.0, allow_nan=False)
maybe_unit = st.one_of(st.none(), unit)
profiles = st.builds(
    CountryProfile,
    innovation_stage=st.sampled_from(STAGES),
    rd=unit,
    public_investment_will=unit,
    healthcare_capacity=maybe_unit,
    research_capacity=maybe_unit,
    manufacturing_base=maybe_unit,
    private_sector_strength=maybe_unit,
)
# Non-zero weights below MIN_WEIGHT are refused; these stay above it when scaled by 0.01.
weights = st.one_of(st.just(0.0), st.floats(1e-6, 10.0))
weight_maps = st.fixed_dictionaries({c: weights for c in CRITERIA}).filter(
    lambda w: w["stage"] + w["public_investment_will"] + w["rd"] > 1e-3
)


@given(profiles, weight_maps)
def test_scores_stay_in_unit_interval_and_ranking_is_a_permutation(p, w):
    result = evaluate(p, w)
    assert sorted(s.model for s in result.ranking) == sorted(MODEL_IDS)
    assert [s.rank for s in result.ranking] == [1, 2, 3, 4]
    scores = [s.score for s in result.ranking]
    assert all(0.0 <= s <= 1.0 for s in scores)
    # Best first; scores within TIE are equal (they keep the fixed model order, tested elsewhere).
    assert all(a >= b - TIE for a, b in itertools.pairwise(scores))


@given(profiles, weight_maps, st.floats(0.01, 1000.0))
def test_scaling_all_weights_changes_nothing(p, w, k):
    a = evaluate(p, w)
    b = evaluate(p, {c: v * k for c, v in w.items()})
    if a.ranking[0].score - a.ranking[1].score > 1e-9:
        assert a.recommended == b.recommended
    for s in a.ranking:
        assert b.by_model(s.model).score == pytest.approx(s.score, abs=1e-9)


@settings(max_examples=300)
@given(profiles, weight_maps, st.sampled_from(CRITERIA), st.floats(0.01, 10.0), st.permutations(MODEL_IDS))
def test_raising_a_weight_where_a_fits_better_never_lowers_a_relative_to_b(p, w, criterion, extra, pair):
    """With gates applied as per-model factors, 'fits better' compares gated fits."""
    before = evaluate(p, w)
    a, b = before.by_model(pair[0]), before.by_model(pair[1])
    j = CRITERIA.index(criterion)
    fit_a, fit_b = a.contributions[j].fit, b.contributions[j].fit
    if fit_a is None or fit_a * a.gate_factor <= fit_b * b.gate_factor:
        return
    after = evaluate(p, {**w, criterion: w[criterion] + extra})
    a2, b2 = after.by_model(pair[0]), after.by_model(pair[1])
    # The unnormalised advantage of A over B grows; so A never falls behind B if it was not behind.
    total_before = sum(w[c] for c in CRITERIA if p.value_of(c) is not None)
    total_after = total_before + extra
    assert (a2.score - b2.score) * total_after >= (a.score - b.score) * total_before - 1e-9
    if a.score >= b.score:
        assert a2.score >= b2.score - 1e-12


def test_evaluation_is_deterministic():
    p = profile("chaser", rd=0.37, will=0.71, manufacturing_base="high")
    assert evaluate(p, DEFAULT_WEIGHTS) == evaluate(p, DEFAULT_WEIGHTS)


def test_vectorised_fits_equal_the_documented_curves():
    rng = np.random.default_rng(7)
    rows = np.column_stack([rng.integers(0, 3, 500).astype(float), rng.random((500, len(CRITERIA) - 1))])
    fits = fit_matrix(rows)
    for m, model in enumerate(MODEL_IDS):
        assert np.array_equal(fits[:, m, 0], [STAGE_FIT[model][STAGES[int(s)]] for s in rows[:, 0]])
        for j, name in enumerate(CRITERIA[1:], start=1):
            np.testing.assert_allclose(
                fits[:, m, j], np.interp(rows[:, j], *FIT_CURVES[model][name]), atol=1e-12
            )


def test_rounded_in_bulk_is_pythons_round_exactly():
    """Including values a last bit either side of a half, where a plain rint(x * 1e6) / 1e6 can differ."""
    from scoring.engine import rounded

    rng = np.random.default_rng(5)
    for decimals in (4, 6):
        # decimal halves at this precision, each a bit off in binary, and their neighbours
        halves = (np.arange(0, 10**decimals, 7) + 0.5) / 10**decimals
        values = np.concatenate(
            [
                rng.random(20_000),
                halves,
                np.nextafter(halves, 0.0),
                np.nextafter(halves, 1.0),
                [0.0, 1.0, 2.675, 0.0000125, 0.5, -0.0, 12345.6789125, 1e300, np.inf, np.nan],
            ]
        )
        got = rounded(values, decimals).tolist()
        want = [round(float(v), decimals) for v in values]
        for g, w, v in zip(got, want, values, strict=True):
            assert g == w or (g != g and w != w), (v, decimals, g, w)


def test_rounded_stays_exact_at_more_decimals_and_larger_values():
    # The product x * 10**d must stay below 2**52 for the bulk path; beyond, Python rounds.
    from scoring.engine import rounded

    rng = np.random.default_rng(6)
    for decimals in (9, 12, 22, 23, 30):
        values = np.concatenate([rng.random(50_000) * 10_000, rng.random(50_000), rng.random(5_000) * 1e-10])
        got = rounded(values, decimals).tolist()
        want = [round(float(v), decimals) for v in values]
        assert got == want, decimals


# Values where fits saturate or repeat (0, 0.5, 1) make equal contributions, so the tie order is tested.
tie_prone = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0]), unit)


@given(
    st.lists(
        st.builds(
            CountryProfile,
            innovation_stage=st.one_of(st.none(), st.sampled_from(STAGES)),
            rd=tie_prone,
            public_investment_will=tie_prone,
            healthcare_capacity=tie_prone,
            research_capacity=tie_prone,
            manufacturing_base=tie_prone,
            private_sector_strength=tie_prone,
        ),
        min_size=1,
        max_size=6,
    ),
    weight_maps,
)
def test_strongest_criteria_are_the_largest_counted_contributions_in_criterion_order_on_ties(ps, w):
    rows = np.stack([encode(p) for p in ps])
    fits = fit_matrix(rows)
    gates = gate_matrix(rows)
    factors = gate_factors(gates)
    weight = weight_vector(w)
    try:
        score_rows = scores(fits, factors, weight)
    except WeightsError:  # no weighted input known: nothing to explain
        return
    explained = explain(rows, fits, gates, factors, score_rows, weight, rank_order(score_rows))
    for i in range(len(ps)):
        for s in explained.evaluation(i).ranking:
            counted = [c for c in s.contributions if c.fit is not None and c.weight > 0]
            # Python's sort is stable with reverse=True too: equal contributions keep criterion order.
            expected = [c.criterion for c in sorted(counted, key=lambda c: c.contribution, reverse=True)][:2]
            got = explained.strongest[i][MODEL_IDS.index(s.model)]
            assert [CRITERIA[j] for j in got] == expected
