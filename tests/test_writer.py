"""The group-commit writer: rows are committed before their writers hear back, and one cancelled
request does not stop writing for the others. Both backends, real databases."""

from __future__ import annotations

import asyncio
import fcntl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from app.cli import migrate
from app.db import make_engine
from app.errors import ServiceUnavailable
from app.main import create_app
from app.services import writer as writer_module
from app.services.writer import AssessmentWriter, Checkpointer
from models import Assessment
from models.base import utcnow
from tests.conftest import make_settings
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


def test_a_response_given_as_utf8_bytes_is_stored_as_that_text(database_url):
    """The service's rows hold each answer as the UTF-8 bytes it sends; the column is text, on both
    backends, and reads back as the same JSON. Bytes that are not UTF-8 fail their commit alone."""
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    text = '{"rationale_ko":"병원중심형 \\\\ \\"%s\\" 1위","score":0.5}'
    good, bad, other = assessment_row(), assessment_row(), assessment_row()
    good["response"] = text.encode()
    bad["response"] = b'{"x":"\xff\xfe"}'
    writer.submit([good]).result(timeout=10)
    # SQLite: the bind's UnicodeDecodeError; PostgreSQL: convert_from's refusal (DataError).
    with pytest.raises(StatementError, match=r"(?i)utf-?8"):
        writer.submit([bad]).result(timeout=10)
    writer.submit([other]).result(timeout=10)
    column_type = "typeof(response)" if engine.dialect.name == "sqlite" else "pg_typeof(response)::text"
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            f"SELECT response, {column_type} FROM assessments WHERE id = '{good['id']}'"
        ).one()
        assert tuple(stored) == (text, "text")
        assert conn.scalar(select(Assessment.response).where(Assessment.id == good["id"])) == orjson.loads(
            text
        )
    assert stored_ids(engine, [bad["id"], other["id"]]) == {other["id"]}
    writer.close()
    engine.dispose()


