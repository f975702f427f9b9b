"""The batch analysis gives every profile exactly what it would get on its own."""

from __future__ import annotations

import dataclasses

import numpy as np

from scoring import robustness as robustness_module
from scoring.cluster_models import MODEL_IDS
from scoring.criteria import CRITERIA, DEFAULT_WEIGHTS
from scoring.engine import (
    encode,
    evaluate,
    fit_matrix,
    gate_factors,
    gate_matrix,
    rank_order,
    scores,
    weight_vector,
)
from scoring.profile import CountryProfile, Stage
from scoring.robustness import Analysis, analyse
from tests.factories import profile


def random_rows(n: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.integers(0, 3, n).astype(float), rng.random((n, len(CRITERIA) - 1))])
    rows[rng.random(rows.shape) < 0.15] = np.nan  # some unknown inputs
    rows[:, 1:4] = np.where(np.isnan(rows[:, 1:4]), 0.5, rows[:, 1:4])  # keep the core inputs known
    rows[:, 0] = np.where(np.isnan(rows[:, 0]), 1.0, rows[:, 0])
    return rows


def test_many_at_once_equals_one_at_a_time():
    rows = random_rows(60)
    together = analyse(rows, DEFAULT_WEIGHTS, samples=300)
    _each_as_alone(rows, together)


def test_profiles_past_one_block_equal_one_at_a_time():
    """Every input known: one group of weight samples, scored in blocks (`_BLOCK`) that split it."""
    rows = random_rows(2 * robustness_module._BLOCK + 17, seed=8)
    rows[np.isnan(rows)] = 0.25
    together = analyse(rows, DEFAULT_WEIGHTS, samples=300)
    _each_as_alone(rows, together)


def _each_as_alone(rows: np.ndarray, together: Analysis) -> None:
    for i in range(len(rows)):
        alone = analyse(rows[i], DEFAULT_WEIGHTS, samples=300)
        assert together.evaluation(i) == alone.evaluation(0)
        assert together.robustness_of(i) == alone.robustness_of(0)
        assert together.leave_one_out_of(i) == alone.leave_one_out_of(0)
        assert together.counterfactual_of(i) == alone.counterfactual_of(0)


def test_counterfactual_change_really_puts_the_runner_up_first():
    checked = 0
    for i, row in enumerate(random_rows(40, seed=11)):
        result = analyse(row, DEFAULT_WEIGHTS, samples=10)
        cf = result.counterfactual_of(0)
        if cf.change is None or cf.change.input == "innovation_stage":
            continue
        moved = row.copy()
        moved[CRITERIA.index(cf.change.input)] = result.cf_value[0]
        after = analyse(moved, DEFAULT_WEIGHTS, samples=10).evaluation(0)
        assert after.recommended == cf.target_model, i
        assert cf.change.size <= 1 / 3 + 1e-9
        checked += 1
    assert checked >= 10  # most of the 40 have a numeric winning change; a few have none or a stage one


def test_analysis_agrees_with_evaluate():
    p = profile("chaser", rd="high", will=0.6, healthcare_capacity="low")
    assert analyse(encode(p), DEFAULT_WEIGHTS).evaluation(0) == evaluate(p, DEFAULT_WEIGHTS)


def _first_win_on_grid(row: np.ndarray, column: int, sign: float, runner_up: str, points: int) -> float:
    """The smallest move of one input, on a grid of `points` steps per level, that puts `runner_up` first."""
    w = weight_vector(DEFAULT_WEIGHTS)
    moves = np.arange(1, points + 1) / points / 3
    target = row[column] + sign * moves
    inside = (target >= 0) & (target <= 1)
    candidate = np.repeat(row[None], inside.sum(), axis=0)
    candidate[:, column] = target[inside]
    top = rank_order(scores(fit_matrix(candidate), gate_factors(gate_matrix(candidate)), w))[:, 0]
    won = top == MODEL_IDS.index(runner_up)
    return float(moves[inside][np.argmax(won)]) if won.any() else np.inf


def test_counterfactual_is_the_smallest_winning_move():
    """The solved move is no larger than any winning move a dense grid search finds."""
    points = 3000
    for i, row in enumerate(random_rows(40, seed=5)):
        result = analyse(row, DEFAULT_WEIGHTS, samples=10)
        cf = result.counterfactual_of(0)
        grid_best = min(
            _first_win_on_grid(row, j, sign, cf.target_model, points)
            for j in range(1, len(CRITERIA))
            if not np.isnan(row[j])
            for sign in (1.0, -1.0)
        )
        if cf.change is None or cf.change.input == "innovation_stage":
            assert grid_best == np.inf, i  # no numeric move was missed
            continue
        solved = abs(result.cf_value[0] - row[CRITERIA.index(cf.change.input)])
        assert solved <= grid_best + 1e-9, i
        assert grid_best - solved <= 1 / (3 * points) + 1e-9, i  # and the grid finds it a step later


