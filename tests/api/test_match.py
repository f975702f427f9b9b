"""POST /v1/match, batch, assessments and the catalogue, through httpx on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.cli import migrate
from app.main import create_app
from app.services import matching, weight_profiles
from models import Assessment
from scoring.criteria import DEFAULT_WEIGHTS
from tests.conftest import make_settings
from tests.factories import match_body

PROBLEM = "application/problem+json"


def count_assessments(client: TestClient) -> int:
    with client.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(Assessment))


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_cluster_models_lists_the_four_models(client):
    body = client.get("/v1/cluster-models").json()
    assert [m["id"] for m in body] == ["production", "hospital", "research", "composite"]
    by_id = {m["id"]: m for m in body}
    assert by_id["composite"]["led_by"] == "public" and by_id["hospital"]["led_by"] == "private"
    assert by_id["production"]["fits_stages"] == ["developing"]


def test_kazakhstan_like_match_ranks_all_four_and_explains(client):
    response = client.post("/v1/match", json=match_body(healthcare_capacity="high"))
    assert response.status_code == 201
    body = response.json()
    assert body["recommended_model"] == "hospital"
    assert len(body["ranking"]) == 4 and {r["model"] for r in body["ranking"]} == {
        "production",
        "hospital",
        "research",
        "composite",
    }
    top = body["ranking"][0]
    assert abs(sum(c["contribution"] for c in top["contributions"]) - top["rule_score"]) < 1e-5
    assert body["profile_used"]["innovation_stage"] == {
        "value": "chaser",
        "level": None,
        "source": "caller",
        "year": None,
        "indicator": None,
        "note": None,
    }
    assert body["weight_profile"] == {"name": "default", "version": 1}
    assert 0.0 <= body["robustness"] <= 1.0
    assert "rationale_ko" in top and top["rationale"].startswith("Hospital-centred ranks 1")


def test_hybrid_without_a_classifier_answers_with_rules_and_says_so(tmp_path):
    # A database of its own: the shared ones have a classifier active once the training tests ran.
    url = f"sqlite:///{tmp_path}/no-classifier.db"
    migrate(url)
    app = create_app(make_settings(url, str(tmp_path / "models")))
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/v1/match", json={**match_body(), "method": "hybrid"})
        rules = c.post("/v1/match", json=match_body()).json()
    app.state.engine.dispose()
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["method"] == "rules" and body["model_version"] is None and body["classifier"] is None
    assert body["method_note"] == "no classifier version is active: hybrid answered with the rules alone"
    assert body["ranking"] == rules["ranking"]  # the rules' answer, unchanged


def test_assessment_reads_back_exactly_as_returned(client):
    created = client.post("/v1/match", json=match_body()).json()
    assert client.get(f"/v1/assessments/{created['assessment_id']}").json() == created


def test_assessment_survives_a_restart(settings):
    with TestClient(create_app(settings)) as first:
        created = first.post("/v1/match", json=match_body(rd_intensity_pct=2.2, rd_level=None)).json()
    with TestClient(create_app(settings)) as second:
        assert second.get(f"/v1/assessments/{created['assessment_id']}").json() == created


def test_batch_keeps_order_and_isolates_a_bad_item(client):
    before = count_assessments(client)
    items = [
        match_body(),
        {"profile": {"innovation_stage": "nowhere"}},
        match_body(government_investment_will="high", rd_level="high"),
    ]
    response = client.post("/v1/match/batch", json={"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["recommended_model"] in {"hospital", "research"}
    assert results[1]["status"] == 422 and results[1]["index"] == 1
    assert results[1]["errors"][0]["loc"][:5] == ["body", "items", "1", "profile", "innovation_stage"]
    assert results[2]["recommended_model"] == "composite"
    assert count_assessments(client) == before + 2


def test_the_batch_body_joins_stored_answers_and_errors_in_order():
    stored = [b'{"assessment_id":"a","rationale_ko":"\xeb\xb3\x91\xec\x9b\x90"}', b'{"assessment_id":"b"}']
    error = {"index": 1, "status": 422}
    assert orjson.loads(matching.batch_json([])) == {"results": []}
    assert orjson.loads(matching.batch_json([stored[0]])) == {"results": [orjson.loads(stored[0])]}
    assert matching.batch_json([stored[0], error, stored[1]]) == (
        b'{"results":[' + stored[0] + b',{"index":1,"status":422},' + stored[1] + b"]}"
    )


def test_a_batch_item_that_cannot_be_scored_first_leaves_the_others_scored(client):
    """Gibraltar's reference data has no value for any weighted criterion: its item is refused,
    naming the inputs, and each other item still gets its own answer (the second used to be read
    from row 1 of a one-row analysis: a 500 for the whole batch)."""
    before = count_assessments(client)
    items = [{"country": "GIB", "method": "rules"}, {"country": "KAZ", "method": "rules"}, match_body()]
    response = client.post("/v1/match/batch", json={"items": items})
    assert response.status_code == 200
    gib, kaz, given = response.json()["results"]
    assert gib["status"] == 422 and gib["index"] == 0
    assert gib["errors"][0]["loc"] == ["body", "items", "0", "profile"]
    assert "the reference data of GIB (Gibraltar) has none of them" in gib["detail"]
    for item, body in ((kaz, items[1]), (given, items[2])):
        single = client.post("/v1/match", json=body).json()
        for key in ("assessment_id", "created_at"):
            single.pop(key), item.pop(key)
        assert item == single
    assert count_assessments(client) == before + 2 + 2  # the two batch items and the two singles


def test_batch_over_the_cap_is_refused_naming_the_cap(client):
    cap = client.app.state.settings.batch_max_items
    response = client.post("/v1/match/batch", json={"items": [match_body()] * (cap + 1)})
    assert response.status_code == 422
    assert f"at most {cap}" in response.json()["detail"]


def test_batch_items_match_the_single_answers(client):
    bodies = [
        match_body(),
        match_body(healthcare_capacity="low", research_capacity="high"),
        {"country": "VNM", "method": "rules"},
    ]
    response = client.post("/v1/match/batch", json={"items": bodies})
    batch = response.json()["results"]
    for body, item in zip(bodies, batch, strict=True):
        stored = client.get(f"/v1/assessments/{item['assessment_id']}")
        assert stored.content in response.content  # each item is sent as the bytes stored
        single = client.post("/v1/match", json=body).json()
        for key in ("assessment_id", "created_at"):
            single.pop(key), item.pop(key)
        assert item == single


def test_responses_conform_to_the_documented_schema(client):
    """The routes return the service's dicts without re-validation, so the shape is checked here."""
    from app.schemas import BatchResponse, MatchResponse

    single = client.post("/v1/match", json={**match_body(), "method": "hybrid"}).json()
    by_country = client.get("/v1/countries/KAZ/match").json()
    batch = client.post("/v1/match/batch", json={"items": [match_body(), {"profile": {}}]}).json()
    for body in (single, by_country, client.get(f"/v1/assessments/{single['assessment_id']}").json()):
        assert (
            MatchResponse.model_validate(body).model_dump(mode="json", exclude_none=False).keys()
            == body.keys()
        )
    BatchResponse.model_validate(batch)