def test_a_commit_wakes_its_event_loop_once(database_url):
    """The writes of one loop turn go out as one group and are committed together; the writer thread
    then wakes the loop once for all of them, not once per write."""
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    rows = [assessment_row() for _ in range(16)]

    async def many_at_once() -> list[object]:
        loop = asyncio.get_running_loop()
        woken: list[object] = []
        real = loop.call_soon_threadsafe

        def counted(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
            woken.append(callback)
            return real(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        await asyncio.gather(*(writer.write([row]) for row in rows))
        return woken

    woken = asyncio.run(many_at_once())
    assert stored_ids(engine, [r["id"] for r in rows]) == {r["id"] for r in rows}
    assert woken == [writer_module._settle]
    writer.close()
    engine.dispose()


def test_a_cancelled_write_is_dropped_and_the_writer_goes_on(database_url, monkeypatch):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    release = threading.Event()
    real_insert = writer._insert
    inside: list[int] = []

    def held_insert(rows: list[dict]) -> None:
        inside.append(len(rows))
        release.wait(10)  # the first commits wait, so the next writes queue behind them
        real_insert(rows)

    monkeypatch.setattr(writer, "_insert", held_insert)
    # A first write for each of the writer's threads (one unless configured otherwise), each in a turn of its own;
    # once every thread holds one, the next writes stay queued.
    firsts = [assessment_row() for _ in range(writer._thread_count)]
    cancelled, third, after = (assessment_row() for _ in range(3))

    async def scenario() -> None:
        held = []
        for k, row in enumerate(firsts, start=1):
            held.append(asyncio.ensure_future(writer.write([row])))
            for _ in range(500):  # until a thread holds it, so the next goes to another thread
                if len(inside) == k:
                    break
                await asyncio.sleep(0.02)
        assert inside == [1] * len(firsts)  # every thread holds one first write
        b = asyncio.ensure_future(writer.write([cancelled]))
        c = asyncio.ensure_future(writer.write([third]))
        await asyncio.sleep(0.1)
        b.cancel()
        release.set()
        await asyncio.wait_for(asyncio.gather(*held, c), 10)
        await asyncio.wait_for(writer.write([after]), 10)  # the writer still writes

    asyncio.run(scenario())
    ids = [r["id"] for r in (*firsts, cancelled, third, after)]
    assert stored_ids(engine, ids) == {r["id"] for r in (*firsts, third, after)}
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


def big_rows(n: int) -> list[dict]:
    return [{**assessment_row(), "response": '{"assessment_id":"' + "x" * 20_000 + '"}'} for _ in range(n)]


def sqlite_service_engine(tmp_path: Path) -> tuple[Path, Engine]:
    """A migrated SQLite file and an engine set up as the service's is: no checkpoints in commits."""
    path = tmp_path / "wal.db"
    migrate(f"sqlite:///{path}")
    return path, make_engine(f"sqlite:///{path}", wal_autocheckpoint=0)


def log_frames(engine: Engine) -> int:
    """Frames in SQLite's write-ahead log now (a passive checkpoint reports them, copying nothing new)."""
    with engine.connect() as connection:
        busy, frames, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and frames >= 0  # not a checkpoint that found another one running
    return int(frames)


def checkpoints_done(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once a checkpointer has finished a checkpoint, both passes."""
    done = threading.Event()
    real_checkpoint = Checkpointer.checkpoint

    def checkpoint(self: Checkpointer) -> None:
        real_checkpoint(self)
        done.set()

    monkeypatch.setattr(Checkpointer, "checkpoint", checkpoint)
    return done


def wait_for(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_large_commit_leaves_the_copying_of_the_log_to_the_checkpointer(tmp_path, monkeypatch):
    """The commit answers without copying the write-ahead log into the database file (SQLite's
    default would, in the commit, past 1,000 pages); the writer asks its checkpointer instead."""
    asked = threading.Event()
    monkeypatch.setattr(Checkpointer, "checkpoint", lambda self: asked.set())  # copies nothing here
    path, engine = sqlite_service_engine(tmp_path)
    size = path.stat().st_size
    writer = AssessmentWriter(engine)
    asyncio.run(writer.write(big_rows(300)))  # ~6 MB, ~1,500 pages, one commit
    assert path.stat().st_size == size
    assert Path(f"{path}-wal").stat().st_size > 5_000_000
    assert asked.wait(10)
    writer.close()
    engine.dispose()


def test_the_checkpointer_copies_the_log_and_the_next_commit_starts_it_over(tmp_path, monkeypatch):
    done = checkpoints_done(monkeypatch)
    path, engine = sqlite_service_engine(tmp_path)
    writer = AssessmentWriter(engine)
    rows = big_rows(300)
    asyncio.run(writer.write(rows))
    assert done.wait(10)
    assert path.stat().st_size > 5_000_000  # copied, with the writer open
    wal_size = Path(f"{path}-wal").stat().st_size
    asyncio.run(writer.write([assessment_row()]))
    assert log_frames(engine) < 10  # the log started over from its beginning instead of growing
    assert Path(f"{path}-wal").stat().st_size == wal_size
    writer.close()
    assert stored_ids(engine, [r["id"] for r in rows]) == {r["id"] for r in rows}
    engine.dispose()


def test_the_log_starts_over_although_another_writer_keeps_committing(tmp_path, monkeypatch):
    """The first passes of a checkpoint run while other processes' writers append; once the log is
    long enough, a last pass copies what they appended meanwhile under the writers' lock, so that
    the next commit starts the log over from its beginning. Without it the log file would grow by all
    that is written after the checkpoint. Here a thread with its own connection, queueing on the same
    lock, plays the other process (a second open of the lock file is a second flock holder, even in
    one process)."""
    monkeypatch.setattr(writer_module, "RESTART_LOG_FRAMES", 1000)  # the ~1,500 frames below pass it
    done = checkpoints_done(monkeypatch)
    path, engine = sqlite_service_engine(tmp_path)
    wal = Path(f"{path}-wal")
    writer = AssessmentWriter(engine)
    other_engine = make_engine(f"sqlite:///{path}", wal_autocheckpoint=0)
    stop = threading.Event()
    written: list[str] = []

    def keep_writing() -> None:
        while not stop.is_set():
            row = assessment_row()  # a few log pages a commit
            with writer._exclusive(), other_engine.begin() as connection:
                connection.execute(insert(Assessment.__table__), [row])
            written.append(row["id"])
            time.sleep(0.0005)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        assert wait_for(lambda: len(written) > 20)
        asyncio.run(writer.write(big_rows(300)))  # ~6 MB: a checkpoint follows
        assert done.wait(10)
        assert path.stat().st_size > 5_000_000  # copied
        size_then, count_then = wal.stat().st_size, len(written)
        assert wait_for(lambda: len(written) > count_then + 500)  # > 2 MB of log, were it appended
        assert wal.stat().st_size < size_then + 1_000_000
    finally:
        stop.set()
        thread.join(timeout=30)
    writer.close()
    assert stored_ids(engine, written) == set(written)
    other_engine.dispose()
    engine.dispose()


def held_by_another(lock_path: Path) -> bool:
    """Whether someone else holds the writers' lock now (a second open of the file asks for itself)."""
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def scripted_passes(monkeypatch, lock_path: Path, frames: list[int | None]) -> list[bool]:
    """Passes that report `frames` in turn as the log's length (after the last, the last again;
    None: busy, another checkpoint running), as the log grows under other processes' writers;
    returns, for each pass run, whether it ran under the writers' lock. What is decided from those
    figures is what is tested here; the copying itself is the other tests'."""
    locked: list[bool] = []

    def copy(self: Checkpointer) -> tuple[bool, int]:
        locked.append(held_by_another(lock_path))
        reported = frames[min(len(locked), len(frames)) - 1]
        return (True, -1) if reported is None else (False, reported)

    monkeypatch.setattr(Checkpointer, "_copy", copy)
    return locked


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        # 500 frames appended during the first pass, 5 during the second: the pass under the lock is
        # left only what was appended during a short pass (it holds up every writer of every
        # process, and ends with two fsyncs, as each pass does).
        ([1500, 2000, 2005, 2007], [False, False, False, True]),
        # Always much appended: the passes without the lock are bounded all the same.
        ([1500 + 500 * i for i in range(10)], [False] * writer_module.UNLOCKED_PASSES + [True]),
        # A log below RESTART_LOG_FRAMES is copied, and not started over: the lock is never taken.
        ([900, 980, 985], [False, False, False]),
        # Nothing appended during the first pass: it copied everything, and the next commit starts
        # the log over without anyone waiting.
        ([900, 900], [False, False]),
        # The log started over between passes: its 30 frames are all that was appended.
        ([1500, 30], [False, False]),
        # Another process's checkpoint is running: no more passes; the log was long enough.
        ([1500, None], [False, False, True]),
        # The same from the first pass: nothing is known of the log, and the lock is not taken.
        ([None], [False]),
    ],
)
def test_a_checkpoint_copies_without_the_lock_while_much_is_appended(tmp_path, monkeypatch, frames, expected):
    monkeypatch.setattr(writer_module, "RESTART_LOG_FRAMES", 1000)
    _, engine = sqlite_service_engine(tmp_path)
    lock_path = writer_module.sqlite_lock_path(engine)
    assert lock_path is not None
    locked = scripted_passes(monkeypatch, lock_path, frames)
    Checkpointer(engine, AssessmentWriter(engine)._exclusive).checkpoint()
    assert locked == expected
    engine.dispose()


def test_a_short_log_is_copied_without_ever_taking_the_lock(tmp_path):
    """Below RESTART_LOG_FRAMES the log is copied but not started over, and no writer waits: here
    the lock is held by someone else all along, and the checkpoint still finishes."""
    path, engine = sqlite_service_engine(tmp_path)
    lock_path = writer_module.sqlite_lock_path(engine)
    assert lock_path is not None
    with engine.begin() as connection:
        connection.execute(insert(writer_module.ASSESSMENTS), big_rows(300))  # ~1,500 frames < 8,192
    size = path.stat().st_size
    checkpointer = Checkpointer(engine, AssessmentWriter(engine)._exclusive)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        thread = threading.Thread(target=checkpointer.checkpoint, daemon=True)
        thread.start()
        thread.join(timeout=20)
        finished = not thread.is_alive()
        fcntl.flock(handle, fcntl.LOCK_UN)
    thread.join(timeout=20)
    assert finished
    assert path.stat().st_size > size + 5_000_000
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_service_leaves_checkpoints_to_its_checkpointer(settings):
    app = create_app(settings)
    with TestClient(app), app.state.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert app.state.writer._checkpointer is not None
    app.state.engine.dispose()


def test_a_checkpointer_that_cannot_start_does_not_fail_the_commit(tmp_path, monkeypatch):
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == "wal-checkpointer":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    _, engine = sqlite_service_engine(tmp_path)
    writer = AssessmentWriter(engine)
    rows = big_rows(300)  # enough to ask for a checkpoint
    asyncio.run(writer.write(rows))  # answered as committed, not failed
    writer.close()
    assert stored_ids(engine, [r["id"] for r in rows]) == {r["id"] for r in rows}
    engine.dispose()


def test_closing_the_writer_copies_the_log(tmp_path):
    path, engine = sqlite_service_engine(tmp_path)
    writer = AssessmentWriter(engine)
    size = path.stat().st_size
    asyncio.run(writer.write(big_rows(20)))  # ~400 KB: too little to ask for a checkpoint
    assert path.stat().st_size == size
    writer.close()
    assert path.stat().st_size > size + 400_000


def test_the_writes_of_one_event_loop_turn_are_committed_together(database_url, monkeypatch):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    commits: list[int] = []
    real_insert = writer._insert

    def counting_insert(rows: list[dict]) -> None:
        commits.append(len(rows))
        real_insert(rows)

    monkeypatch.setattr(writer, "_insert", counting_insert)
    rows = [assessment_row() for _ in range(6)]

    async def one_turn() -> None:
        await asyncio.gather(*(writer.write([row]) for row in rows))

    asyncio.run(one_turn())
    assert commits == [6]
    assert stored_ids(engine, [r["id"] for r in rows]) == {r["id"] for r in rows}
    writer.close()
    engine.dispose()


def test_a_turn_whose_rows_cannot_be_queued_fails_its_writes_instead_of_hanging(database_url, monkeypatch):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)

    def no_thread(group: list) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(writer, "_enqueue", no_thread)

    async def one_turn() -> None:
        await asyncio.wait_for(
            asyncio.gather(writer.write([assessment_row()]), writer.write([assessment_row()])), 5
        )

    with pytest.raises(RuntimeError, match="new thread"):
        asyncio.run(one_turn())
    engine.dispose()


