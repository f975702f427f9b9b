"""Engine and session factory; the request owns the transaction."""

from __future__ import annotations

import weakref
from functools import lru_cache
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import get_settings
from app.json import dumps

SQLITE_AUTOCHECKPOINT = 1000  # pages: SQLite's default
PG_CONNECT_TIMEOUT_SECONDS = 10  # an unreachable PostgreSQL host fails a request instead of hanging it


def make_engine(
    url: str, *, statement_timeout: float | None = None, wal_autocheckpoint: int = SQLITE_AUTOCHECKPOINT
) -> Engine:
    """An engine for `url`; SQLite files get WAL, foreign keys and a busy timeout.

    On SQLite, a commit that takes the write-ahead log past `wal_autocheckpoint` pages copies it into
    the database file itself (SQLite's default); 0 leaves that to a `Checkpointer` (the service's
    engine: see app.services.writer).

    PostgreSQL connections time out after PG_CONNECT_TIMEOUT_SECONDS unless the URL says otherwise;
    with `statement_timeout` (the service's engine; 0 or None: none) a statement that runs or waits
    for a lock longer than that many seconds is cancelled, which answers 503 like a database that is
    down. It is sent as the `options` startup parameter, after any the URL gives (a `statement_timeout`
    in the URL's `options` stands instead). Both take the place of PGOPTIONS and PGCONNECT_TIMEOUT
    from the environment. Migrations and the command line go without a statement timeout, as building
    an index on a large table may take longer.
    """
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
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
            cursor.close()

        return engine
    # The URL's own connection parameters stand; these are added to them, not put in their place.
    given = make_url(url).query
    connect_args: dict[str, object] = {}
    if "connect_timeout" not in given:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_SECONDS
    options = given.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options  # given more than once
    if statement_timeout and "statement_timeout" not in options:  # the URL's own setting stands
        options = f"{options} -c statement_timeout={max(1, round(statement_timeout * 1000))}".strip()
    if options:
        connect_args["options"] = options
    return create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_serializer=dumps,
        json_deserializer=orjson.loads,
    )


_URL_TEXT: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def database_key(engine: Engine) -> str:
    """The engine's URL as text: the key of the per-database caches. Kept, as `str(url)` costs
    about 4 us and a match looks it up several times."""
    key = _URL_TEXT.get(engine)
    if key is None:
        key = _URL_TEXT[engine] = str(engine.url)
    return key


def is_sqlite_file(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)
