"""Weight profiles and AHP through the API, on SQLite and PostgreSQL: versions, documentation, bad input."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.dependencies import wrote
from app.errors import Conflict, InvalidInput
from app.main import create_app
from app.routers.weights import AHP_EXAMPLES, CREATE_EXAMPLES
from app.services import api_keys, weight_profiles
from models import ApiKey, WeightProfile
from scoring.criteria import CRITERIA, CRITERION_INFO, DEFAULT_WEIGHTS
from tests.conftest import make_settings
from tests.factories import match_body

PROBLEM = "application/problem+json"
# Wikipedia, "Analytic hierarchy process – leader example" (weights .547 .127 .270 .056, CR < 0.10).
LEADER = [[1, 4, 3, 7], ["1/4", 1, "1/3", 3], ["1/3", 3, 1, 5], ["1/7", "1/3", "1/5", 1]]
# Saaty (1990) EJOR 48, 9-26, house size: CR = 0.117, just over the limit.
HOUSE_SIZE = [[1, 6, 8], ["1/6", 1, 4], ["1/8", "1/4", 1]]
FOUR = ["public_investment_will", "rd", "stage", "healthcare_capacity"]


def unique_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def full_weights(**changes: float) -> dict[str, float]:
    return {**DEFAULT_WEIGHTS, **changes}


def profile_rows(client) -> int:
    with client.app.state.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(WeightProfile))


def assert_problem(response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


# --- reading -------------------------------------------------------------------------------------


def test_default_profile_explains_each_criterion_with_its_seed_passage(client):
    body = client.get("/v1/weight-profiles/default").json()
    assert body["version"] == 1 and body["method"] == "seed"
    assert body["weights"] == DEFAULT_WEIGHTS
    assert [c["criterion"] for c in body["criteria"]] == list(CRITERIA)
    for c in body["criteria"]:
        assert c["rationale"] == CRITERION_INFO[c["criterion"]].rationale
        assert c["source"].startswith("seeds/000")
    assert sum(c["share"] for c in body["criteria"]) == pytest.approx(1.0, abs=1e-5)
    assert body["created_at"]


def test_list_holds_the_latest_version_of_each_name(client):
    name = unique_name()
    client.post("/v1/weight-profiles", json={"name": name, "weights": full_weights()})
    client.post("/v1/weight-profiles", json={"name": name, "weights": full_weights(rd=0.3)})
    listed = {p["name"]: p for p in client.get("/v1/weight-profiles").json()}
    assert listed["default"]["version"] >= 1
    assert listed[name]["version"] == 2 and listed[name]["weights"]["rd"] == 0.3
    assert listed[name]["criteria"][0]["rationale"] is None  # the seed rationale documents the default only


def test_posting_an_existing_name_writes_the_next_version_and_keeps_the_old(client):
    name = unique_name()
    first = client.post(
        "/v1/weight-profiles",
        json={"name": name, "weights": full_weights(), "description": "v1", "created_by": "kim"},
    )
    assert first.status_code == 201
    assert first.json()["version"] == 1 and first.json()["method"] == "manual"
    assert first.json()["created_by"] == "kim"
    second = client.post("/v1/weight-profiles", json={"name": name, "weights": full_weights(stage=0.5)})
    assert second.status_code == 201 and second.json()["version"] == 2

    assert client.get(f"/v1/weight-profiles/{name}").json()["version"] == 2
    old = client.get(f"/v1/weight-profiles/{name}", params={"version": 1}).json()
    assert old["version"] == 1 and old["weights"]["stage"] == 0.25 and old["description"] == "v1"
    versions = client.get(f"/v1/weight-profiles/{name}/versions").json()
    assert [v["version"] for v in versions] == [1, 2]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_versions_cannot_be_edited_or_deleted(client, method):
    response = client.request(method.upper(), "/v1/weight-profiles/default", json={"weights": {}})
    assert response.status_code == 405
    assert client.get("/v1/weight-profiles/default").json()["weights"] == DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v1/weight-profiles/nobody", "'nobody' does not exist"),
        ("/v1/weight-profiles/default?version=999", "'default' version 999 does not exist"),
        ("/v1/weight-profiles/nobody/versions", "'nobody' does not exist"),
    ],
)
def test_unknown_name_or_version_is_404(client, path, fragment):
    assert_problem(client.get(path), 404, fragment)


def test_a_new_profile_is_used_by_match_and_named_in_the_assessment(client):
    name = unique_name()
    client.post("/v1/weight-profiles", json={"name": name, "weights": full_weights(rd=0.0)})
    body = client.post("/v1/match", json={**match_body(), "weight_profile": name}).json()
    assert body["weight_profile"] == {"name": name, "version": 1}
    assert body["weights_used"]["rd"] == 0.0


@pytest.fixture
def keyed(database_url, model_dir):
    """An app with a read key and an admin key; the keys are removed afterwards."""
    app = create_app(make_settings(database_url, model_dir))
    with app.state.sessionmaker() as s, s.begin():
        read_key, _ = api_keys.create(s, name="portal", scopes=["read"])
        admin_key, _ = api_keys.create(s, name="ops", scopes=["admin"])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, {"X-API-Key": read_key}, {"X-API-Key": admin_key}
    with app.state.sessionmaker() as s, s.begin():
        s.query(ApiKey).delete()
    app.state.engine.dispose()


def test_writing_a_profile_needs_the_admin_scope_and_reading_it_does_not(keyed):
    c, read, admin = keyed
    body = {"name": unique_name(), "weights": full_weights()}
    assert c.post("/v1/weight-profiles", json=body).status_code == 401
    assert_problem(c.post("/v1/weight-profiles", json=body, headers=read), 403, "admin")
    ahp_body = {"name": body["name"], "criteria": FOUR, "matrices": [LEADER]}
    assert_problem(c.post("/v1/weight-profiles/ahp", json=ahp_body, headers=read), 403, "admin")
    assert c.post("/v1/weight-profiles", json=body, headers=admin).status_code == 201
    assert c.get(f"/v1/weight-profiles/{body['name']}", headers=read).status_code == 200


# --- AHP -----------------------------------------------------------------------------------------


def test_ahp_profile_has_the_textbook_weights_and_keeps_its_working(client):
    name = unique_name()
    response = client.post(
        "/v1/weight-profiles/ahp",
        json={"name": name, "criteria": FOUR, "matrices": [LEADER], "created_by": "panel"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["method"] == "ahp" and body["version"] == 1
    got = [body["weights"][c] for c in FOUR]
    assert got == pytest.approx([0.547, 0.127, 0.270, 0.056], abs=0.001)
    # Criteria the experts did not compare get 0, and the details say so.
    excluded = {"research_capacity", "manufacturing_base", "private_sector_strength"}
    assert {c for c, w in body["weights"].items() if w == 0} == excluded
    details = body["details"]
    assert set(details["excluded_criteria"]) == excluded
    assert details["criteria"] == FOUR
    assert details["consistency_ratio"] == pytest.approx(0.0439, abs=0.0005)
    assert details["eigenvalue"] == pytest.approx(4.118, abs=0.001)
    assert details["random_index"] == 0.9
    assert details["matrices"][0][1][0] == 0.25  # the fraction "1/4" as the number it means
    assert len(details["aggregated_matrix"]) == 4


def test_ahp_pools_several_experts_and_reports_each_consistency_ratio(client):
    name = unique_name()
    consistent = [[1, 2, 4], ["1/2", 1, 2], ["1/4", "1/2", 1]]
    other = [[1, 1, 3], [1, 1, 3], ["1/3", "1/3", 1]]
    body = client.post(
        "/v1/weight-profiles/ahp",
        json={
            "name": name,
            "criteria": ["stage", "public_investment_will", "rd"],
            "matrices": [consistent, other],
            "experts": ["A", "B"],
        },
    ).json()
    details = body["details"]
    assert [e["expert"] for e in details["individual"]] == ["A", "B"]
    assert len(details["consistency_ratios"]) == 2 and details["consistency_ratios"][0] == pytest.approx(0.0)
    assert details["aggregation"].startswith("element-wise geometric mean")
    assert details["aggregated_matrix"][0][1] == pytest.approx(2**0.5, abs=1e-5)


def test_ahp_group_with_inconsistent_pooled_judgements_is_refused_naming_each_figure(client):
    before = profile_rows(client)
    response = client.post(
        "/v1/weight-profiles/ahp",
        json={
            "name": unique_name(),
            "criteria": ["stage", "public_investment_will", "rd"],
            "matrices": [HOUSE_SIZE, HOUSE_SIZE],
        },
    )
    body = assert_problem(response, 422, "consistency ratio of the pooled matrix is 0.117", "0.10")
    assert body["individual_consistency_ratios"] == pytest.approx([0.117, 0.117], abs=0.001)
    assert profile_rows(client) == before


@pytest.mark.parametrize("name", sorted(AHP_EXAMPLES))
def test_ahp_swagger_examples_are_accepted(client, name):
    assert client.post("/v1/weight-profiles/ahp", json=AHP_EXAMPLES[name]["value"]).status_code == 201


@pytest.mark.parametrize("name", sorted(CREATE_EXAMPLES))
def test_create_swagger_examples_are_accepted(client, name):
    assert client.post("/v1/weight-profiles", json=CREATE_EXAMPLES[name]["value"]).status_code == 201


# --- bad input: a clear 4xx and no version written ----------------------------------------------

THREE = ["stage", "public_investment_will", "rd"]
BAD_CREATE = [
    (
        "unknown criterion",
        {"weights": full_weights(luck=0.3)},
        422,
        ["body", "weights", "luck"],
        "invalid fields: body.weights.luck",
    ),
    ("negative weight", {"weights": full_weights(rd=-1)}, 422, ["body", "weights", "rd"], "invalid fields"),
    ("all zero", {"weights": dict.fromkeys(CRITERIA, 0)}, 422, ["body", "weights"], "at least one weight"),
    (
        "partial weights",
        {"weights": {"rd": 1.0, "stage": 1.0}},
        422,
        ["body", "weights", "public_investment_will"],
        "invalid fields: body.weights.public_investment_will, body.weights.healthcare_capacity",
    ),
    ("bad name", {"name": "Has Spaces", "weights": full_weights()}, 422, ["body", "name"], "invalid fields"),
    ("extra field", {"weights": full_weights(), "version": 3}, 422, ["body", "version"], "invalid fields"),
]
BAD_AHP = [
    (
        "not square",
        {"criteria": THREE, "matrices": [[[1, 2, 3], [0.5, 1], [1 / 3, 1, 1]]]},
        ["body", "matrices", "0", "1"],
        "must be square",
    ),
    (
        "not reciprocal",
        {"criteria": THREE, "matrices": [[[1, 3, 1], [3, 1, 1], [1, 1, 1]]]},
        ["body", "matrices", "0", "0", "1"],
        "not reciprocal",
    ),
    (
        "above 9",
        {"criteria": THREE, "matrices": [[[1, 12, 1], ["1/12", 1, 1], [1, 1, 1]]]},
        ["body", "matrices", "0", "0", "1"],
        "outside Saaty's scale 1/9..9",
    ),
    (
        "below 1/9",
        {"criteria": THREE, "matrices": [[[1, 0.05, 1], [20, 1, 1], [1, 1, 1]]]},
        ["body", "matrices", "0", "0", "1"],
        "outside Saaty's scale 1/9..9",
    ),
    (
        "diagonal",
        {"criteria": THREE, "matrices": [[[2, 1, 1], [1, 1, 1], [1, 1, 1]]]},
        ["body", "matrices", "0", "0", "0"],
        "diagonal",
    ),
    (
        "inconsistent",
        {"criteria": THREE, "matrices": [HOUSE_SIZE]},
        ["body", "matrices"],
        "consistency ratio of the matrix is 0.117",
    ),
    (
        "rows do not match criteria",
        {"criteria": FOUR, "matrices": [HOUSE_SIZE]},
        ["body", "matrices", "0"],
        "3 rows for 4 criteria",
    ),
    (
        "unknown criterion",
        {"criteria": ["stage", "luck", "rd"], "matrices": [[[1, 1, 1]] * 3]},
        ["body", "criteria", "1"],
        "invalid fields: body.criteria.1",
    ),
    (
        "criterion twice",
        {"criteria": ["stage", "rd", "rd"], "matrices": [[[1, 1, 1]] * 3]},
        ["body", "criteria"],
        "'rd' is listed twice",
    ),
    (
        "labels do not match matrices",
        {"criteria": THREE, "matrices": [[[1, 1, 1]] * 3], "experts": ["A", "B"]},
        ["body", "experts"],
        "2 labels for 1 matrices",
    ),
    (
        "not a fraction",
        {"criteria": THREE, "matrices": [[[1, "one third", 1], [3, 1, 1], [1, 1, 1]]]},
        ["body", "matrices", "0", "0", "1"],
        "invalid fields",
    ),
    ("no matrix", {"criteria": THREE, "matrices": []}, ["body", "matrices"], "invalid fields"),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "loc", "fragment"), BAD_CREATE, ids=[c[0] for c in BAD_CREATE]
)
def test_bad_weight_profile_is_refused_and_writes_nothing(client, case, body, status, loc, fragment):
    before = profile_rows(client)
    problem = assert_problem(
        client.post("/v1/weight-profiles", json={"name": unique_name(), **body}), status, fragment
    )
    assert loc in [e["loc"] for e in problem["errors"]]
    assert profile_rows(client) == before


@pytest.mark.parametrize(("case", "body", "loc", "fragment"), BAD_AHP, ids=[c[0] for c in BAD_AHP])
def test_bad_ahp_input_is_refused_and_writes_nothing(client, case, body, loc, fragment):
    before = profile_rows(client)
    problem = assert_problem(
        client.post("/v1/weight-profiles/ahp", json={"name": unique_name(), **body}), 422, fragment
    )
    assert loc in [e["loc"] for e in problem["errors"]]
    assert profile_rows(client) == before


def test_a_partial_mapping_is_refused_by_the_service_too(session):
    with pytest.raises(InvalidInput, match="give all 7 criteria"):
        weight_profiles.create_manual(session, name=unique_name(), weights={"rd": 1.0})


def test_schema_lists_the_seven_criteria_and_the_fraction_form(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["CriterionWeights"]["required"] == list(CRITERIA)
    judgement = schemas["AhpCreate"]["properties"]["matrices"]["items"]["items"]["items"]["anyOf"]
    assert {"type": "string", "pattern": judgement[1]["pattern"], "examples": ["1/3"]} == judgement[1]
    assert judgement[0]["maximum"] == 9


# --- concurrent versioning --------------------------------------------------------------------

WRITERS = 8


def test_concurrent_writers_of_one_name_never_duplicate_a_version(settings):
    """Eight sessions post the same name at the same moment: each gets a distinct version or a 409."""
    name = unique_name()
    engine = make_engine(settings.database_url)
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    barrier = threading.Barrier(WRITERS)
    outcomes: list[int | str] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        with make_session() as session:
            barrier.wait()
            try:
                row = weight_profiles.create_manual(
                    session, name=name, weights=full_weights(rd=i / 10), created_by=f"writer {i}"
                )
                session.commit()
                outcome: int | str = row.version
            except Conflict:
                session.rollback()
                outcome = "409"
            except Exception as exc:
                session.rollback()
                outcome = repr(exc)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    versions = sorted(o for o in outcomes if isinstance(o, int))
    failures = [o for o in outcomes if not isinstance(o, int)]
    assert len(outcomes) == WRITERS
    assert set(failures) <= {"409"}, failures
    assert versions == list(range(1, len(versions) + 1))  # distinct and without gaps
    assert versions, "every writer was refused: at least the first must have stored its version"
    with make_session() as session:
        stored = session.scalars(select(WeightProfile.version).where(WeightProfile.name == name)).all()
    assert sorted(stored) == versions
    engine.dispose()


def test_concurrent_posts_through_the_api_get_distinct_versions_or_409(client):
    name = unique_name()
    barrier = threading.Barrier(WRITERS)
    statuses: list[int] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        barrier.wait()
        response = client.post("/v1/weight-profiles", json={"name": name, "weights": full_weights(rd=i / 10)})
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(set(statuses)) in ([201], [201, 409]), statuses
    versions = [v["version"] for v in client.get(f"/v1/weight-profiles/{name}/versions").json()]
    assert versions == list(range(1, statuses.count(201) + 1))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reads_do_not_wait_for_the_write_lock_and_writes_do(client):
    """SQLite: the app's write lock serialises the commits that write; a read commits without it."""
    lock: threading.Lock = client.app.state.write_lock
    name = f"lock-{uuid.uuid4().hex[:8]}"
    results: dict[str, int] = {}

    def call(key: str, method: str, path: str, **kwargs: Any) -> None:
        results[key] = client.request(method, path, **kwargs).status_code

    lock.acquire()  # a write of this process in progress
    try:
        read = threading.Thread(target=call, args=("read", "GET", "/v1/weight-profiles"))
        write = threading.Thread(
            target=call,
            args=("write", "POST", "/v1/weight-profiles"),
            kwargs={"json": {"name": name, "weights": full_weights()}},
        )
        read.start()
        write.start()
        read.join(timeout=10)
        assert results.get("read") == 200
        write.join(timeout=0.5)
        assert write.is_alive() and "write" not in results  # waits for the lock
    finally:
        lock.release()
    write.join(timeout=10)
    assert results["write"] == 201


def test_the_sessions_of_the_app_know_when_they_wrote(client):
    """What decides whether a request's commit takes the SQLite write lock."""
    sessions = client.app.state.sessionmaker
    with sessions() as s:
        s.scalars(select(WeightProfile)).all()
        assert not wrote(s)
        s.rollback()
    with sessions() as s:  # a Core update through the session, as classifier activation does
        s.execute(
            update(WeightProfile).where(WeightProfile.name == "no such profile").values(description="x")
        )
        assert wrote(s)
        s.rollback()
    with sessions() as s:  # an ORM change, flushed or not
        s.add(
            WeightProfile(
                name=f"w-{uuid.uuid4().hex[:8]}", version=1, weights=full_weights(), method="manual"
            )
        )
        assert wrote(s)
        s.flush()
        assert wrote(s)
        s.rollback()
