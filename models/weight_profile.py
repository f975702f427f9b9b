"""Named, versioned weight profiles; a version never changes once written."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDocument, UTCDateTime, utcnow


class WeightProfile(Base):
    __tablename__ = "weight_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    weights: Mapped[dict] = mapped_column(JSONDocument())
    description: Mapped[str] = mapped_column(Text, default="")
    # How the weights were made: "seed" (documented defaults), "manual", "ahp".
    method: Mapped[str] = mapped_column(String(16), default="manual")
    # AHP details (matrices, consistency ratio) or citations, as given.
    details: Mapped[dict] = mapped_column(JSONDocument(), default=dict)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("name", "version", name="uq_weight_profiles_name_version"),)
