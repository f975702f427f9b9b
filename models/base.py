"""Declarative base with a naming convention, so Alembic names constraints predictably."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import JSON, DateTime, MetaData, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JSONDocument(TypeDecorator[object]):
    """JSON on SQLite, JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())


class JSONText(TypeDecorator[object]):
    """A JSON document kept as the exact text it was written as: Text on every backend.

    For documents written once and returned verbatim (an assessment's response): the database
    does not parse them on write (JSONB's parse was most of an insert's cost on PostgreSQL), and
    the stored bytes can be sent back as they are. Binds already-encoded text as it is (a str, or
    UTF-8 bytes, which are decoded; the PostgreSQL writer sends such bytes unchanged instead), or
    encodes any other JSON value; reads back the parsed value.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bytes):
            return value.decode()
        return orjson.dumps(value).decode()

    def process_result_value(self, value, dialect):
        return None if value is None else orjson.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def time_ordered_id(at: datetime) -> str:
    """A UUIDv7 (RFC 9562, section 5.7) as 32 hex digits: `at` in Unix milliseconds, then 74 random bits.

    Ids made later sort later, so a new row lands at the end of the primary-key index instead of
    on a random page of it. With random (version 4) ids, SQLite's cost of writing 1,000 assessments
    grew with the table (39.5 ms at 50,000 rows, 52 ms at 300,000); with these it stayed at 33-36 ms
    (bench/RESULTS.md). The 74 random bits keep one id from being guessed from another.
    """
    millis = ((at - _UNIX_EPOCH) // timedelta(milliseconds=1)) & (2**48 - 1)
    random_bits = secrets.randbits(74)
    value = (
        millis << 80
        | 0x7 << 76  # version 7
        | (random_bits >> 62) << 64  # rand_a: 12 bits
        | 0b10 << 62  # the RFC 9562 variant
        | random_bits & (2**62 - 1)  # rand_b: 62 bits
    )
    return f"{value:032x}"
