"""Engine and session factory; the request owns the transaction."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.json import dumps

log = logging.getLogger("clustermatch.db")

# SQLite copies its write-ahead log back into the database file (a checkpoint) inside the commit that
# takes the log past `wal_autocheckpoint` pages: 1,000 by default, which 11 KB assessments cross every
# ~360 matches. That commit then waits for the copy and its fsync (about half of a 1,000-item batch's
# write). `WalCheckpointer` does it in the background instead; this higher limit stays as a safety net.
WAL_AUTOCHECKPOINT_PAGES = 16384  # 64 MB of 4 KB pages
CHECKPOINT_INTERVAL = 0.5  # seconds between background checkpoints


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite files get WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=dumps,
            json_deserializer=orjson.loads,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL: a commit survives a crash or kill of the process (the crash test
            # SIGKILLs the server); only an OS crash or power cut may lose the last commits.
            # PostgreSQL is the production database where that matters.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            cursor.close()

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_serializer=dumps,
        json_deserializer=orjson.loads,
    )


def is_sqlite_file(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


class WalCheckpointer:
    """Checkpoints a SQLite file's write-ahead log every CHECKPOINT_INTERVAL seconds from a thread of
    its own, so that commits on the request path do not (see WAL_AUTOCHECKPOINT_PAGES). PASSIVE mode
    neither waits for nor blocks readers and writers; with several processes, one checkpoints at a
    time and the others find nothing left to copy. Does nothing for other databases."""

    def __init__(self, engine: Engine, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not is_sqlite_file(self._engine) or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=10)

    def checkpoint(self) -> tuple[int, int, int]:
        """One passive checkpoint: (busy, frames in the log, frames copied), as SQLite reports them."""
        with self._engine.connect() as connection:
            busy, frames, copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(busy), int(frames), int(copied)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.checkpoint()
            except Exception as exc:  # the database is away for a moment: try again next time
                log.warning("WAL checkpoint failed: %s", exc)


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)
