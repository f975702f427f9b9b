"""Classifier registry through the API: train, active pointer, tampered artefacts, outcomes, hybrid."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event

from app.services import classifier_runtime, registry
from tests.factories import match_body


@pytest.fixture
def trained(client):
    """An active classifier version in this database (trained once per backend)."""
    with client.app.state.sessionmaker() as s, s.begin():
        registry.ensure_active(s, settings=client.app.state.settings)
    classifier_runtime.forget_pointer()
    return client.get("/v1/classifier").json()


def test_active_version_reports_metrics_next_to_baselines(client, trained):
    metrics = trained["metrics"]
    for block in ("classifier", "rule_engine", "majority"):
        assert 0.0 <= metrics[block]["macro_f1"]["mean"] <= 1.0
    assert trained["active"] and trained["artefact_sha256"]


def test_hybrid_match_carries_rule_score_and_probability(client, trained):
    body = client.post("/v1/match", json={**match_body(), "method": "hybrid"}).json()
    assert body["method"] == "hybrid" and body["model_version"] == trained["version"]
    assert sum(r["classifier_probability"] for r in body["ranking"]) == pytest.approx(1.0, abs=1e-5)
    for r in body["ranking"]:
        assert r["score"] == pytest.approx(
            0.5 * r["rule_score"] + 0.5 * r["classifier_probability"], abs=1e-5
        )
    assert isinstance(body["classifier"]["agrees_with_rules"], bool)
    assert body["classifier"]["feature_contributions"]


def test_retraining_the_same_data_keeps_the_active_version(client, trained):
    result = client.post("/v1/classifier/train", json={}).json()
    assert client.get("/v1/classifier").json()["version"] == trained["version"]
    assert result["version"] == trained["version"] or not result["active"]


def test_new_version_not_activated_unless_asked(client, trained):
    result = client.post("/v1/classifier/train", json={"activate": False})
    assert result.status_code == 201
    # Trained from the same cases, the new version may be the active one itself; what must show is
    # that activation was not considered (without `activate: false` it would be compared or kept as
    # identical, with other decisions).
    assert result.json()["decision"] == "kept the active version (activation not requested)"
    assert client.get("/v1/classifier").json()["version"] == trained["version"]


def test_tampered_artefact_is_refused_and_active_stays(client, trained, tmp_path):
    settings = client.app.state.settings
    with client.app.state.sessionmaker() as s:
        row = registry.get(s, version=trained["version"])
        path = Path(settings.model_dir) / row.artefact_path
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        classifier_runtime._loaded.clear()
        response = client.post(f"/v1/classifier/versions/{trained['version']}/activate")
        assert response.status_code == 422
        assert "sha256" in response.json()["detail"]
        assert client.get("/v1/classifier").json()["version"] == trained["version"]
    finally:
        path.write_bytes(original)
        classifier_runtime._loaded.clear()


def test_unknown_version_is_404(client, trained):
    assert client.post("/v1/classifier/versions/clf-nope/activate").status_code == 404


def test_outcome_for_unknown_assessment_is_404(client):
    response = client.post(
        "/v1/assessments/ffffffffffffffffffffffffffffffff/outcome",
        json={"chosen_model": "hospital", "decided_by": "test", "reason": "test"},
    )
    assert response.status_code == 404


def test_outcome_with_unknown_model_is_422(client):
    created = client.post("/v1/match", json=match_body()).json()
    response = client.post(
        f"/v1/assessments/{created['assessment_id']}/outcome",
        json={"chosen_model": "casino", "decided_by": "test", "reason": "test"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "chosen_model"


def test_outcomes_become_labelled_cases_for_the_next_training(client):
    created = client.post("/v1/match", json=match_body(healthcare_capacity="high")).json()
    response = client.post(
        f"/v1/assessments/{created['assessment_id']}/outcome",
        json={
            "chosen_model": "hospital",
            "decided_by": "KHIDI consultant",
            "reason": "ministry chose hospital-led",
        },
    )
    assert response.status_code == 201
    with client.app.state.sessionmaker() as s:
        cases = registry.training_cases(s, settings=client.app.state.settings)
    mine = cases[cases["name"] == f"assessment {created['assessment_id']}"]
    assert list(mine["label"]) == ["hospital"] and list(mine["label_basis"]) == ["outcome"]
    assert list(mine["healthcare_capacity"]) == ["high"]


def test_concurrent_activations_leave_exactly_one_active_version(database_url):
    """Two writers move the active pointer at the same moment; the one-active index keeps it single."""
    import threading

    from sqlalchemy import delete, func, select
    from sqlalchemy.orm import sessionmaker

    from app.db import make_engine
    from app.errors import Conflict
    from models import ModelVersion

    engine = make_engine(database_url)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    names = ["race-a", "race-b"]
    with sessions() as s, s.begin():
        previous = s.scalar(select(ModelVersion.version).where(ModelVersion.is_active))
        for name in names:
            s.add(
                ModelVersion(
                    version=name,
                    training_data_hash="x",
                    estimator="logistic_regression",
                    params={},
                    library_versions={},
                    features=[],
                    metrics={},
                    artefact_path="none",
                    artefact_sha256="0" * 64,
                    is_active=False,
                )
            )
    barrier = threading.Barrier(len(names))
    outcomes: list[str] = []

    def activate(name: str) -> None:
        with sessions() as s:
            barrier.wait()
            try:
                registry.activate(s, version=name)
                s.commit()
                outcomes.append("ok")
            except Conflict:
                s.rollback()
                outcomes.append("409")
            except Exception as exc:  # a lock timeout or serialisation failure would show here
                s.rollback()
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=activate, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(ModelVersion).where(ModelVersion.is_active)) == 1
        assert set(outcomes) <= {"ok", "409"} and "ok" in outcomes, outcomes
    finally:
        with sessions() as s, s.begin():
            if previous is not None:
                registry.activate(s, version=previous)
            s.execute(delete(ModelVersion).where(ModelVersion.version.in_(names)))
        classifier_runtime.forget_pointer()
        engine.dispose()


def test_a_refused_artefact_falls_back_to_rules_for_matches(client, trained, monkeypatch):
    monkeypatch.setattr(classifier_runtime, "POINTER_TTL", 60.0)  # no re-read during the test
    settings = client.app.state.settings
    with client.app.state.sessionmaker() as s:
        path = Path(settings.model_dir) / registry.get(s, version=trained["version"]).artefact_path
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"tampered")
        classifier_runtime._loaded.clear()
        classifier_runtime.forget_pointer()
        single = client.post("/v1/match", json={**match_body(), "method": "hybrid"})
        assert single.status_code == 201
        assert single.json()["method"] == "rules" and "verification" in single.json()["method_note"]
        # The refusal is remembered with the active version: the next matches do not query for it.
        queried: list[str] = []
        listen = lambda conn, cursor, statement, *rest: queried.append(statement)  # noqa: E731
        event.listen(client.app.state.engine, "before_cursor_execute", listen)
        try:
            again = [
                client.post("/v1/match", json={**match_body(rd_level=level), "method": "hybrid"})
                for level in ("low", "medium", "high")
            ]
        finally:
            event.remove(client.app.state.engine, "before_cursor_execute", listen)
        assert [r.json()["method"] for r in again] == ["rules"] * 3
        assert not [q for q in queried if "model_versions" in q]
        batch = client.post(
            "/v1/match/batch", json={"items": [match_body(), {**match_body(), "method": "hybrid"}]}
        )
        assert [r["method"] for r in batch.json()["results"]] == ["rules", "rules"]
        assert client.get("/readyz").status_code == 503
    finally:
        path.write_bytes(original)
        classifier_runtime._loaded.clear()
        classifier_runtime.forget_pointer()
