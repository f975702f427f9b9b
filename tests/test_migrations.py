"""Alembic: upgrade to head, no drift between migrations and models, downgrade to base; both backends."""

from __future__ import annotations

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
