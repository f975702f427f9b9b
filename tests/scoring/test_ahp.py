"""AHP: textbook weights and consistency, validation of judgements, pooling of experts."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from scoring import ahp


def matrix(text: str) -> list[list[float]]:
    return [[float(Fraction(x)) for x in row.split()] for row in text.strip().splitlines()]


# Saaty, T.L. (1990) "How to make a decision: The Analytic Hierarchy Process", European Journal of
# Operational Research 48(1), 9-26: the house-buying example. Criteria: size, transportation,
# neighbourhood, age, yard, modern facilities, general condition, financing. Published priorities
# .173 .054 .188 .018 .031 .036 .167 .333; lambda_max = 9.669, CI = 0.238, CR = 0.169.
HOUSE_CRITERIA = matrix(
    """
    1   5   3   7   6   6   1/3 1/4
    1/5 1   1/3 5   3   3   1/5 1/7
    1/3 3   1   6   3   4   6   1/5
    1/7 1/5 1/6 1   1/3 1/4 1/7 1/8
    1/6 1/3 1/3 3   1   1/2 1/5 1/6
    1/6 1/3 1/4 4   2   1   1/5 1/6
    3   5   1/6 7   5   5   1   1/2
    4   7   5   8   6   6   2   1
    """
)
HOUSE_PRIORITIES = (0.173, 0.054, 0.188, 0.018, 0.031, 0.036, 0.167, 0.333)

# Same paper, houses A, B, C compared on size: priorities .754 .181 .065, lambda_max = 3.136,
# CI = 0.068, CR = 0.117.
HOUSE_SIZE = matrix(
    """
    1   6   8
    1/6 1   4
    1/8 1/4 1
    """
)

# Wikipedia, "Analytic hierarchy process – leader example": experience, education, charisma, age;
# published priorities .547 .127 .270 .056 (rounded by the article to three decimals).
LEADER_CRITERIA = matrix(
    """
    1   4   3   7
    1/4 1   1/3 3
    1/3 3   1   5
    1/7 1/3 1/5 1
    """
)


def geometric_mean_weights(a: list[list[float]]) -> np.ndarray:
    """The row geometric-mean approximation of the eigenvector, computed without scoring.ahp."""
    rows = np.prod(np.array(a), axis=1) ** (1 / len(a))
    return rows / rows.sum()


def lambda_max_estimate(a: list[list[float]], w: np.ndarray) -> float:
    """Saaty's estimate of lambda_max: the mean of (A w)_i / w_i."""
    return float(np.mean(np.array(a) @ w / w))


def test_house_criteria_match_saaty_1990():
    result = ahp.priorities(HOUSE_CRITERIA)
    assert np.allclose(result.weights, HOUSE_PRIORITIES, atol=0.0006)
    assert result.lambda_max == pytest.approx(9.669, abs=0.0006)
    assert result.consistency_index == pytest.approx(0.238, abs=0.0006)
    assert result.random_index == 1.41
    assert result.consistency_ratio == pytest.approx(0.169, abs=0.0006)
    assert not result.consistent


def test_house_size_matches_saaty_1990_and_is_just_over_the_limit():
    result = ahp.priorities(HOUSE_SIZE)
    assert np.allclose(result.weights, (0.754, 0.181, 0.065), atol=0.0006)
    assert result.lambda_max == pytest.approx(3.136, abs=0.0006)
    assert result.consistency_index == pytest.approx(0.068, abs=0.0006)
    assert result.consistency_ratio == pytest.approx(0.117, abs=0.0006)
    assert not result.consistent


def test_leader_example_matches_the_published_priorities():
    result = ahp.priorities(LEADER_CRITERIA)
    assert np.allclose(result.weights, (0.547, 0.127, 0.270, 0.056), atol=0.001)
    assert result.consistent


# The approximation is close only for near-consistent judgements (the house criteria, CR 0.17, are not).
@pytest.mark.parametrize("a", [HOUSE_SIZE, LEADER_CRITERIA], ids=["house size", "leader"])
def test_eigenvector_agrees_with_the_geometric_mean_approximation(a):
    result = ahp.priorities(a)
    approx = geometric_mean_weights(a)
    assert np.allclose(result.weights, approx, atol=0.02)
    n = len(a)
    ci = (lambda_max_estimate(a, approx) - n) / (n - 1)
    assert result.consistency_index == pytest.approx(ci, rel=0.1)