def test_a_lock_that_cannot_be_taken_fails_the_waiting_writes_and_the_writer_goes_on(
    database_url, monkeypatch
):
    """The failure reaches every write of the batch, whether or not its rows were taken up yet, and
    the thread writes the next batch."""
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    real_exclusive = writer._exclusive
    failures = iter([OSError("lock file unavailable")])

    @contextmanager
    def failing_once() -> Iterator[None]:
        error = next(failures, None)
        if error is not None:
            raise error
        with real_exclusive():
            yield

    monkeypatch.setattr(writer, "_exclusive", failing_once)
    failed = [assessment_row() for _ in range(3)]

    async def one_turn() -> list[object]:
        writes = (writer.write([row]) for row in failed)
        return await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 10)

    outcomes = asyncio.run(one_turn())
    assert [type(o) for o in outcomes] == [OSError] * 3
    assert stored_ids(engine, [r["id"] for r in failed]) == set()
    after = assessment_row()
    asyncio.run(asyncio.wait_for(writer.write([after]), 10))
    assert stored_ids(engine, [after["id"]]) == {after["id"]}
    writer.close()
    engine.dispose()


def test_a_writer_thread_that_failed_to_start_is_started_on_the_next_write(database_url, monkeypatch):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    real_start = threading.Thread.start
    failures = iter([RuntimeError("can't start new thread")])

    def start_once_failing(self: threading.Thread) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start_once_failing)
    with pytest.raises(RuntimeError):
        writer.submit([assessment_row()])
    row = assessment_row()
    writer.submit([row]).result(timeout=10)  # would wait forever on a thread that never ran
    assert stored_ids(engine, [row["id"]]) == {row["id"]}
    writer.close()
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_two_writer_threads_commit_while_one_waits(database_url, monkeypatch):
    """With POSTGRESQL_WRITER_THREADS at 2, while one commit waits (here on a row lock; under load, on
    the server's log flush), the next group of rows is committed by the other thread."""
    monkeypatch.setattr(writer_module, "POSTGRESQL_WRITER_THREADS", 2)
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    blocked_row, free_row = assessment_row(), assessment_row()
    with engine.connect() as holder:
        holder.execute(insert(Assessment.__table__), [blocked_row])  # uncommitted: its id is locked
        waiting = writer.submit([blocked_row])  # waits on that lock
        with engine.connect() as observer:  # until the server shows the writer waiting on it
            assert wait_for(
                lambda: (
                    observer.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE NOT granted").scalar() > 0
                )
            )
        writer.submit([free_row]).result(timeout=10)  # one writer thread would wait with it
        assert not waiting.done()
        holder.rollback()
    waiting.result(timeout=10)
    assert stored_ids(engine, [blocked_row["id"], free_row["id"]]) == {blocked_row["id"], free_row["id"]}
    writer.close()
    engine.dispose()


