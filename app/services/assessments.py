"""Stored assessments, read back exactly as they were returned."""

from __future__ import annotations

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session

from app.errors import NotFound
from models import Assessment


def _may_exist(assessment_id: str) -> bool:
    """Ids are 32 hex digits. Longer ones, or ones with a NUL (which PostgreSQL refuses in any text
    parameter), cannot be stored ones: 404 without asking the database."""
    return len(assessment_id) <= 32 and "\x00" not in assessment_id


def get(session: Session, *, assessment_id: str) -> Assessment:
    """One assessment, or 404."""
    row = session.get(Assessment, assessment_id) if _may_exist(assessment_id) else None
    if row is None:
        raise NotFound(f"assessment {assessment_id!r} does not exist")
    return row


def get_response_text(session: Session, *, assessment_id: str) -> str:
    """The stored response as the exact JSON text it was sent as."""
    text = (
        session.scalar(select(type_coerce(Assessment.response, Text)).where(Assessment.id == assessment_id))
        if _may_exist(assessment_id)
        else None
    )
    if text is None:
        raise NotFound(f"assessment {assessment_id!r} does not exist")
    return str(text)
