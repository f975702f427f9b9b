"""Request-scoped dependencies as `Annotated` aliases; the app's state holds engine and settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from app.config import Settings


def _flushed(session: Session, _context: object) -> None:
    session.info["wrote"] = True


def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info["wrote"] = True


def track_writes(sessions: sessionmaker[Session]) -> None:
    """Mark the sessions of `sessions` that write (see `wrote`)."""
    event.listen(sessions, "after_flush", _flushed)
    event.listen(sessions, "do_orm_execute", _executed)


def wrote(session: Session) -> bool:
    """Whether the session has written, or would write on commit: ORM changes and flushes, and
    `session.execute` of Core insert, update and delete. Not seen: `text()` statements, statements
    run on `session.connection()`, and the legacy bulk methods; no request path writes that way.
    A write that goes unseen still commits, only outside the write lock, where SQLite's busy handler
    waits for the other writers."""
    return bool(session.info.get("wrote") or session.new or session.dirty or session.deleted)


def get_session(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit on success, roll back on error. A session that
    wrote commits under the app's write lock (SQLite's single writer); one that only read does not
    wait for it."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        if wrote(session):
            with request.app.state.write_lock:
                session.commit()
        else:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def get_app_settings(request: Request) -> Settings:  # async: no thread hop for a lookup
    settings: Settings = request.app.state.settings
    return settings


# scope="function": the commit runs when the route returns and before the response is sent, so an
# id a caller receives is already committed (the default scope would commit after sending).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
