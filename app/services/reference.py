"""Reference data: load the shipped snapshot, and look countries up with derived profiles."""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT
from app.db import database_key
from app.errors import NotFound, ServiceError
from models import Country, DataSnapshot, IndicatorValue
from scoring.derive import INDICATORS, DerivedValue, Observation, derive_profile
from scoring.engine import encode
from scoring.profile import CountryProfile

SNAPSHOT_FILE = "country_indicators.csv"
PROJECT_DATA = PROJECT_ROOT / "data"
BASE_COLUMNS = ("iso3", "name", "region", "income_group")


class SnapshotError(ServiceError):
    """A snapshot file that cannot be loaded; the loaded data stays as it was."""

    status = 422
    title = "Invalid snapshot"


@dataclass(frozen=True, slots=True)
class ParsedSnapshot:
    version: str
    countries: list[dict[str, str | None]]
    values: list[tuple[str, str, float, int]]  # iso3, indicator, value, year


def snapshot_version(content: bytes) -> str:
    """Content hash that identifies a snapshot (first 16 hex digits of its sha256)."""
    return hashlib.sha256(content).hexdigest()[:16]


def parse_snapshot(content: bytes) -> ParsedSnapshot:
    """Parse and check a snapshot file completely before anything is written."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SnapshotError(f"snapshot is not UTF-8: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text))
    expected = list(BASE_COLUMNS) + [c for col in INDICATORS for c in (col, f"{col}_year")]
    missing = [c for c in expected if c not in (reader.fieldnames or [])]
    if missing:
        raise SnapshotError(f"snapshot lacks columns: {', '.join(missing)}")
    countries: list[dict[str, str | None]] = []
    values: list[tuple[str, str, float, int]] = []
    seen: set[str] = set()
    for line, row in enumerate(reader, start=2):
        iso3 = (row["iso3"] or "").strip()
        if len(iso3) != 3 or not iso3.isalpha() or not iso3.isupper():
            raise SnapshotError(f"line {line}: iso3 {iso3!r} is not an ISO 3166-1 alpha-3 code")
        if iso3 in seen:
            raise SnapshotError(f"line {line}: duplicate iso3 {iso3}")
        seen.add(iso3)
        if not row["name"] or not row["region"]:
            raise SnapshotError(f"line {line} ({iso3}): name and region are required")
        countries.append(
            {
                "iso3": iso3,
                "name": row["name"],
                "region": row["region"],
                "income_group": row["income_group"] or None,
            }
        )
        for col in INDICATORS:
            raw, raw_year = row[col], row[f"{col}_year"]
            if raw in ("", None) and raw_year in ("", None):
                continue
            try:
                value, year = float(raw), int(raw_year)
            except (TypeError, ValueError) as exc:
                raise SnapshotError(
                    f"line {line} ({iso3}): {col}={raw!r}, year={raw_year!r} is not a number and a year"
                ) from exc
            if not np.isfinite(value) or not 1960 <= year <= 2100:
                raise SnapshotError(
                    f"line {line} ({iso3}): {col} value {raw!r} or year {raw_year!r} out of range"
                )
            values.append((iso3, col, value, year))
    if not countries:
        raise SnapshotError("snapshot has no rows")
    return ParsedSnapshot(snapshot_version(content), countries, values)


def load_snapshot(session: Session, *, path: Path) -> tuple[str, bool]:
    """Load a snapshot file; returns (version, changed). Same version again changes nothing."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read {path}: {exc}") from exc
    parsed = parse_snapshot(content)
    _current.clear()  # this process sees its own load at once
    current = session.scalar(select(DataSnapshot).where(DataSnapshot.is_current))
    if current is not None and current.version == parsed.version:
        return parsed.version, False
    session.execute(delete(IndicatorValue))
    session.execute(delete(Country))
    session.execute(update(DataSnapshot).where(DataSnapshot.is_current).values(is_current=False))
    session.flush()
    session.execute(insert(Country), parsed.countries)
    session.execute(
        insert(IndicatorValue),
        [{"iso3": i, "indicator": c, "value": v, "year": y} for i, c, v, y in parsed.values],
    )
    known = session.get(DataSnapshot, parsed.version)
    if known is None:
        session.add(
            DataSnapshot(
                version=parsed.version, file_name=path.name, rows=len(parsed.countries), is_current=True
            )
        )
    else:
        known.is_current = True
    session.flush()
    return parsed.version, True


