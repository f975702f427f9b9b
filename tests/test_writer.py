"""The group-commit writer: rows are committed before their writers hear back, and one cancelled
request does not stop writing for the others. Both backends, real databases."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.cli import migrate
from app.db import WAL_AUTOCHECKPOINT_PAGES, WalCheckpointer, make_engine
from app.errors import ServiceUnavailable
from app.main import create_app
from app.services.writer import AssessmentWriter
from models import Assessment
from models.base import utcnow
from tests.factories import match_body


def assessment_row() -> dict:
    return {
        "id": uuid.uuid4().hex,
        "created_at": utcnow(),
        "method": "rules",
        "country_iso3": None,
        "recommended_model": "hospital",
        "weight_profile_name": "default",
        "weight_profile_version": 1,
        "engine_version": "test",
        "model_version": None,
        "data_version": None,
        "request": {},
        "response": '{"assessment_id":"x"}',
    }


def stored_ids(engine, ids: list[str]) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(Assessment.id).where(Assessment.id.in_(ids))))


def test_rows_are_committed_when_write_returns(database_url):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    rows = [assessment_row() for _ in range(20)]

    async def many_at_once() -> None:
        await asyncio.gather(*(writer.write([row]) for row in rows))

    asyncio.run(many_at_once())
    assert stored_ids(engine, [r["id"] for r in rows]) == {r["id"] for r in rows}
    writer.close()
    engine.dispose()


def test_a_cancelled_write_is_dropped_and_the_writer_goes_on(database_url, monkeypatch):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    release = threading.Event()
    real_insert = writer._insert

    def held_insert(rows: list[dict]) -> None:
        release.wait(10)  # the first commit waits, so the next writes queue behind it
        real_insert(rows)

    monkeypatch.setattr(writer, "_insert", held_insert)
    first, cancelled, third, after = (assessment_row() for _ in range(4))

    async def scenario() -> None:
        a = asyncio.ensure_future(writer.write([first]))
        await asyncio.sleep(0.1)
        b = asyncio.ensure_future(writer.write([cancelled]))
        c = asyncio.ensure_future(writer.write([third]))
        await asyncio.sleep(0.1)
        b.cancel()
        release.set()
        await asyncio.wait_for(asyncio.gather(a, c), 10)
        await asyncio.wait_for(writer.write([after]), 10)  # the writer still writes

    asyncio.run(scenario())
    ids = [r["id"] for r in (first, cancelled, third, after)]
    assert stored_ids(engine, ids) == {first["id"], third["id"], after["id"]}
    writer.close()
    engine.dispose()


def test_writes_after_close_are_refused_with_503(database_url):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    asyncio.run(writer.write([assessment_row()]))
    writer.close()
    with pytest.raises(ServiceUnavailable) as refused:
        writer.submit([assessment_row()])
    assert refused.value.status == 503
    engine.dispose()


def test_an_app_started_again_after_shutdown_writes_again(settings):
    app = create_app(settings)
    for _ in range(2):  # lifespan: start, shut down, start again
        with TestClient(app) as client:
            assert client.post("/v1/match", json=match_body()).status_code == 201
    app.state.engine.dispose()


def checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wal-checkpointer"]


def test_sqlite_commits_leave_the_log_to_the_background_checkpointer(tmp_path):
    """A commit past 1,000 log pages (SQLite's default limit) does not copy the write-ahead log into
    the database file; the checkpointer's pass does, every frame."""
    path = tmp_path / "wal.db"
    migrate(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT_PAGES
    writer = AssessmentWriter(engine)
    big = {**assessment_row(), "response": '{"assessment_id":"' + "x" * 20_000 + '"}'}
    asyncio.run(writer.write([{**big, "id": uuid.uuid4().hex} for _ in range(300)]))  # ~6 MB
    size_before = path.stat().st_size
    busy, frames, copied = WalCheckpointer(engine).checkpoint()
    assert busy == 0 and frames > 1000 and copied == frames
    assert path.stat().st_size > size_before + 5_000_000  # the rows reached the file only now
    writer.close()
    engine.dispose()


def test_the_checkpointer_runs_while_a_sqlite_app_runs_and_only_then(settings):
    app = create_app(settings)
    with TestClient(app):
        running = checkpointer_threads()
        if settings.database_url.startswith("sqlite"):
            assert len(running) == 1
        else:
            assert running == []  # PostgreSQL checkpoints by itself
    assert checkpointer_threads() == []
    app.state.engine.dispose()
