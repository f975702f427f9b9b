"""Alembic: upgrade to head, no drift between migrations and models, downgrade to base; both backends."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from app.cli import alembic_config
from app.db import make_engine
from models import Base, WeightProfile
from tests.conftest import BACKENDS, empty_database_url


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    gen = empty_database_url(request.param, tmp_path)
    yield next(gen)
    next(gen, None)


def test_upgrade_matches_models_and_downgrades_cleanly(empty_url):
    config = alembic_config(empty_url)
    command.upgrade(config, "head")
    engine = make_engine(empty_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diff == []
        default = conn.execute(
            select(WeightProfile.weights).where(WeightProfile.name == "default")
        ).scalar_one()
        assert default["stage"] == 0.25
    command.downgrade(config, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_response_to_text_keeps_assessments_and_their_outcomes(empty_url):
    """0001 -> 0002 -> 0001 with data: the response survives both ways and no outcome is cascaded away."""
    config = alembic_config(empty_url)
    command.upgrade(config, "0001")
    engine = make_engine(empty_url)
    response = {"assessment_id": "a1", "ranking": [{"model": "hospital", "score": 0.861}], "note": "병원"}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO assessments (id, created_at, method, recommended_model, weight_profile_name,"
                " weight_profile_version, engine_version, request, response) VALUES ('a1', :at, 'rules',"
                " 'hospital', 'default', 1, 'rules-1.0', :request, :response)"
            ),
            {"at": "2026-11-22T00:00:00+00:00", "request": json.dumps({}), "response": json.dumps(response)},
        )
        conn.execute(
            text(
                "INSERT INTO assessment_outcomes (assessment_id, chosen_model, decided_by, reason, created_at)"
                " VALUES ('a1', 'hospital', 'ministry', 'kept', :at)"
            ),
            {"at": "2026-11-22T00:00:00+00:00"},
        )
    for target in ("head", "0001"):
        (command.upgrade if target == "head" else command.downgrade)(config, target)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT response FROM assessments WHERE id = 'a1'")).scalar_one()
            assert (json.loads(stored) if isinstance(stored, str) else stored) == response
            assert conn.execute(text("SELECT count(*) FROM assessment_outcomes")).scalar_one() == 1
    engine.dispose()