def test_every_match_names_the_reference_snapshot(client):
    body = client.post("/v1/match", json=match_body()).json()
    assert body["data_version"] == client.get("/v1/countries/KOR").json()["data_version"]


def test_counterfactual_names_a_request_field_and_its_value_really_wins(client):
    """Sending the reported change back makes the named model first (found by a review: 4-decimal
    rounding could land on the losing side of a gate threshold)."""
    profile = {
        "innovation_stage": "leader",
        "government_investment_will": 0.7152,
        "rd_level": "medium",
        "healthcare_capacity": 0.7534,
        "research_capacity": 0.021,
        "manufacturing_base": 0.1252,
        "private_sector_strength": 0.9982,
    }
    body = client.post("/v1/match", json={"profile": profile, "method": "rules"}).json()
    cf = body["counterfactual"]
    change = cf["change"]
    assert change is not None and change["input"] == "government_investment_will"
    again = client.post(
        "/v1/match", json={"profile": {**profile, change["input"]: change["to_value"]}, "method": "rules"}
    ).json()
    assert again["recommended_model"] == cf["target_model"]
    assert cf["summary"].startswith("In the rule engine")


def _answer(response) -> dict:
    """A match response without what belongs to the assessment itself (its id and time)."""
    return {k: v for k, v in response.json().items() if k not in ("assessment_id", "created_at")}


def test_a_repeated_request_is_a_new_assessment_with_the_same_answer(client):
    body = match_body(healthcare_capacity="high", research_capacity=0.41)
    first, second = client.post("/v1/match", json=body), client.post("/v1/match", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["assessment_id"] != second.json()["assessment_id"]
    assert _answer(second) == _answer(first)
    matching.MEMO.clear()  # the remembered answer is the one a fresh computation gives
    third = client.post("/v1/match", json=body)
    assert _answer(third) == _answer(first)
    for response in (first, second, third):
        stored = client.get(f"/v1/assessments/{response.json()['assessment_id']}")
        assert stored.content == response.content  # byte for byte


def test_a_new_weight_profile_version_is_not_answered_from_memory(client, monkeypatch):
    monkeypatch.setattr(weight_profiles, "LATEST_TTL", 0.0)  # re-read the latest version every time
    name = f"memo-{uuid.uuid4().hex[:8]}"
    weights = dict(DEFAULT_WEIGHTS)
    assert client.post("/v1/weight-profiles", json={"name": name, "weights": weights}).status_code == 201
    body = {**match_body(), "weight_profile": name}
    before = client.post("/v1/match", json=body).json()
    assert client.post("/v1/match", json=body).json()["weight_profile"]["version"] == 1
    weights["stage"] = 0.6
    assert client.post("/v1/weight-profiles", json={"name": name, "weights": weights}).status_code == 201
    after = client.post("/v1/match", json=body).json()
    assert after["weight_profile"]["version"] == 2 and after["weights_used"]["stage"] == 0.6
    assert after["ranking"] != before["ranking"]


def test_an_answer_remembered_under_other_settings_is_not_reused(client, database_url, model_dir):
    body = match_body(research_capacity=0.37)
    assert client.post("/v1/match", json=body).json()["robustness_detail"]["samples"] == 1000
    other = create_app(make_settings(database_url, model_dir, robustness_samples=50))
    with TestClient(other) as c:
        assert c.post("/v1/match", json=body).json()["robustness_detail"]["samples"] == 50
    other.state.engine.dispose()


def test_assessment_ids_are_version_7_uuids_of_their_creation_time(client):
    first = client.post("/v1/match", json=match_body()).json()
    batch = client.post("/v1/match/batch", json={"items": [match_body(), match_body()]}).json()["results"]
    for made in [first, *batch]:
        parsed = uuid.UUID(hex=made["assessment_id"])
        assert parsed.version == 7
        created = datetime.fromisoformat(made["created_at"])
        assert parsed.int >> 80 == (created - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        assert client.get(f"/v1/assessments/{made['assessment_id']}").json() == made
    # The batch came later: its ids are of a later millisecond, or the same one.
    assert first["assessment_id"][:12] <= batch[0]["assessment_id"][:12]
