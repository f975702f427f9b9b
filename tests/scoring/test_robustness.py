"""Robustness under weight perturbation and the counterfactual, on constructed cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scoring.criteria import DEFAULT_WEIGHTS
from scoring.engine import evaluate
from scoring.profile import CountryProfile
from scoring.robustness import counterfactual, robustness
from tests.factories import profile


def score_gap(p: CountryProfile, a: str, b: str) -> float:
    evaluation = evaluate(p, DEFAULT_WEIGHTS)
    return evaluation.by_model(a).score - evaluation.by_model(b).score


def hospital_research_tie() -> CountryProfile:
    """A chaser whose healthcare capacity is set, by bisection, so hospital and research score the same."""
    base = profile("chaser", "medium", "medium", research_capacity=0.8)
    low, high = 0.34, 1.0  # hospital trails research at the low end and leads at the high end
    assert score_gap(replace(base, healthcare_capacity=low), "hospital", "research") < 0
    assert score_gap(replace(base, healthcare_capacity=high), "hospital", "research") > 0
    for _ in range(60):
        mid = (low + high) / 2
        if score_gap(replace(base, healthcare_capacity=mid), "hospital", "research") < 0:
            low = mid
        else:
            high = mid
    return replace(base, healthcare_capacity=high)


def test_a_clear_case_is_fully_robust():
    # Developing, low R&D, strong public will, strong manufacturing: production by a wide margin.
    p = profile("developing", "low", "high", manufacturing_base="high", healthcare_capacity="low")
    result = robustness(p, DEFAULT_WEIGHTS)
    assert evaluate(p, DEFAULT_WEIGHTS).recommended == "production"
    assert result.robustness == 1.0
    assert result.first_place_shares["production"] == 1.0


def test_a_tie_between_two_models_is_a_coin_flip():
    p = hospital_research_tie()
    assert abs(score_gap(p, "hospital", "research")) < 1e-9
    result = robustness(p, DEFAULT_WEIGHTS)
    assert 0.35 < result.robustness < 0.65
    shares = result.first_place_shares
    # The perturbation moves first place between the two tied models, not to a third.
    assert shares["hospital"] + shares["research"] > 0.95
    assert 0.35 < shares["research"] < 0.65


def test_robustness_is_reproducible_with_its_seed():
    p = hospital_research_tie()
    assert robustness(p, DEFAULT_WEIGHTS) == robustness(p, DEFAULT_WEIGHTS)


def test_kazakhstan_like_chaser_turns_to_research_if_rd_rises():
    # seeds/000 Tables 2-3 list Kazakhstan (a chaser) for hospital and research. With healthcare and
    # research capacity both high, hospital leads research only on R&D (fit 1.0 vs 0.9 at the
    # medium point); the two R&D curves cross at 2/3, the start of "high".
    p = profile(
        "chaser",
        "medium",
        "medium",
        healthcare_capacity="high",
        research_capacity="high",
        manufacturing_base="medium",
        private_sector_strength="medium",
    )
    evaluation = evaluate(p, DEFAULT_WEIGHTS)
    assert [m.model for m in evaluation.ranking[:2]] == ["hospital", "research"]

    cf = counterfactual(p, DEFAULT_WEIGHTS)
    assert cf.target_model == "research"
    assert cf.change is not None
    assert cf.change.input == "rd"
    assert (cf.change.from_level, cf.change.to_level) == ("medium", "high")
    assert cf.change.from_value == 0.5
    assert cf.change.to_value == pytest.approx(2 / 3, abs=0.004)
    assert cf.change.size == pytest.approx(1 / 6, abs=0.004)
    # The change it names puts research first; a visibly smaller rise does not.
    assert evaluate(replace(p, rd=cf.change.to_value), DEFAULT_WEIGHTS).recommended == "research"
    assert evaluate(replace(p, rd=0.66), DEFAULT_WEIGHTS).recommended == "hospital"