@contextmanager
def inserts_sent(engine: Engine) -> Iterator[list[tuple[str, int]]]:
    """How each INSERT was sent: ("multirow", rows in its VALUES list) for `MultiRowInsert`'s own
    statement (positional parameters), ("execute" or "executemany", 1) for SQLAlchemy's insert
    (named parameters)."""
    sent: list[tuple[str, int]] = []

    def record(_conn, _cursor, statement, _parameters, _context, executemany) -> None:
        if statement.startswith("INSERT INTO assessments"):
            how = "executemany" if executemany else "execute" if "%(" in statement else "multirow"
            sent.append((how, statement.count("), (") + 1))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def stored_text(engine: Engine, ids: list[str]) -> list[str]:
    """PostgreSQL: the rows of `ids`, in that order, each as the server's JSON text of every column
    but the id (times and JSON as stored, the response verbatim)."""
    with engine.connect() as conn:
        found = dict(
            conn.exec_driver_sql(
                "SELECT a.id, (to_jsonb(a) - 'id')::text FROM assessments a WHERE a.id = ANY(%s)", (ids,)
            ).all()
        )
    return [found[i] for i in ids]


def varied_rows() -> list[dict]:
    rows = [assessment_row() for _ in range(7)]
    rows[1].update(country_iso3="KAZ", model_version="clf-1", data_version="wb-2026", method="hybrid")
    rows[2].update(request={"profile": {"rd_intensity_pct": 0.25, "note": '생산중심형 \\ "%s"'}, "n": None})
    rows[3].update(response='{"rationale":"연구중심형 % %s %(x)s \\u0000-free"}')
    rows[4].update(weight_profile_version=2**31 - 1, recommended_model="composite")
    rows[5].update(
        created_at=datetime(2026, 12, 6, 9, 30, 0, 123456, tzinfo=timezone(timedelta(hours=9))),
        response={"given": "as a dict", "n": [1, 2.5, None]},  # encoded by the column's type
        request=["a", "list"],
    )
    rows[6].update(response='{"rationale_ko":"복합형 % %s 1위"}'.encode())  # as the service's rows hold it
    return rows


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_commit_is_one_multi_row_insert_that_stores_what_sqlalchemy_stores(database_url):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    ours, theirs = varied_rows(), varied_rows()
    for mine, other in zip(ours, theirs, strict=True):
        other.update({k: v for k, v in mine.items() if k != "id"})  # the same row under another id
    with inserts_sent(engine) as sent:
        writer.submit(ours).result(timeout=10)
    assert sent == [("multirow", len(ours))]  # one statement, every row in its VALUES list
    with engine.begin() as conn:
        conn.execute(insert(Assessment.__table__), theirs)  # SQLAlchemy's own insert
    assert stored_text(engine, [r["id"] for r in ours]) == stored_text(engine, [r["id"] for r in theirs])

    naive = {**assessment_row(), "created_at": datetime(2026, 12, 6, 9, 30)}  # refused, as SQLAlchemy does
    with pytest.raises(Exception, match="naive datetime"):
        writer.submit([naive]).result(timeout=10)
    assert stored_ids(engine, [naive["id"]]) == set()
    writer.close()
    assert engine.pool.checkedout() == 0  # the writer threads gave their connections back
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_services_matches_are_stored_by_one_statement_each(settings):
    """The rows a match makes have every column, so they take the one-statement path."""
    app = create_app(settings)
    with TestClient(app) as c, inserts_sent(app.state.engine) as sent:
        for rd_level in ("low", "high"):
            assert c.post("/v1/match", json=match_body(rd_level=rd_level)).status_code == 201
    assert sent == [("multirow", 1), ("multirow", 1)]
    app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_large_commit_is_one_transaction_of_multi_row_inserts(database_url):
    """A batch-sized commit goes as one statement every MULTIROW_MAX_ROWS rows, in one transaction
    (not by SQLAlchemy's insert), and stores what SQLAlchemy's insert stores."""
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    ours = [row for _ in range(30) for row in varied_rows()]  # 210 rows: statements of 100, 100, 10
    theirs = [{**row, "id": uuid.uuid4().hex} for row in ours]
    with inserts_sent(engine) as sent:
        writer.submit(ours).result(timeout=10)
    assert sent == []  # not through SQLAlchemy
    with engine.begin() as conn:
        conn.execute(insert(Assessment.__table__), theirs)
    assert stored_text(engine, [r["id"] for r in ours]) == stored_text(engine, [r["id"] for r in theirs])
    writer.close()
    assert engine.pool.checkedout() == 0
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_large_commit_that_fails_in_its_last_statement_stores_nothing(database_url):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    taken = assessment_row()
    writer.submit([taken]).result(timeout=10)
    large = [assessment_row() for _ in range(2 * writer_module.MULTIROW_MAX_ROWS + 5)]
    large[-1]["id"] = taken["id"]  # a duplicate in the third statement, after two went through
    with pytest.raises(IntegrityError, match="duplicate key"):  # SQLAlchemy's, as for one statement
        writer.submit(large).result(timeout=10)
    assert stored_ids(engine, [r["id"] for r in large[:-1]]) == set()
    after = assessment_row()
    writer.submit([after]).result(timeout=10)  # the writer goes on, on a new connection
    assert stored_ids(engine, [after["id"]]) == {after["id"]}
    writer.close()
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_an_incomplete_commit_goes_by_sqlalchemys_insert(database_url):
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    incomplete = assessment_row()
    del incomplete["created_at"]  # SQLAlchemy applies the column's default
    with inserts_sent(engine) as sent:
        writer.submit([incomplete]).result(timeout=10)
    assert sent == [("execute", 1)]
    with engine.connect() as conn:
        assert conn.scalar(select(Assessment.created_at).where(Assessment.id == incomplete["id"])) is not None
    writer.close()
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_multi_row_insert_stores_all_of_its_rows_or_none(database_url):
    """A row that breaks the statement (a duplicate id) fails its own request only: the group's
    statement stores nothing, and the rows are committed one request at a time."""
    engine = make_engine(database_url)
    writer = AssessmentWriter(engine)
    taken = assessment_row()
    writer.submit([taken]).result(timeout=10)
    fine, duplicate = assessment_row(), {**assessment_row(), "id": taken["id"]}

    async def together() -> list[BaseException | None]:
        return await asyncio.gather(writer.write([fine]), writer.write([duplicate]), return_exceptions=True)

    with inserts_sent(engine) as sent:
        ok, failed = asyncio.run(together())
    assert ok is None and failed is not None
    assert ("multirow", 2) in sent  # the group's statement, which failed as a whole
    assert stored_ids(engine, [fine["id"]]) == {fine["id"]}
    writer.close()
    engine.dispose()


