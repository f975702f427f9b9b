"""Request-scoped dependencies as `Annotated` aliases; the app's state holds engine and settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.config import Settings


def get_session(request: Request) -> Iterator[Session]:
    """The request owns the transaction: commit on success, roll back on error."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
        with request.app.state.write_lock:
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
