"""Assessment ids: UUIDv7, so they sort by creation time and new rows go to the end of the index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from models.base import time_ordered_id


def test_an_id_is_a_version_7_uuid_of_its_time():
    at = datetime(2026, 12, 2, 6, 30, 15, 123000, tzinfo=UTC)
    made = uuid.UUID(hex=time_ordered_id(at))
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert made.int >> 80 == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_ids_made_later_sort_later():
    start = datetime(2026, 12, 2, tzinfo=UTC)
    ids = [time_ordered_id(start + timedelta(milliseconds=k)) for k in range(500)]
    assert ids == sorted(ids)


def test_ids_of_the_same_millisecond_differ():
    at = datetime(2026, 12, 2, tzinfo=UTC)
    ids = {time_ordered_id(at) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
