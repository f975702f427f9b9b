"""Request schemas: a level or a number on the [0, 1] scale is taken as the plain union takes it, and
refused with one error at the field where the union would give one per member."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from app.schemas import LevelOrUnit, Unit
from scoring.profile import Level

PLAIN = TypeAdapter(Level | Unit)  # the union as it was, without the fast path
FAST = TypeAdapter(LevelOrUnit)

VALUES: list[Any] = [
    *range(-2, 4),
    *(i / 20 for i in range(-5, 26)),
    -0.0,
    1e-300,
    math.nextafter(1.0, 2.0),
    math.nextafter(0.0, -1.0),
    math.nan,
    math.inf,
    -math.inf,
    10**400,
    True,
    False,
    "low",
    "medium",
    "high",
    "LOW",
    "0.5",
    "1",
    "",
    None,
    [0.5],
    {"value": 0.5},
    Level.HIGH,
]


def _outcome(adapter: TypeAdapter[Any], value: Any, mode: str) -> tuple[str, Any]:
    try:
        got = adapter.validate_json(value) if mode == "json" else adapter.validate_python(value)
    except ValidationError as exc:
        return "error", [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    return type(got).__name__, got


ONE_ERROR = (
    "error",
    [("level_or_number", (), "Input should be 'low', 'medium' or 'high', or a number from 0 to 1")],
)


def _same(fast: tuple[str, Any], plain: tuple[str, Any], value: Any = None) -> bool:
    """The plain union's value, or one error: "not finite" for NaN and infinities, else ONE_ERROR."""
    if plain[0] != "error":
        return fast == plain
    if isinstance(value, float) and not math.isfinite(value):
        return fast == ("error", [("finite_number", (), f"Input should be a finite number, not {value}")])
    return fast == ONE_ERROR


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_same_value_as_the_plain_union_or_one_error(value: Any) -> None:
    assert _same(_outcome(FAST, value, "python"), _outcome(PLAIN, value, "python"), value)


@pytest.mark.parametrize(
    "text", ["0", "1", "0.25", "1.0", "-0.0", "1.5", "-1", '"low"', '"0.5"', "true", "null", "1e400"]
)
def test_same_from_json(text: str) -> None:
    assert _same(_outcome(FAST, text, "json"), _outcome(PLAIN, text, "json"), json.loads(text))


def test_numbers_on_the_scale_come_back_as_floats() -> None:
    assert [type(FAST.validate_python(v)) for v in (0, 1, 0.5)] == [float, float, float]
    assert FAST.validate_python(Level.LOW) is Level.LOW
    with pytest.raises(ValidationError):
        TypeAdapter(Unit).validate_python(True)