def terminate_other_backends(engine: Engine) -> int:
    """Close every other server connection to the database, as a restart of the server would (waiting
    up to 5 s for each to end)."""
    with engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar_one()
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_an_idle_writer_gives_its_connection_back(database_url, monkeypatch):
    """A writer thread keeps its connection between commits, and gives it back to the pool once it
    has been idle for KEPT_IDLE_SECONDS; the next commit checks out one that the pool's ping has
    checked, so a server restart meanwhile costs nothing."""
    monkeypatch.setattr(writer_module, "POSTGRESQL_WRITER_THREADS", 1)
    monkeypatch.setattr(writer_module, "KEPT_IDLE_SECONDS", 0.2)
    engine = make_engine(database_url)
    checker = make_engine(database_url)
    writer = AssessmentWriter(engine)
    writer.submit([assessment_row()]).result(timeout=10)
    assert wait_for(lambda: engine.pool.checkedout() == 0, seconds=5)
    assert terminate_other_backends(checker) >= 1  # the pool's idle connection
    after_restart = assessment_row()
    writer.submit([after_restart]).result(timeout=10)
    assert stored_ids(checker, [after_restart["id"]]) == {after_restart["id"]}
    writer.close()
    engine.dispose()
    checker.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_kept_connection_the_server_closed_fails_one_commit_then_is_replaced(
    database_url, monkeypatch
):
    """A connection in use is not pinged: the commit made on it after a restart fails (503 upstream,
    nothing stored), it is given up, and the next commit is made on a new one."""
    monkeypatch.setattr(writer_module, "POSTGRESQL_WRITER_THREADS", 1)
    monkeypatch.setattr(writer_module, "KEPT_IDLE_SECONDS", 3600.0)
    engine = make_engine(database_url)
    checker = make_engine(database_url)
    writer = AssessmentWriter(engine)
    writer.submit([assessment_row()]).result(timeout=10)
    assert engine.pool.checkedout() == 1  # kept by the writer thread
    assert terminate_other_backends(checker) >= 1
    lost = assessment_row()
    with pytest.raises(OperationalError):
        writer.submit([lost]).result(timeout=10)
    recovered = assessment_row()
    writer.submit([recovered]).result(timeout=10)
    assert stored_ids(checker, [lost["id"], recovered["id"]]) == {recovered["id"]}
    writer.close()
    engine.dispose()
    checker.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_large_commit_on_a_connection_the_server_closed_fails_as_operational(
    database_url, monkeypatch
):
    """The pipelined path raises SQLAlchemy's OperationalError (503 upstream) for a lost server, as
    one statement does, stores nothing, and the next large commit is made on a new connection."""
    monkeypatch.setattr(writer_module, "KEPT_IDLE_SECONDS", 3600.0)
    engine = make_engine(database_url)
    checker = make_engine(database_url)
    writer = AssessmentWriter(engine)
    writer.submit([assessment_row()]).result(timeout=10)
    assert terminate_other_backends(checker) >= 1
    lost = [assessment_row() for _ in range(writer_module.MULTIROW_MAX_ROWS + 50)]
    with pytest.raises(OperationalError):
        writer.submit(lost).result(timeout=10)
    recovered = [assessment_row() for _ in range(writer_module.MULTIROW_MAX_ROWS + 50)]
    writer.submit(recovered).result(timeout=10)
    assert stored_ids(checker, [r["id"] for r in lost + recovered]) == {r["id"] for r in recovered}
    writer.close()
    assert engine.pool.checkedout() == 0
    engine.dispose()
    checker.dispose()