def test_an_exact_tie_goes_to_the_earlier_model_whatever_the_last_bit():
    # Hospital and composite score exactly 0.775 here; their sums differ in the last bit.
    p = profile(
        "chaser", rd="medium", will="high", healthcare_capacity="medium", private_sector_strength="medium"
    )
    ranking = evaluate(p, DEFAULT_WEIGHTS).ranking
    assert abs(ranking[0].score - ranking[1].score) < 1e-12
    assert [ranking[0].model, ranking[1].model] == ["hospital", "composite"]  # MODEL_IDS order


def test_a_move_of_exactly_one_level_is_found():
    # Composite is runner-up; public will from 1/3 to 2/3 (one level) passes its high-will gate.
    p = CountryProfile(Stage.LEADER, rd=1.0, public_investment_will=1 / 3, research_capacity=0.0)
    cf = analyse(encode(p), DEFAULT_WEIGHTS, samples=10).counterfactual_of(0)
    assert cf.target_model == "composite"
    assert cf.change is not None and cf.change.input == "public_investment_will"
    assert cf.change.to_value == 0.6667


EQUAL_WEIGHTS = dict.fromkeys(CRITERIA, 1.0)


def test_a_stage_counterfactual_is_one_step():
    # A developing country whose runner-up (composite) would win as a chaser and as a leader alike:
    # the answer is the one step, to chaser, not the jump to leader.
    developing = CountryProfile(
        Stage.DEVELOPING,
        rd=0.9,
        public_investment_will=0.93,
        healthcare_capacity=0.23,
        research_capacity=0.18,
        manufacturing_base=0.97,
        private_sector_strength=0.3,
    )
    runner_up = "composite"
    for stage in (Stage.CHASER, Stage.LEADER):
        changed = dataclasses.replace(developing, innovation_stage=stage)
        assert evaluate(changed, EQUAL_WEIGHTS).recommended == runner_up
    cf = analyse(encode(developing), EQUAL_WEIGHTS, samples=10).counterfactual_of(0)
    assert cf.target_model == runner_up
    assert cf.change is not None and cf.change.input == "innovation_stage"
    assert (cf.change.from_value, cf.change.to_value) == ("developing", "chaser")


def test_stage_counterfactuals_never_skip_a_stage():
    rows = random_rows(3000, seed=11)
    rng = np.random.default_rng(12)
    stage_changes = 0
    for weights in (
        DEFAULT_WEIGHTS,
        EQUAL_WEIGHTS,
        dict(zip(CRITERIA, rng.random(len(CRITERIA)), strict=True)),
    ):
        result = analyse(rows, weights, samples=10)
        for i in np.flatnonzero(result.cf_column == 0):
            stage_changes += 1
            assert abs(result.cf_value[i] - rows[i, 0]) == 1, i
            # and the stage named does put the runner-up first
            moved = rows[i].copy()
            moved[0] = result.cf_value[i]
            assert analyse(moved, weights, samples=10).order[0, 0] == result.order[i, 1], i
    assert stage_changes > 0  # the check above ran


def test_a_counterfactual_is_reported_to_the_fewest_decimals_that_still_win():
    # A leader whose public investment will would have to fall from 0.95 to just above 2/3: rounded
    # to 4 decimals (0.6666) the change no longer wins, so it is reported to 6.
    row = np.array(
        [0.0, 0.9475372978437434, 0.0456998155013556, np.nan, 0.7250851006707656, 0.43132180249262453, 1 / 3]
    )
    result = analyse(row, DEFAULT_WEIGHTS, samples=10)
    runner_up = int(result.order[0, 1])
    assert result.cf_column[0] == CRITERIA.index("public_investment_will")
    assert result.cf_shown[0] == 0.666666

    def wins(value: float) -> bool:
        moved = row.copy()
        moved[CRITERIA.index("public_investment_will")] = value
        return analyse(moved, DEFAULT_WEIGHTS, samples=10).evaluation(0).recommended == MODEL_IDS[runner_up]

    assert wins(0.666666) and not wins(0.6666)
    # The same among other profiles, where most are reported to 4 decimals.
    together = analyse(np.vstack([random_rows(30), row]), DEFAULT_WEIGHTS, samples=10)
    assert together.cf_shown[-1] == 0.666666
    numeric = together.cf_column[:-1] > 0
    shown = together.cf_shown[:-1][numeric]
    assert np.all(np.round(shown, 4) == shown)
