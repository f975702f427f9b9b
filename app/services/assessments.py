"""Stored assessments, read back exactly as they were returned."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.errors import NotFound
from models import Assessment


def get(session: Session, *, assessment_id: str) -> Assessment:
    """One assessment, or 404."""
    row = session.get(Assessment, assessment_id) if len(assessment_id) <= 32 else None
    if row is None:
        raise NotFound(f"assessment {assessment_id!r} does not exist")
    return row


def get_response(session: Session, *, assessment_id: str) -> dict[str, Any]:
    return get(session, assessment_id=assessment_id).response
