"""Group commit for assessments: a writer thread a process writes the rows of concurrent matches
together.

A match is answered only after its row is committed, so an id a caller receives is durable. Under
load many matches wait at the same moment; the writer takes every row queued by then and commits
them in one transaction, so sixteen concurrent matches cost one commit instead of sixteen (and, on
SQLite, one turn of the single-writer lock instead of sixteen waits in its sleeping busy handler).
On PostgreSQL too, one thread: the matches that come while a commit waits for the server's log flush
go together in the next. (With two threads, one committing while the other waits, a median of 6 %
fewer distinct matches a second in 8 runs each, though the ranges overlapped; bench/RESULTS.md.)

On SQLite the writers of several processes (uvicorn workers) also queue on an exclusive `flock` of
a file beside the database, which blocks and wakes in order instead of polling with back-off. That
wait has no end of its own, so a request waits at most WRITE_WAIT_SECONDS for its rows to be taken
up; then it answers 503, and its rows are dropped, never written late.

SQLite copies its write-ahead log back into the database file (a checkpoint, with two fsyncs) inside
whichever commit takes the log past 1,000 pages, by default. Under load that is every ~400 matches,
and each such commit held the write lock of every process for 15-50 ms instead of 0.5 ms. The
service's connections have that turned off (`make_engine(wal_autocheckpoint=0)`), and a
`Checkpointer` thread copies the log instead, after every ~4 MB of answers this process wrote,
without the writers' lock, while they go on appending (SQLite allows that): pass after pass (4 at
most), until a pass finds little appended since the one before. The log file then keeps growing, as
a writer can start it over only once all of it is copied with no one appending meanwhile. So once it
is ~32 MB long, a last pass copies what was appended during the previous one under the lock (usually
a few pages), and the next commit starts the log over from its beginning; the `-wal` file stays at
about that size. That pass holds up every writer of every process, and ends with two fsyncs, as each
pass does. When it followed every checkpoint, after a single pass without the lock, it held the
lock for 4-25 ms, and a commit's wait for the lock at the 99th percentile was 18.6-19.8 ms under
load; with these rules it was 8.6-12 ms. Nothing is lost either way: the log is durable on its own.

On PostgreSQL a commit of up to MULTIROW_MAX_ROWS rows is one INSERT with a VALUES list per row, on
a connection each writer thread keeps in autocommit mode (`MultiRowInsert`): one statement and one
round trip, where SQLAlchemy's insert took a pool checkout with its ping, an INSERT a row (psycopg's
executemany) and a COMMIT. One statement is one transaction, so its rows are stored all together or
not at all, as before. A larger commit (a batch request's 1,000 rows) is one such statement every
MULTIROW_MAX_ROWS rows, in one transaction, sent without waiting for each answer (psycopg's
pipeline mode): a median of 46 ms for 1,000 real answers, where SQLAlchemy's executemany took 62 ms.
The price: a connection used within the last KEPT_IDLE_SECONDS is not pinged, so after a restart of
the server the next commit of each writer thread fails (503, nothing stored) and gives its
connection up; the one after it is made on a new connection. Retrying is not safe: a commit that
failed on its way back may have been stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.exc import DBAPIError, OperationalError

from app.db import is_sqlite_file
from app.errors import ServiceUnavailable
from models import Assessment
from models.base import JSONText

log = logging.getLogger("clustermatch.writer")

ASSESSMENTS = cast(Table, Assessment.__table__)
MAX_ROWS_PER_COMMIT = 2000  # a full batch request (1,000 items) plus whatever single matches wait
# PostgreSQL: writer threads a process. With two, one commits while the other waits for the server's
# log flush (an fsync). On two cores under load, one thread gave a median of 6 % more distinct
# matches a second in 8 runs each (the ranges overlap), p99 13.7 ms against 15.2 (bench/RESULTS.md).
# SQLite has one writer at a time, so one thread.
POSTGRESQL_WRITER_THREADS = 1
# SQLite: a checkpoint follows every this many bytes of answers a process commits (~4 MB, about
# SQLite's own 1,000 log pages, ~400 matches).
CHECKPOINT_AFTER_BYTES = 4_000_000
# A checkpoint's passes without the writers' lock go on while a pass finds at least this many log
# frames appended since the one before (~256 KB of 4 KB pages), up to UNLOCKED_PASSES.
FEW_FRAMES = 64
UNLOCKED_PASSES = 4
# Once the log holds this many frames (~32 MB), a last pass runs under the lock, so that it starts
# over; until then it grows, and the passes without the lock keep the database file nearly current.
RESTART_LOG_FRAMES = 8192
# A request waits this long for its rows to be taken up for committing, then answers 503 and its rows
# are dropped. SQLite's own busy timeout is as long; the writers' file lock has none, and a process
# that stops while holding it (a frozen container, a debugger) would otherwise hold up every write.
WRITE_WAIT_SECONDS = 30.0
# PostgreSQL: commits of up to this many rows go as one multi-row INSERT (`MultiRowInsert`); larger
# ones (batch requests) as one such INSERT every this many rows, in a transaction. (12 columns a row:
# 1,200 parameters a statement, far below PostgreSQL's 65,535. One statement of all 1,000 rows of a
# batch took 102-232 ms, against a median of 46 ms for ten of 100 in one transaction.)
MULTIROW_MAX_ROWS = 100
# A kept connection unused this long is given back to the pool (by its idle writer thread, or at its
# next use); the next commit checks out another, whose ping finds a connection the server closed
# meanwhile (a restart) before an INSERT fails on it.
KEPT_IDLE_SECONDS = 1.0


@dataclass
class _Pending:
    rows: list[dict[str, Any]]
    # The rows' state, safe across threads: cancel() succeeds only before a writer thread takes them
    # up; then the outcome of their commit. `submit` hands it out as is.
    done: Future[None] = field(default_factory=Future)
    gave_up: bool = False  # not taken up within the writer's wait: cancelled, never written
    # `write`'s own future on its event loop, given `done`'s outcome there, together with the other
    # rows of the same commit and loop (`_announce`).
    waiter: asyncio.Future[None] | None = None


def _give_up(pending: _Pending) -> None:
    if pending.done.cancel():  # False once a writer thread has taken the rows up
        pending.gave_up = True
        if pending.waiter is not None:
            pending.waiter.cancel()


def _fail(done: Future[None], exc: BaseException) -> None:
    """From a writer thread: fail rows that were not committed, taken up or not yet (the lock could
    not be had). Rows whose request gave up or went away meanwhile stay cancelled: a pending future
    is claimed first, atomically, as `_take_and_commit` does."""
    if not done.done() and (done.running() or done.set_running_or_notify_cancel()):
        done.set_exception(exc)


def _settle(group: list[_Pending]) -> None:
    """On a waiter's loop: give each waiter its rows' outcome (one call for a commit's rows)."""
    for pending in group:
        waiter = pending.waiter
        if waiter is None or waiter.done():  # its request gave up or went away meanwhile
            continue
        if pending.done.cancelled():
            waiter.cancel()
        elif (exc := pending.done.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(None)


def _announce(batch: list[_Pending]) -> None:
    """From a writer thread: wake each event loop once for the finished rows it waits on. (A waiter
    per request, woken one by one, cost a thread-safe call, and so a write to the loop's wake-up
    pipe, for every match.)"""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for pending in batch:
        if pending.waiter is not None and pending.done.done():
            by_loop.setdefault(pending.waiter.get_loop(), []).append(pending)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there any more
            loop.call_soon_threadsafe(_settle, group)


def sqlite_lock_path(engine: Engine) -> Path | None:
    """The lock file beside a SQLite database file; None for PostgreSQL or an in-memory SQLite."""
    if not is_sqlite_file(engine):
        return None
    database = Path(str(engine.url.database))
    return database.with_name(database.name + ".write-lock")


class AssessmentWriter:
    """Inserts assessment rows for the whole process; `write` returns once they are committed."""

    def __init__(self, engine: Engine, *, wait_seconds: float = WRITE_WAIT_SECONDS) -> None:
        self._engine = engine
        self._wait_seconds = wait_seconds
        self._lock_path = sqlite_lock_path(engine)
        self._checkpointer = Checkpointer(engine, self._exclusive) if self._lock_path else None
        self._unchecked_bytes = 0  # of answers committed since the last checkpoint was asked for
        # Queued together: the writes of one event-loop turn, or one `submit`.
        self._queue: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._thread_count = 1 if engine.dialect.name == "sqlite" else POSTGRESQL_WRITER_THREADS
        self._multirow = MultiRowInsert(engine) if engine.dialect.name == "postgresql" else None
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._closed = False
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Pending]] = (
            weakref.WeakKeyDictionary()
        )

    async def write(self, rows: list[dict[str, Any]]) -> None:
        """Queue `rows` and wait, without blocking the event loop, until they are committed; 503,
        with nothing stored, when no writer thread takes them up within the writer's wait.

        The writes made in one turn of the event loop are queued together when it ends, so the
        thread finds them all at once: queued one by one, the thread would wake at the first and
        commit it alone while the loop was still answering the others (a commit for every 1.6
        matches on PostgreSQL under load, before this).
        """
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = []
            loop.call_soon(self._end_turn, loop)
        waiter: asyncio.Future[None] = loop.create_future()
        pending = _Pending(rows, waiter=waiter)
        turn.append(pending)
        # A timer rather than asyncio.wait, which costs three times as much (~35 us here), on every match.
        timer = loop.call_later(self._wait_seconds, _give_up, pending)
        try:
            await waiter
        except asyncio.CancelledError:
            if pending.gave_up:
                raise ServiceUnavailable(
                    f"the assessment could not be stored within {self._wait_seconds:g} s (the "
                    "database's write lock is held); nothing was stored, retry shortly",
                    headers={"Retry-After": "5"},
                ) from None
            pending.done.cancel()  # the caller went away: its rows are dropped unless already taken up
            raise
        finally:
            timer.cancel()

    def _end_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        group = self._turns.pop(loop, [])
        try:
            self._enqueue(group)
        except Exception as exc:  # shutting down (503), or no thread could start: fail, never hang
            for pending in group:
                if pending.done.set_running_or_notify_cancel():
                    pending.done.set_exception(exc)
            _settle(group)  # on this loop already

    def submit(self, rows: list[dict[str, Any]]) -> Future[None]:
        """Queue `rows` at once (from any thread); the future is done when they are committed."""
        pending = _Pending(rows)
        self._enqueue([pending])
        return pending.done

    def _enqueue(self, group: list[_Pending]) -> None:
        with self._start_lock:
            if self._closed:
                raise ServiceUnavailable("the service is shutting down; send the request again")
            # A thread is kept only once started, so a failed start is tried again at the next write.
            while len(self._threads) < self._thread_count:
                thread = threading.Thread(target=self._run, name="assessment-writer", daemon=True)
                try:
                    thread.start()
                except RuntimeError:
                    if not self._threads:
                        raise
                    log.warning("assessment writer running with %d threads", len(self._threads))
                    break
                self._threads.append(thread)
            self._queue.put(group)

    def reopen(self) -> None:
        """Accept writes again (an app started after it was shut down, as tests do)."""
        with self._start_lock:
            self._closed = False

    def close(self) -> None:
        """Commit what is queued, then stop the threads (graceful shutdown); later writes get 503."""
        with self._start_lock:
            self._closed = True
            threads, self._threads = self._threads, []  # a reopened writer starts new threads
            for _ in threads:
                self._queue.put(None)  # each thread stops at the first it takes
        deadline = time.monotonic() + 30
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._checkpointer is not None:
            self._checkpointer.close()

    def _run(self) -> None:
        try:
            self._take_and_commit()
        finally:
            if self._multirow is not None:
                self._multirow.release()

    def _take_and_commit(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=KEPT_IDLE_SECONDS if self._multirow is not None else None)
            except queue.Empty:  # idle: the kept connection goes back to the pool meanwhile
                cast(MultiRowInsert, self._multirow).release()
                first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            count = sum(len(pending.rows) for pending in batch)
            while count < MAX_ROWS_PER_COMMIT:
                try:
                    group = self._queue.get_nowait()
                except queue.Empty:
                    break
                if group is None:
                    stopping = True
                    break
                batch.extend(group)
                count += sum(len(pending.rows) for pending in group)
            try:
                with self._exclusive():
                    # A request that stopped waiting (client gone, shutdown, WRITE_WAIT_SECONDS) before
                    # the lock was ours was never answered: its rows are dropped. The others can no
                    # longer be cancelled, so their results can be set.
                    batch = [pending for pending in batch if pending.done.set_running_or_notify_cancel()]
                    self._commit(batch)
            except Exception as exc:  # keep writing for everyone else; these requests fail
                log.exception("assessment writer failed")
                for pending in batch:
                    _fail(pending.done, exc)
            finally:
                _announce(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            self._insert([row for pending in batch for row in pending.rows])
        except OperationalError as exc:  # the database is down: every waiting request answers 503
            for pending in batch:
                pending.done.set_exception(exc)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].done.set_exception(exc)
                return
            # One request's rows broke the transaction; the others must not fail with it.
            log.warning("group commit of %d requests failed (%s); committing one by one", len(batch), exc)
            for pending in batch:
                self._commit([pending])
        else:
            for pending in batch:
                pending.done.set_result(None)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._multirow is not None and self._multirow.insert(rows):
            return
        with self._engine.connect() as connection:  # under the writers' lock (`_take_and_commit`)
            connection.execute(insert(ASSESSMENTS), rows)
            connection.commit()
        if self._checkpointer is not None:
            self._unchecked_bytes += sum(len(r["response"]) for r in rows)  # str or UTF-8 bytes: near enough
            if self._unchecked_bytes >= CHECKPOINT_AFTER_BYTES:
                self._unchecked_bytes = 0
                self._checkpointer.request()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._lock_path is None:
            yield
            return
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class MultiRowInsert:
    """PostgreSQL: inserts assessment rows MULTIROW_MAX_ROWS at most a statement, on a connection
    kept by each writer thread in autocommit mode (several statements: in one transaction).

    The statement's text is built once for each number of rows; the values go through the columns'
    own bind processing (the JSONB request, the UTC time), as with SQLAlchemy's insert. Unlike
    SQLAlchemy's statement, this one casts no parameter to its column's type, so PostgreSQL converts
    each value by its column; the rows the service makes hold values of those types (the tests
    compare the stored text of both). A `JSONText` column (the response) is sent as UTF-8 bytes and
    stored as text by `convert_from`, which also checks the encoding: the service's rows hold the
    bytes of the answer already, so the ~9 KB of JSON is neither decoded nor encoded again. The kept
    connection is given up after any error, and after KEPT_IDLE_SECONDS unused, so the next insert
    checks out one that the pool has pinged.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect
        columns = list(ASSESSMENTS.columns)
        self._names = frozenset(c.name for c in columns)
        self._columns = [
            (c.name, c.type.dialect_impl(dialect).bind_processor(dialect), isinstance(c.type, JSONText))
            for c in columns
        ]
        quote = dialect.identifier_preparer
        self._head = (
            f"INSERT INTO {quote.format_table(ASSESSMENTS)} "
            f"({', '.join(quote.format_column(c) for c in columns)}) VALUES "
        )
        placeholders = ["convert_from(%s, 'UTF8')" if utf8 else "%s" for _, _, utf8 in self._columns]
        self._one_row = "(" + ", ".join(placeholders) + ")"
        self._statements: dict[int, str] = {}
        self._local = threading.local()  # this thread's (connection, monotonic time of its last use)

    def insert(self, rows: list[dict[str, Any]]) -> bool:
        """Insert and commit `rows`: up to MULTIROW_MAX_ROWS as one statement; more (a batch
        request's) as one such statement every MULTIROW_MAX_ROWS rows, in one transaction, sent in
        psycopg's pipeline mode (each statement goes out without waiting for the one before to be
        answered). False, with nothing done, when one row's keys are not exactly the table's
        columns (a missing column's default is SQLAlchemy's to apply)."""
        if any(row.keys() != self._names for row in rows):
            return False
        statements = [
            (self._statement(len(chunk)), self._params(chunk))
            for chunk in (rows[k : k + MULTIROW_MAX_ROWS] for k in range(0, len(rows), MULTIROW_MAX_ROWS))
        ]
        connection = self._connection()
        try:
            if len(statements) == 1:
                connection.exec_driver_sql(*statements[0])
            else:
                self._pipelined(connection, statements)
        except BaseException:
            self.release()
            raise
        self._local.kept = (connection, time.monotonic())
        return True

    def _pipelined(self, connection: Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """The statements in one transaction, in psycopg's pipeline mode, on psycopg's own connection
        (in autocommit mode: `transaction()` opens and ends one)."""
        driver = cast(psycopg.Connection[Any], connection.connection.driver_connection)
        try:
            with driver.pipeline(), driver.transaction():
                cursor = driver.cursor()
                for statement, params in statements:
                    cursor.execute(statement, params)
        except psycopg.Error as exc:
            # psycopg's own errors are made SQLAlchemy's, as exec_driver_sql's are, so that a lost or
            # timed-out server answers 503 as for any other commit; and a connection the server
            # closed is marked so, so that the pool discards it rather than try to reset it.
            lost = driver.closed or driver.broken
            if lost:
                connection.invalidate()
            raise DBAPIError.instance(
                statements[-1][0], None, exc, psycopg.Error, True, lost, self._engine.dialect
            ) from exc

    def _statement(self, count: int) -> str:
        statement = self._statements.get(count)
        if statement is None:
            statement = self._statements[count] = self._head + ", ".join([self._one_row] * count)
        return statement

    def _params(self, rows: list[dict[str, Any]]) -> tuple[Any, ...]:
        params = []
        for row in rows:
            for name, process, utf8 in self._columns:
                value = row[name]
                if utf8:  # sent as UTF-8 bytes (bytea); the statement's convert_from makes it text
                    if not isinstance(value, bytes) and value is not None:
                        value = cast(str, process(value) if process is not None else value).encode()
                    params.append(value)
                else:
                    params.append(value if process is None else process(value))
        return tuple(params)

    def _connection(self) -> Connection:
        kept = getattr(self._local, "kept", None)
        if kept is not None:
            connection, used = kept
            if time.monotonic() - used < KEPT_IDLE_SECONDS:
                return connection
            self.release()
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._local.kept = (connection, time.monotonic())
        return connection

    def release(self) -> None:
        """Give this thread's kept connection back to the pool (at an error, when idle, at the end)."""
        kept = getattr(self._local, "kept", None)
        self._local.kept = None
        if kept is not None:
            with contextlib.suppress(Exception):  # a connection that broke is discarded by the pool
                kept[0].close()


