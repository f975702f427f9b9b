"""Shared fixtures: a migrated database per backend (SQLite file and a fresh PostgreSQL database).

Every test that takes `database_url`, `session` or `client` runs once per backend. The PostgreSQL
database is created for this run on 127.0.0.1:5432 and dropped afterwards; where no server answers,
those tests skip with the reason, and fail under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.cli import migrate
from app.config import PROJECT_ROOT, Settings
from app.db import make_engine
from app.main import create_app
from app.services import reference

PG_HOST = os.environ.get("TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_DSN = f"host={PG_HOST} port=5432 user=postgres dbname=postgres connect_timeout=3"
BACKENDS = ["sqlite", "postgresql"]


def pg_reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(PG_ADMIN_DSN):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL on {PG_HOST}:5432 does not answer: {exc}".strip()


def require_pg() -> None:
    """Skip the calling test where PostgreSQL does not answer; under CI (`CI` set), fail it instead:
    there the server is part of the machine, and a run without it must not pass."""
    reason = pg_reachable()
    if reason:
        skip_unless_ci(reason)


def skip_unless_ci(reason: str) -> None:
    """Skip with `reason`, except under CI, where what is missing is a fault of the set-up: fail."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set: this is a failure, not a skip)")
    pytest.skip(reason)


def create_pg_database() -> tuple[str, str]:
    """A fresh, empty database; returns (name, SQLAlchemy URL)."""
    name = f"clustermatch_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_database_url(backend: str, tmp_dir: os.PathLike[str]) -> Iterator[str]:
    """Yield the URL of an empty database of `backend`, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{os.fspath(tmp_dir)}/clustermatch-{uuid.uuid4().hex[:8]}.db"
        return
    require_pg()
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head with the shipped reference data loaded, once per backend."""
    gen = empty_database_url(request.param, tmp_path_factory.mktemp(request.param))
    url = next(gen)
    migrate(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine)() as session, session.begin():
        reference.load_snapshot(session, path=PROJECT_ROOT / "data" / reference.SNAPSHOT_FILE)
    engine.dispose()
    yield url
    next(gen, None)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("models"))


def make_settings(database_url: str, model_dir: str, **overrides: object) -> Settings:
    return Settings(database_url=database_url, model_dir=model_dir, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, model_dir: str) -> Settings:
    return make_settings(database_url, model_dir)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.engine.dispose()


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    with sessionmaker(bind=engine, expire_on_commit=False)() as s:
        yield s
        s.rollback()
    engine.dispose()