def test_a_write_that_cannot_take_the_lock_in_time_is_503_and_never_stored(tmp_path):
    """Another process holds the writers' lock and does not let go (frozen, stopped in a debugger):
    the write answers 503 after its wait, its row is not written when the lock frees, and the writer
    goes on writing. A second open of the lock file plays that process."""
    _, engine = sqlite_service_engine(tmp_path)
    writer = AssessmentWriter(engine, wait_seconds=0.5)
    stuck, after = assessment_row(), assessment_row()
    with writer_module.sqlite_lock_path(engine).open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="nothing was stored") as refused:
            asyncio.run(writer.write([stuck]))
        assert 0.5 <= time.monotonic() - started < 5
        assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "5"}
        fcntl.flock(other, fcntl.LOCK_UN)
    asyncio.run(asyncio.wait_for(writer.write([after]), 10))
    assert stored_ids(engine, [stuck["id"], after["id"]]) == {after["id"]}
    writer.close()
    engine.dispose()


def test_a_match_held_up_by_the_lock_is_503_problem_json_and_the_next_one_is_stored(tmp_path, model_dir):
    path = tmp_path / "held.db"
    migrate(f"sqlite:///{path}")
    app = create_app(make_settings(f"sqlite:///{path}", model_dir, db_write_wait_seconds=0.5))
    with TestClient(app, raise_server_exceptions=False) as client:
        with writer_module.sqlite_lock_path(app.state.engine).open("a") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            held = client.post("/v1/match", json=match_body())
            fcntl.flock(other, fcntl.LOCK_UN)
        assert held.status_code == 503
        assert held.headers["content-type"] == "application/problem+json"
        assert held.headers["retry-after"] == "5" and "nothing was stored" in held.json()["detail"]
        ok = client.post("/v1/match", json=match_body())
        assert ok.status_code == 201
        assert client.get(f"/v1/assessments/{ok.json()['assessment_id']}").status_code == 200
    with app.state.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Assessment)) == 1
    app.state.engine.dispose()
