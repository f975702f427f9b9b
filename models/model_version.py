"""Classifier registry: immutable versions and a movable active pointer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDocument, UTCDateTime, utcnow


class ModelVersion(Base):
    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    training_data_hash: Mapped[str] = mapped_column(String(64))
    estimator: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict] = mapped_column(JSONDocument())
    library_versions: Mapped[dict] = mapped_column(JSONDocument())
    features: Mapped[list] = mapped_column(JSONDocument())
    metrics: Mapped[dict] = mapped_column(JSONDocument())
    artefact_path: Mapped[str] = mapped_column(String(512))
    artefact_sha256: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        # At most one active version, enforced by the database even across processes.
        Index(
            "uq_model_versions_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
    )
