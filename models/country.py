"""Reference data: economies, their indicator values, and the snapshot they came from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class DataSnapshot(Base):
    __tablename__ = "data_snapshots"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the file
    file_name: Mapped[str] = mapped_column(String(255))
    rows: Mapped[int]
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index(
            "uq_data_snapshots_current",
            "is_current",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
    )


class Country(Base):
    __tablename__ = "countries"

    iso3: Mapped[str] = mapped_column(String(3), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    region: Mapped[str] = mapped_column(String(128))
    income_group: Mapped[str | None] = mapped_column(String(64))


class IndicatorValue(Base):
    __tablename__ = "indicator_values"

    id: Mapped[int] = mapped_column(primary_key=True)
    iso3: Mapped[str] = mapped_column(ForeignKey("countries.iso3", ondelete="CASCADE"))
    indicator: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    year: Mapped[int]

    __table_args__ = (UniqueConstraint("iso3", "indicator", name="uq_indicator_values_iso3_indicator"),)
