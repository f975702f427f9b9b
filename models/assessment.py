"""A stored match: what was asked, what was answered, and the versions that answered it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDocument, JSONText, UTCDateTime, utcnow


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    method: Mapped[str] = mapped_column(String(16))
    country_iso3: Mapped[str | None] = mapped_column(String(3))
    recommended_model: Mapped[str] = mapped_column(String(16))
    weight_profile_name: Mapped[str] = mapped_column(String(64))
    weight_profile_version: Mapped[int]
    engine_version: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(64))
    data_version: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[dict] = mapped_column(JSONDocument())
    response: Mapped[dict] = mapped_column(JSONText())  # exactly the bytes the caller received

    __table_args__ = (Index("ix_assessments_created_at", "created_at"),)
