"""Every kind of bad input: a problem+json answer naming the field, and no row written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import Assessment
from tests.factories import match_body


def assessments_count(client) -> int:
    with client.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Assessment))


def weights(**w):
    return {**match_body(), "weights": w}


CASES = [
    (
        "unknown enum",
        {"profile": {"innovation_stage": "pioneer", "rd_level": "low", "government_investment_will": "low"}},
        422,
        ["body", "profile", "innovation_stage"],
    ),
    ("unknown level", match_body(rd_level="huge"), 422, ["body", "profile", "rd_level"]),
    (
        "boolean for a number",
        match_body(government_investment_will=True),
        422,
        ["body", "profile", "government_investment_will"],
    ),
    (
        "number out of range",
        match_body(healthcare_capacity=1.5),
        422,
        ["body", "profile", "healthcare_capacity"],
    ),
    ("unknown profile field", match_body(gdp=3), 422, ["body", "profile", "gdp"]),
    (
        "missing core field",
        {"profile": {"innovation_stage": "chaser", "rd_level": "low"}},
        422,
        ["profile", "government_investment_will"],
    ),
    ("rd twice", match_body(rd_intensity_pct=1.0), 422, ["profile", "rd_intensity_pct"]),
    (
        "negative R&D intensity",
        match_body(rd_level=None, rd_intensity_pct=-0.5),
        422,
        ["body", "profile", "rd_intensity_pct"],
    ),
    ("negative weight", weights(rd=-1), 422, ["body", "weights", "rd"]),
    ("unknown weight", weights(luck=0.3), 422, ["body", "weights", "luck"]),
    (
        "all-zero weights",
        weights(
            **dict.fromkeys(
                [
                    "stage",
                    "public_investment_will",
                    "rd",
                    "healthcare_capacity",
                    "research_capacity",
                    "manufacturing_base",
                    "private_sector_strength",
                ],
                0,
            )
        ),
        422,
        ["weights"],
    ),
    ("unknown weight profile", {**match_body(), "weight_profile": "nobody"}, 404, ["weight_profile"]),
    ("unknown method", {**match_body(), "method": "oracle"}, 422, ["body", "method"]),
]


@pytest.mark.parametrize(("name", "body", "status", "loc"), CASES, ids=[c[0] for c in CASES])
def test_bad_match_body_is_named_and_writes_nothing(client, name, body, status, loc):
    before = assessments_count(client)
    response = client.post("/v1/match", json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert any(e["loc"][: len(loc)] == loc for e in problem["errors"]), problem
    assert assessments_count(client) == before


def test_malformed_json_is_a_400_problem(client):
    before = assessments_count(client)
    response = client.post(
        "/v1/match", content=b'{"profile": {', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"
    assert assessments_count(client) == before


def test_body_over_one_mebibyte_is_413(client):
    before = assessments_count(client)
    payload = b'{"profile": {"innovation_stage": "chaser"}, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/v1/match", content=payload, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert assessments_count(client) == before


def test_unknown_assessment_is_404_problem(client):
    response = client.get("/v1/assessments/0123456789abcdef0123456789abcdef")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "does not exist" in response.json()["detail"]


def test_country_match_with_a_malformed_code_is_404_not_500(client):
    response = client.get("/v1/countries/%C3%AA/match")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_wrong_method_names_every_allowed_method(client):
    response = client.delete("/v1/match")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