def test_a_consistent_matrix_returns_its_weights_with_zero_inconsistency():
    w = np.array([0.4, 0.3, 0.2, 0.1])
    result = ahp.priorities(w[:, None] / w[None, :])
    assert np.allclose(result.weights, w)
    assert result.lambda_max == pytest.approx(4.0)
    assert result.consistency_ratio == pytest.approx(0.0, abs=1e-9)
    assert result.consistent


def test_two_criteria_are_always_consistent():
    result = ahp.priorities([[1, 3], [1 / 3, 1]])
    assert np.allclose(result.weights, (0.75, 0.25))
    assert result.consistency_ratio == 0.0


def test_random_index_is_saatys_table():
    assert [ahp.RANDOM_INDEX[n] for n in range(1, 11)] == [
        0,
        0,
        0.58,
        0.90,
        1.12,
        1.24,
        1.32,
        1.41,
        1.45,
        1.49,
    ]


def test_rounded_reciprocals_are_accepted_and_made_exact():
    exact = ahp.validate([[1, 3, 8], [0.33, 1, 2], [0.13, 0.5, 1]])
    assert np.allclose(exact * exact.T, 1.0)
    assert exact[0, 1] == pytest.approx(np.sqrt(3 / 0.33))


@pytest.mark.parametrize(
    ("a", "fragment", "where"),
    [
        ([[1, 2], [0.5, 1, 3]], "square", (1,)),
        ([[1, 2], [0.5, 1], [1, 1]], "square", (0,)),
        ([[1, 3], [3, 1]], "not reciprocal", (0, 1)),
        ([[1, 10], [0.1, 1]], "outside Saaty's scale", (0, 1)),
        ([[1, 1 / 12], [12, 1]], "outside Saaty's scale", (0, 1)),
        ([[2, 1], [1, 1]], "diagonal", (0, 0)),
        ([[1, 0], [0, 1]], "positive", (0, 1)),
        ([[1, -2], [-0.5, 1]], "positive", (0, 1)),
        ([[1, float("nan")], [1, 1]], "positive", (0, 1)),
        ([[1]], "at least 2", ()),
    ],
    ids=[
        "ragged",
        "not square",
        "not reciprocal",
        "above 9",
        "below 1/9",
        "diagonal",
        "zero",
        "negative",
        "nan",
        "1x1",
    ],
)
def test_invalid_matrices_are_refused_with_the_entry_at_fault(a, fragment, where):
    with pytest.raises(ahp.AhpError, match=fragment) as info:
        ahp.validate(a)
    assert info.value.where == where


def test_pooling_is_the_element_wise_geometric_mean_and_stays_reciprocal():
    a = np.array(matrix("1 3 5\n1/3 1 2\n1/5 1/2 1"))
    b = np.array(matrix("1 1 9\n1 1 3\n1/9 1/3 1"))
    pooled = ahp.aggregate([a, b])
    assert np.allclose(pooled, np.sqrt(a * b))
    assert np.allclose(pooled * pooled.T, 1.0)
    assert np.allclose(ahp.aggregate([a, a]), a)


def test_pooling_consistent_experts_gives_the_geometric_mean_of_their_weights():
    # Aczél & Saaty (1983): the geometric mean of consistent judgements is consistent with the
    # normalised geometric mean of the experts' weights.
    w1, w2 = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.2, 0.6])
    pooled = ahp.aggregate([w1[:, None] / w1[None, :], w2[:, None] / w2[None, :]])
    expected = np.sqrt(w1 * w2) / np.sqrt(w1 * w2).sum()
    result = ahp.priorities(pooled)
    assert np.allclose(result.weights, expected)
    assert result.consistency_ratio == pytest.approx(0.0, abs=1e-9)


def test_pooling_refuses_matrices_of_different_sizes():
    with pytest.raises(ahp.AhpError, match="expected 2x2"):
        ahp.aggregate([[[1, 2], [0.5, 1]], [[1, 1, 1], [1, 1, 1], [1, 1, 1]]])


def test_most_inconsistent_names_the_judgement_that_contradicts_the_others():
    w = np.array([0.4, 0.3, 0.2, 0.1])
    a = w[:, None] / w[None, :]
    a[0, 3], a[3, 0] = 1 / 4, 4  # consistent value is 4: this judgement is reversed
    result = ahp.priorities(a)
    i, j, given, _implied = ahp.most_inconsistent(ahp.validate(a), result.weights)
    assert (i, j) == (0, 3) and given == pytest.approx(0.25)