class Checkpointer:
    """Copies a SQLite database's write-ahead log into the database file, in a thread of its own, when
    asked (see the module's docstring). `exclusive` is the writers' lock."""

    def __init__(self, engine: Engine, exclusive: Callable[[], AbstractContextManager[None]]) -> None:
        self._engine = engine
        self._exclusive = exclusive
        self._due = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's own: one that outlives close() still stops
        self._lock = threading.Lock()

    def request(self) -> None:
        """Checkpoint soon; requests made while one runs are served by the next. Never raises (it is
        called right after a commit): a thread that cannot start now is tried at the next request."""
        with self._lock:
            if self._closing:
                return
            if self._thread is None:
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(stop,), name="wal-checkpointer", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # "can't start new thread"
                    log.warning("WAL checkpointer not started: %s", exc)
                    return
                self._thread, self._stop = thread, stop
        self._due.set()

    def close(self) -> None:
        """Stop the thread, then copy what is left of the log, so that a clean shutdown leaves little
        to copy at the next start (without the writers' lock: nothing need wait for it now)."""
        with self._lock:
            self._closing = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._due.set()
            thread.join(timeout=30)
        try:
            self._copy()
        except Exception as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        with self._lock:
            self._closing = False  # a reopened writer may ask again

    def _run(self, stop: threading.Event) -> None:
        while True:
            self._due.wait()
            if stop.is_set():
                return
            self._due.clear()
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            # The bulk, while writers go on appending; then what they appended meanwhile, until
            # that is little.
            previous = None
            for _ in range(UNLOCKED_PASSES):
                busy, frames = self._copy()
                if busy:  # another process is checkpointing this log at the moment
                    break
                # The log's frames grew by what was appended since the last pass; fewer frames than
                # then: the log started over, and all of them are new.
                appended = frames - previous if previous is not None and frames >= previous else frames
                previous = frames
                if appended < FEW_FRAMES:
                    break
            if previous is not None and previous >= RESTART_LOG_FRAMES:
                with self._exclusive():
                    self._copy()  # the rest: the next commit can start the log over
        except Exception as exc:  # the next one catches up; SQLite's log stays durable meanwhile
            log.warning("WAL checkpoint failed: %s", exc)

    def _copy(self) -> tuple[bool, int]:
        """One passive pass: (whether another checkpoint kept it from running, frames in the log)."""
        with self._engine.connect() as connection:
            busy, frames, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return bool(busy), int(frames)
