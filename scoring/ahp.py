"""Expert elicitation by the Analytic Hierarchy Process (AHP).

An expert compares criteria in pairs on Saaty's 1-9 scale: a[i][j] = 3 says criterion i is
moderately more important than j, and then a[j][i] = 1/3. The weights are the principal
eigenvector of that matrix; the consistency ratio says how far the judgements contradict
each other (Saaty, T.L. (1980) The Analytic Hierarchy Process, McGraw-Hill; the same method
and the 0.10 threshold in Saaty, T.L. (1990) "How to make a decision: The Analytic Hierarchy
Process", European Journal of Operational Research 48(1), 9-26). Several experts are pooled
by the element-wise geometric mean of their judgements, the only aggregation that keeps the
pooled matrix reciprocal (Aczél, J. and Saaty, T.L. (1983) "Procedures for synthesizing ratio
judgements", Journal of Mathematical Psychology 27(1), 93-102).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Saaty's random index: the mean consistency index of random reciprocal matrices of size n
# (Saaty 1980), n = 1..10. Matrices of size 1 and 2 are always consistent.
RANDOM_INDEX: dict[int, float] = {
    1: 0.0,
    2: 0.0,
    3: 0.58,
    4: 0.90,
    5: 1.12,
    6: 1.24,
    7: 1.32,
    8: 1.41,
    9: 1.45,
    10: 1.49,
}
CR_THRESHOLD = 0.10  # Saaty: above 10 % the judgements should be revised
SCALE_MIN, SCALE_MAX = 1 / 9, 9.0
# Judgements are typed by hand, often as 0.33 for 1/3 or 0.13 for 1/8; a relative error of
# up to 5 % in a[i][j] * a[j][i] = 1 is read as rounding, anything beyond as a contradiction.
RECIPROCAL_TOLERANCE = 0.05
SCALE_LOWEST = SCALE_MIN * (1 - RECIPROCAL_TOLERANCE)  # the smallest entry read as 1/9


class AhpError(ValueError):
    """A comparison matrix that cannot be used; `where` is the (row, column) at fault, if any."""

    def __init__(self, message: str, where: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True, slots=True)
class Priorities:
    weights: tuple[float, ...]  # principal eigenvector, sums to 1
    lambda_max: float
    consistency_index: float
    random_index: float
    consistency_ratio: float

    @property
    def consistent(self) -> bool:
        return self.consistency_ratio <= CR_THRESHOLD


def validate(
    matrix: Sequence[Sequence[float]] | np.ndarray, *, tolerance: float = RECIPROCAL_TOLERANCE
) -> np.ndarray:
    """Check a pairwise-comparison matrix and return it with exact reciprocals restored."""
    rows = [list(r) for r in matrix]
    n = len(rows)
    if n < 2:
        raise AhpError(f"a comparison needs at least 2 criteria, got {n}")
    if n > max(RANDOM_INDEX):
        raise AhpError(f"at most {max(RANDOM_INDEX)} criteria can be compared, got {n}")
    for i, row in enumerate(rows):
        if len(row) != n:
            raise AhpError(f"the matrix must be square: row {i} has {len(row)} entries, expected {n}", (i,))
    a = np.array(rows, dtype=float)
    for (i, j), value in np.ndenumerate(a):
        if not math.isfinite(value) or value <= 0:
            raise AhpError(f"entry [{i}][{j}] must be a positive number, got {value}", (i, j))
        if i == j and abs(value - 1.0) > 1e-9:
            raise AhpError(
                f"diagonal entry [{i}][{i}] must be 1 (a criterion equals itself), got {value}", (i, j)
            )
        # The lower bound allows 1/9 typed as 0.11; 9 is the top of the scale.
        if value > SCALE_MAX or value < SCALE_MIN * (1 - tolerance):
            raise AhpError(f"entry [{i}][{j}] = {value:g} is outside Saaty's scale 1/9..9", (i, j))
    for i in range(n):
        for j in range(i + 1, n):
            product = a[i, j] * a[j, i]
            if abs(product - 1.0) > tolerance:
                raise AhpError(
                    f"entries [{i}][{j}] = {a[i, j]:g} and [{j}][{i}] = {a[j, i]:g} are not reciprocal "
                    f"(expected [{j}][{i}] = 1/{a[i, j]:g} = {1 / a[i, j]:.4g})",
                    (i, j),
                )
    # Split the rounding error evenly between the two entries so the result is exactly reciprocal.
    exact = np.sqrt(a / a.T)
    np.fill_diagonal(exact, 1.0)
    return exact


def priorities(matrix: Sequence[Sequence[float]] | np.ndarray) -> Priorities:
    """Principal-eigenvector weights, lambda_max, CI = (lambda_max - n)/(n - 1) and CR = CI/RI."""
    a = validate(matrix)
    n = a.shape[0]
    values, vectors = np.linalg.eig(a)
    k = int(np.argmax(values.real))
    # Perron-Frobenius: a positive matrix has a positive principal eigenvector (up to sign).
    vector = np.abs(vectors[:, k].real)
    weights = vector / vector.sum()
    lambda_max = float(values[k].real)
    ci = max(0.0, (lambda_max - n) / (n - 1))  # clip eig's round-off below n
    ri = RANDOM_INDEX[n]
    cr = ci / ri if ri > 0 else 0.0
    return Priorities(tuple(float(w) for w in weights), lambda_max, ci, ri, cr)


def aggregate(matrices: Sequence[Sequence[Sequence[float]] | np.ndarray]) -> np.ndarray:
    """Pool several experts' matrices by the element-wise geometric mean of their judgements."""
    if not matrices:
        raise AhpError("at least one matrix is needed")
    checked = [validate(m) for m in matrices]
    n = checked[0].shape[0]
    for e, m in enumerate(checked):
        if m.shape[0] != n:
            raise AhpError(f"matrix {e} is {m.shape[0]}x{m.shape[0]}, expected {n}x{n} like matrix 0", (e,))
    return np.exp(np.mean(np.log(np.stack(checked)), axis=0))


def most_inconsistent(matrix: np.ndarray, weights: Sequence[float]) -> tuple[int, int, float, float]:
    """The judgement furthest from what the weights imply: (i, j, given a[i][j], implied w_i/w_j)."""
    w = np.asarray(weights, dtype=float)
    implied = w[:, None] / w[None, :]
    error = np.abs(np.log(matrix / implied))
    i, j = np.unravel_index(int(np.argmax(np.triu(error, 1))), error.shape)
    return int(i), int(j), float(matrix[i, j]), float(implied[i, j])