@dataclass(frozen=True, slots=True)
class ReferenceCountry:
    iso3: str
    name: str
    region: str
    income_group: str | None
    observations: dict[str, Observation]
    profile: CountryProfile
    derived: dict[str, DerivedValue]


@dataclass(frozen=True, slots=True)
class ReferenceTable:
    """Every country of one snapshot with its derived profile, and the profiles as engine rows."""

    version: str
    countries: dict[str, ReferenceCountry]
    order: tuple[str, ...]
    rows: np.ndarray  # encode(profile) per country, in `order`


_cache: dict[str, ReferenceTable] = {}
_cache_lock = threading.Lock()


# Which snapshot is current changes only when an operator loads a new file; re-read it after
# VERSION_TTL seconds so a load reaches every process within that time without a query a request.
VERSION_TTL = 2.0
_current: dict[str, tuple[float, str | None]] = {}  # database URL -> (read at, version)


def current_version(session: Session) -> str | None:
    """The version of the loaded snapshot (None before any load)."""
    db = database_key(session.get_bind().engine)
    read_at, version = _current.get(db, (-1e9, None))
    if time.monotonic() - read_at < VERSION_TTL:
        return version
    version = session.scalar(select(DataSnapshot.version).where(DataSnapshot.is_current))
    _current[db] = (time.monotonic(), version)
    return version


def in_memory(database_url: str, *, table: bool) -> bool:
    """Whether `current_version` (and, with `table`, `reference_table`) would answer now without a query."""
    read_at, version = _current.get(database_url, (-1e9, None))
    fresh = time.monotonic() - read_at < VERSION_TTL
    return fresh and (not table or version is None or version in _cache)


def reference_table(session: Session) -> ReferenceTable | None:
    """The current snapshot, derived once per process and version (a snapshot never changes)."""
    version = current_version(session)
    if version is None:
        return None
    table = _cache.get(version)
    if table is not None:
        return table
    with _cache_lock:
        if version in _cache:
            return _cache[version]
        obs: dict[str, dict[str, Observation]] = {}
        for iso3, indicator, value, year in session.execute(
            select(IndicatorValue.iso3, IndicatorValue.indicator, IndicatorValue.value, IndicatorValue.year)
        ):
            obs.setdefault(iso3, {})[indicator] = (value, year)
        countries = {}
        for c in session.scalars(select(Country).order_by(Country.iso3)):
            o = obs.get(c.iso3, {})
            profile, derived = derive_profile(c.iso3, c.income_group, o)
            countries[c.iso3] = ReferenceCountry(
                c.iso3, c.name, c.region, c.income_group, o, profile, derived
            )
        order = tuple(countries)
        rows = np.stack([encode(countries[i].profile) for i in order]) if order else np.empty((0, 7))
        table = ReferenceTable(version, countries, order, rows)
        _cache.clear()
        _cache[version] = table
        return table


def suggestions(table: ReferenceTable | None, query: str, limit: int = 5) -> list[dict[str, str]]:
    """Close matches for an unknown code, by code and by name."""
    if table is None:
        return []
    q = query.strip()
    by_code = difflib.get_close_matches(q.upper(), table.order, n=limit, cutoff=0.6)
    names = {c.name.lower(): c.iso3 for c in table.countries.values()}
    by_name = [names[n] for n in difflib.get_close_matches(q.lower(), list(names), n=limit, cutoff=0.5)]
    prefix = [c.iso3 for c in table.countries.values() if q and c.name.lower().startswith(q.lower())]
    picked: list[str] = []
    for code in [*by_code, *prefix, *by_name]:
        if code not in picked:
            picked.append(code)
    return [{"iso3": code, "name": table.countries[code].name} for code in picked[:limit]]


def get_country(session: Session, *, iso3: str) -> tuple[ReferenceTable, ReferenceCountry]:
    """A country of the current snapshot, or 404 with close matches."""
    table = reference_table(session)
    # Only ASCII letters are upper-cased: "ı".upper() is "I", and a code is Latin letters alone.
    code = iso3.strip().upper() if iso3.isascii() else ""
    if table is None:
        raise NotFound("no reference data is loaded; run `python -m app.cli data load`")
    country = table.countries.get(code)
    if country is None:
        matches = suggestions(table, iso3)
        hint = ", ".join(f"{m['iso3']} ({m['name']})" for m in matches) or "none"
        raise NotFound(f"unknown country code {iso3!r}; close matches: {hint}", suggestions=matches)
    return table, country
