"""POST /v1/match/compare: what-if scenarios and countries side by side, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.routers.compare import COMPARE_EXAMPLES
from models import Assessment, WeightProfile
from scoring.criteria import DEFAULT_WEIGHTS

PROBLEM = "application/problem+json"
# A Kazakhstan-like chaser (seeds/000 Tables 2-3) with every input given, so the figures do not
# depend on the reference data: hospital first, research second, composite gated by medium will.
KAZ_LIKE = {
    "innovation_stage": "chaser",
    "rd_level": "medium",
    "government_investment_will": "medium",
    "healthcare_capacity": "high",
    "research_capacity": "high",
    "manufacturing_base": "medium",
    "private_sector_strength": "medium",
}
WILL_HIGH = {"name": "public will rises to high", "profile": {"government_investment_will": "high"}}


def count(client, table) -> int:
    with client.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(table))


def compare(client, body):
    return client.post("/v1/match/compare", json=body)


def scenarios(*items, base_profile=KAZ_LIKE, **base):
    return {"base": {"profile": base_profile, "method": "rules", **base}, "scenarios": list(items)}


def test_scenario_comparison_shows_the_recommendation_moving_and_stores_nothing(client):
    before = count(client, Assessment)
    response = compare(client, scenarios(WILL_HIGH))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "scenarios" and body["stored"] is False
    base, what_if = body["items"]
    assert base["label"] == "base" and base["recommended_model"] == "hospital"
    assert base["recommendation_changed"] is False
    assert all(d["score_change"] == 0 and d["rank_change"] == 0 for d in base["differences"])

    assert what_if["label"] == "public will rises to high"
    assert what_if["changes"] == {"profile": {"government_investment_will": "high"}}
    assert what_if["recommended_model"] == "composite" and what_if["recommendation_changed"] is True
    assert what_if["summary"].startswith(
        "public will rises to high: Composite (full package) now first, was Hospital"
    )
    diffs = {d["model"]: d for d in what_if["differences"]}
    assert diffs["composite"]["rank_change"] == -3  # from fourth to first
    assert diffs["hospital"]["rank_change"] == 1
    before_scores = {r["model"]: r["score"] for r in base["ranking"]}
    for r in what_if["ranking"]:
        assert diffs[r["model"]]["score_change"] == pytest.approx(
            r["score"] - before_scores[r["model"]], abs=2e-6
        )
    assert what_if["profile_used"]["government_investment_will"]["value"] == "high"
    assert what_if["profile_used"]["healthcare_capacity"]["value"] == "high"  # unchanged inputs stay
    for item in body["items"]:
        assert 0.0 <= item["robustness"] <= 1.0
        assert sum(item["first_place_shares"].values()) == pytest.approx(1.0)
        assert item["counterfactual"]["summary"]
    assert count(client, Assessment) == before


def test_each_item_is_scored_exactly_as_post_match_would(client):
    body = compare(client, scenarios(WILL_HIGH)).json()
    match = client.post(
        "/v1/match", json={"profile": {**KAZ_LIKE, "government_investment_will": "high"}, "method": "rules"}
    ).json()
    item = body["items"][1]
    assert item["ranking"] == [
        {"model": r["model"], "rank": r["rank"], "score": r["score"]} for r in match["ranking"]
    ]
    for key in ("robustness", "first_place_shares", "counterfactual", "weights_used", "weight_profile"):
        assert item[key] == match[key]


def test_a_scenario_can_change_weights_or_switch_weight_profile(client):
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.post("/v1/weight-profiles", json={"name": name, "weights": {**DEFAULT_WEIGHTS, "rd": 0.6}})
    body = compare(
        client,
        scenarios(
            {"name": "public will weighs double", "weights": {"public_investment_will": 0.5}},
            {"name": "R&D-heavy profile", "weight_profile": name},
            weights={"stage": 0.3},
        ),
    ).json()
    base, doubled, other = body["items"]
    assert base["weights_used"]["stage"] == 0.3
    assert (
        doubled["weights_used"]["public_investment_will"] == 0.5 and doubled["weights_used"]["stage"] == 0.3
    )
    assert other["weight_profile"] == {"name": name, "version": 1}
    assert other["weights_used"]["rd"] == 0.6


def test_a_scenario_giving_rd_as_intensity_replaces_the_base_level(client):
    body = compare(
        client, scenarios({"name": "R&D 2.5 % of GDP", "profile": {"rd_intensity_pct": 2.5}})
    ).json()
    rd = body["items"][1]["profile_used"]["rd"]
    assert rd["value"] == 2.5 and rd["level"] == "high"


def test_a_country_base_fills_the_profile_from_reference_data(client):
    body = compare(client, {"base": {"country": "KAZ", "method": "rules"}, "scenarios": [WILL_HIGH]}).json()
    base, what_if = body["items"]
    assert base["country"]["iso3"] == "KAZ" and what_if["country"]["iso3"] == "KAZ"
    assert base["profile_used"]["rd"]["source"] == "reference"
    assert what_if["profile_used"]["government_investment_will"]["source"] == "caller"


def test_countries_side_by_side_with_common_overrides(client):
    body = compare(
        client,
        {"countries": ["KAZ", "kor"], "profile": {"government_investment_will": "high"}, "method": "rules"},
    ).json()
    assert body["mode"] == "countries"
    kaz, kor = body["items"]
    assert (kaz["label"], kor["label"]) == ("KAZ", "KOR")
    assert kor["country"]["name"].startswith("Korea")
    assert kor["changes"] == {"country": "KOR"}
    for item in body["items"]:
        assert item["profile_used"]["government_investment_will"]["source"] == "caller"
    assert kaz["recommendation_changed"] is False
    assert kor["recommendation_changed"] == (kor["recommended_model"] != kaz["recommended_model"])


@pytest.mark.parametrize("name", sorted(COMPARE_EXAMPLES))
def test_swagger_examples_answer(client, name):
    response = compare(client, COMPARE_EXAMPLES[name]["value"])
    assert response.status_code == 200, response.text


# --- bad input -----------------------------------------------------------------------------------

MANY_SCENARIOS = scenarios(*({"name": f"s{i}", "profile": {"rd_level": "high"}} for i in range(50)))
BAD = [
    ("51 items with the base", MANY_SCENARIOS, 422, ["body", "scenarios"], "at most 50 items"),
    (
        "51 countries",
        {"countries": ["KAZ"] * 51},
        422,
        ["body", "countries"],
        "at most 50 items; got 51",
    ),
    (
        "unknown country",
        {"countries": ["KAZ", "KAX"]},
        404,
        ["body", "countries", "1"],
        "countries.1: unknown country code 'KAX'",
    ),
    (
        "a country whose data leaves nothing to score",
        {"countries": ["KAZ", "GIB"]},
        422,
        ["body", "countries", "1"],
        "countries.1: profile: no value for any criterion with a weight > 0",
    ),
    (
        "a shared profile field, in country mode",
        {"countries": ["KAZ"], "profile": {"rd_level": "low", "rd_intensity_pct": 1.0}},
        422,
        ["body", "profile", "rd_intensity_pct"],
        "give rd_level or rd_intensity_pct, not both",
    ),
    (
        "an unknown shared weight profile, in country mode",
        {"countries": ["KAZ"], "weight_profile": "nobody"},
        404,
        ["body", "weight_profile"],
        "weight profile 'nobody' does not exist",
    ),
    (
        "unknown country in the base",
        {"base": {"country": "KAX"}, "scenarios": [WILL_HIGH]},
        404,
        ["body", "base"],
        "base: unknown country code",
    ),
    (
        "unknown weight profile in a scenario",
        scenarios({"name": "x", "weight_profile": "nobody"}),
        404,
        ["body", "scenarios", "0", "weight_profile"],
        "scenarios.0: weight profile 'nobody' does not exist",
    ),
    (
        "unknown weight in a scenario",
        scenarios({"name": "x", "weights": {"luck": 1}}),
        422,
        ["body", "scenarios", "0", "weights", "luck", "[key]"],
        "invalid fields: body.scenarios.0.weights.luck.[key]",
    ),
    (
        "all weights zero",
        scenarios({"name": "x", "weights": dict.fromkeys(DEFAULT_WEIGHTS, 0)}),
        422,
        ["body", "scenarios", "0", "weights"],
        "at least one weight",
    ),
    (
        "negative weight",
        scenarios({"name": "x", "weights": {"rd": -1}}),
        422,
        ["body", "scenarios", "0", "weights", "rd"],
        "invalid",
    ),
    ("both shapes", {**scenarios(WILL_HIGH), "countries": ["KAZ"]}, 422, ["body", "countries"], "not both"),
    ("no scenario", scenarios(), 422, ["body", "scenarios"], "at least one scenario"),
    ("scenarios without base", {"scenarios": [WILL_HIGH]}, 422, ["body", "base"], "need a base"),
    ("empty body", {}, 422, ["body", "countries"], "give base with scenarios, or a list of countries"),
    (
        "same name twice",
        scenarios(WILL_HIGH, WILL_HIGH),
        422,
        ["body", "scenarios", "1", "name"],
        "used twice",
    ),
    (
        "same country twice",
        {"countries": ["KAZ", "kaz"]},
        422,
        ["body", "countries", "1"],
        "KAZ is listed twice",
    ),
    (
        "base without core inputs",
        scenarios(WILL_HIGH, base_profile={"innovation_stage": "chaser"}),
        422,
        ["body", "base", "profile", "rd_level"],
        "required when no country is given",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "loc", "fragment"), BAD, ids=[c[0] for c in BAD])
def test_bad_comparison_is_named_and_writes_nothing(client, case, body, status, loc, fragment):
    before = (count(client, Assessment), count(client, WeightProfile))
    response = compare(client, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert fragment in problem["detail"], problem
    assert loc in [e["loc"] for e in problem["errors"]], problem["errors"]
    assert (count(client, Assessment), count(client, WeightProfile)) == before


def test_unknown_country_answer_suggests_close_matches(client):
    problem = compare(client, {"countries": ["KAZ", "KAX"]}).json()
    assert any(s["iso3"] == "KAZ" for s in problem["suggestions"])
