"""Refresh the country-indicator snapshot from the World Bank Indicators API v2.

The service ships ``data/country_indicators.csv``: one row per economy with, for
each indicator column, the latest non-empty value in 2010-2023 and its year.
This module rebuilds that table from ``https://api.worldbank.org/v2``:

1. ``fetch_indicator`` downloads every page of one indicator (with a timeout and
   bounded retries) and validates the response shape.
2. ``build_snapshot`` turns the observations into snapshot rows.
3. ``refresh_snapshot`` fetches *all* indicators, then replaces the CSV atomically
   and returns a ``ChangeReport``. If anything fails, the file is left untouched.

Run as a command: ``python -m app.worldbank --current data/country_indicators.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

BASE_URL = "https://api.worldbank.org/v2"
FIRST_YEAR = 2010
LAST_YEAR = 2023
# Large enough that one request normally returns a whole indicator
# (about 266 economies and aggregates x 14 years); paging is still followed.
PER_PAGE = 20000
DEFAULT_TIMEOUT = 30.0
# A sanity bound: at PER_PAGE rows a page, more pages than this means the
# server is misbehaving (for example ignoring per_page), not that data is huge.
MAX_PAGES = 50

BASE_COLUMNS = ("iso3", "name", "region", "income_group")

# Snapshot column -> World Bank indicator code.
INDICATORS: dict[str, str] = {
    "rd_exp_pct_gdp": "GB.XPD.RSDV.GD.ZS",
    "researchers_per_million": "SP.POP.SCIE.RD.P6",
    "gdp_per_capita_usd": "NY.GDP.PCAP.CD",
    "gdp_per_capita_ppp_intl": "NY.GDP.PCAP.PP.CD",
    "population": "SP.POP.TOTL",
    "health_exp_per_capita_usd": "SH.XPD.CHEX.PC.CD",
    # The shipped column came from WHO GHED (GHED_GGHE-DGDP_SHA2011, WHO terms).
    # The WB API carries the WDI copy of the same series (CC BY 4.0), so values
    # and latest years may differ from the shipped file after a refresh.
    "gov_health_exp_pct_gdp": "SH.XPD.GHED.GD.ZS",
    "hospital_beds_per_1000": "SH.MED.BEDS.ZS",
    "physicians_per_1000": "SH.MED.PHYS.ZS",
    "manufacturing_va_pct_gdp": "NV.IND.MANF.ZS",
    "hightech_exports_pct_manuf_exports": "TX.VAL.TECH.MF.ZS",
    "gov_effectiveness_est": "GE.EST",
    "patent_apps_resident": "IP.PAT.RESD",
    "fdi_net_inflows_pct_gdp": "BX.KLT.DINV.WD.GD.ZS",
}


class RefreshError(Exception):
    """The refresh could not be completed; the snapshot file was not modified."""


@dataclass(frozen=True)
class Observation:
    """One country-year value of one indicator, as the API gave it."""

    iso3: str
    year: int
    value: str | None  # the JSON number's exact text; None when the API has no value


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before retrying a failed page request."""

    max_attempts: int = 4
    backoff: float = 1.0  # first delay in seconds; doubles on every retry
    max_backoff: float = 30.0
    # Injectable so tests do not actually wait.
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Return the wait before the retry that follows failed attempt ``attempt`` (1-based)."""
        delay = self.backoff * 2 ** (attempt - 1)
        # Respect the server's Retry-After (seconds form) on 429/503 when it asks for longer.
        if response is not None:
            with contextlib.suppress(KeyError, ValueError):
                delay = max(delay, float(response.headers["Retry-After"]))
        return min(delay, self.max_backoff)


# Network-level failures worth retrying: connect/read/write errors, timeouts and
# connections dropped mid-response. Configuration errors (bad URL, proxy) are not.
_RETRYABLE_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _JsonNumber(str):
    """Text of a JSON number, kept verbatim so values are never re-formatted or rounded."""


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def _decode_json(content: bytes) -> object:
    # Numbers stay as their source text (a str subclass, so they can still be told
    # apart from JSON strings); NaN/Infinity are not valid JSON and are refused.
    return json.loads(
        content, parse_float=_JsonNumber, parse_int=_JsonNumber, parse_constant=_reject_constant
    )


def _get_page(
    client: httpx.Client,
    url: str,
    params: dict[str, str],
    *,
    what: str,
    timeout: float | httpx.Timeout,
    retry: RetryPolicy,
) -> object:
    """GET one page and return its decoded JSON, retrying transient failures."""
    for attempt in range(1, retry.max_attempts + 1):
        response: httpx.Response | None = None
        try:
            response = client.get(url, params=params, timeout=timeout)
        except _RETRYABLE_ERRORS as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            status = response.status_code
            if status == 200:
                try:
                    return _decode_json(response.content)
                except ValueError as exc:
                    # Not retried: a garbled body is not a transient condition we can wait out.
                    raise RefreshError(f"{what}: response is not valid JSON ({exc})") from exc
            if status != 429 and status < 500:
                raise RefreshError(f"{what}: HTTP {status}: {response.text[:200]!r}")
            problem = f"HTTP {status}"
        if attempt == retry.max_attempts:
            raise RefreshError(f"{what}: gave up after {attempt} attempts; last error: {problem}")
        delay = retry.delay(attempt, response)
        log.warning("%s: %s; retry %d/%d in %.1fs", what, problem, attempt, retry.max_attempts - 1, delay)
        retry.sleep(delay)
    raise AssertionError("unreachable")  # the loop either returns or raises


def _as_int(value: object, what: str) -> int:
    # The API has sent header counts both as numbers and as strings over the years.
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise RefreshError(f"{what}: expected a non-negative integer, got {value!r}")


def _split_page(payload: object, what: str) -> tuple[int, int, int, list[object]]:
    """Validate a page's ``[header, observations]`` shape; return (page, pages, total, rows)."""
    if (
        isinstance(payload, list)
        and len(payload) == 1
        and isinstance(payload[0], dict)
        and "message" in payload[0]
    ):
        # The API reports errors (unknown indicator, bad parameter) with HTTP 200 and
        # [{"message": [{"id": "120", "key": "Invalid value", "value": "..."}]}].
        messages = payload[0]["message"]
        details = "; ".join(
            f"{m.get('id')} {m.get('key')}: {m.get('value')}" if isinstance(m, dict) else repr(m)
            for m in (messages if isinstance(messages, list) else [messages])
        )
        raise RefreshError(f"{what}: the API answered with an error: {details}")
    if not (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], dict)):
        raise RefreshError(f"{what}: malformed response, expected [header, observations]")
    header, rows = payload
    page = _as_int(header.get("page"), f"{what}: header 'page'")
    pages = _as_int(header.get("pages"), f"{what}: header 'pages'")
    total = _as_int(header.get("total"), f"{what}: header 'total'")
    if rows is None and total == 0:
        rows = []  # the API sends null instead of [] when nothing matches
    if not isinstance(rows, list):
        raise RefreshError(f"{what}: malformed response, observations are not a list")
    return page, pages, total, rows


def _parse_observation(row: object, code: str, what: str) -> Observation:
    """Validate one observation object and return it as an ``Observation``."""
    if not isinstance(row, dict):
        raise RefreshError(f"{what}: malformed observation {row!r}")
    indicator = row.get("indicator")
    if not isinstance(indicator, dict) or indicator.get("id") != code:
        raise RefreshError(f"{what}: observation for another indicator: {indicator!r}")
    iso3 = row.get("countryiso3code")
    date = row.get("date")
    # Some aggregates have an empty countryiso3code; they are dropped later anyway.
    if type(iso3) is not str:
        raise RefreshError(f"{what}: malformed countryiso3code {iso3!r}")
    if not (type(date) is str and len(date) == 4 and date.isdigit()):
        raise RefreshError(f"{what}: malformed date {date!r} for {iso3}")
    value = row.get("value")
    if value is None:
        text = None
    elif isinstance(value, _JsonNumber):
        text = str(value)
    elif type(value) is str and _is_finite_number(value):
        text = value.strip()  # tolerated: a number sent as a quoted string
    else:
        raise RefreshError(f"{what}: malformed value {value!r} for {iso3} {date}")
    return Observation(iso3=iso3, year=int(date), value=text)


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def fetch_indicator(
    client: httpx.Client,
    code: str,
    *,
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
    per_page: int = PER_PAGE,
    base_url: str = BASE_URL,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy = RetryPolicy(),
) -> list[Observation]:
    """Fetch every page of one indicator for all countries and aggregates in the year range."""
    url = f"{base_url.rstrip('/')}/country/all/indicator/{code}"
    observations: list[Observation] = []
    seen: dict[tuple[str, int], str | None] = {}
    page, pages, total = 1, 1, 0
    while page <= pages:
        what = f"{code} page {page}"
        params = {
            "format": "json",
            "per_page": str(per_page),
            "date": f"{first_year}:{last_year}",
            "page": str(page),
        }
        payload = _get_page(client, url, params, what=what, timeout=timeout, retry=retry)
        got_page, got_pages, got_total, rows = _split_page(payload, what)
        # When nothing matches, the API may answer "page 0 of 0, total 0": not a paging error.
        no_data = (got_page, got_pages, got_total) == (0, 0, 0) and page == 1
        if got_page != page and not no_data:
            raise RefreshError(f"{what}: server returned page {got_page} instead")
        if page == 1:
            pages, total = got_pages, got_total
            if pages > MAX_PAGES:
                raise RefreshError(f"{what}: {pages} pages announced, more than the limit {MAX_PAGES}")
        elif (got_pages, got_total) != (pages, total):
            # The series was republished between our requests: pages would not line up.
            raise RefreshError(f"{what}: page count or total changed while paging")
        for row in rows:
            obs = _parse_observation(row, code, what)
            key = (obs.iso3, obs.year)
            if key in seen and seen[key] != obs.value and obs.iso3:
                raise RefreshError(f"{what}: conflicting values for {obs.iso3} {obs.year}")
            seen[key] = obs.value
            observations.append(obs)
        page += 1
    # A short count means pages were truncated or skipped; refuse rather than lose rows.
    if len(observations) != total:
        raise RefreshError(f"{code}: header announced {total} observations, received {len(observations)}")
    log.info("%s: %d observations in %d page(s)", code, total, max(pages, 1))
    return observations


def read_snapshot(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Read a snapshot CSV as text (no type conversion); return (fieldnames, rows)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, restval="")
        rows = list(reader)
        fieldnames = list(reader.fieldnames or [])
    iso3s = [row.get("iso3", "") for row in rows]
    if len(set(iso3s)) != len(iso3s) or "" in iso3s:
        raise RefreshError(f"{path}: iso3 codes are missing or not unique")
    return fieldnames, rows


def _check_columns(fieldnames: Sequence[str], indicators: Mapping[str, str]) -> None:
    expected = list(BASE_COLUMNS) + [c for col in indicators for c in (col, f"{col}_year")]
    missing = [c for c in expected if c not in fieldnames]
    if missing:
        raise RefreshError(f"current snapshot lacks columns: {', '.join(missing)}")


def build_snapshot(
    current_rows: Sequence[Mapping[str, str]],
    fieldnames: Sequence[str],
    observations: Mapping[str, Iterable[Observation]],
    indicators: Mapping[str, str] = INDICATORS,
    *,
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
) -> list[dict[str, str]]:
    """Build new snapshot rows: same economies and metadata, latest non-empty value per indicator."""
    _check_columns(fieldnames, indicators)
    # Only economies already in the snapshot: the API also returns aggregates (WLD, regions...).
    economies = {row["iso3"] for row in current_rows}
    latest: dict[str, dict[str, tuple[int, str]]] = {}
    for column, code in indicators.items():
        if code not in observations:
            raise RefreshError(f"no observations fetched for {code} ({column})")
        per_economy: dict[str, tuple[int, str]] = {}
        for obs in observations[code]:
            if obs.iso3 not in economies or not obs.value or not first_year <= obs.year <= last_year:
                continue
            if obs.iso3 not in per_economy or obs.year > per_economy[obs.iso3][0]:
                per_economy[obs.iso3] = (obs.year, obs.value)
        if not per_economy:
            # An empty answer would blank the whole column; that is an API problem, not news.
            raise RefreshError(f"{code} ({column}): no value for any economy in the snapshot")
        latest[column] = per_economy

    new_rows = []
    for row in current_rows:
        # iso3/name/region/income_group (and any extra columns) are carried over as they are.
        new_row = {name: row.get(name, "") for name in fieldnames}
        for column in indicators:
            year, value = latest[column].get(row["iso3"], (None, ""))
            new_row[column] = value
            new_row[f"{column}_year"] = "" if year is None else str(year)
        new_rows.append(new_row)
    return new_rows


@dataclass(frozen=True)
class ValueChange:
    """One cell pair (value, year) that differs between the old and new snapshot."""

    iso3: str
    column: str
    old_value: str
    old_year: str
    new_value: str
    new_year: str

    def __str__(self) -> str:
        old = f"{self.old_value} ({self.old_year})" if self.old_value else "(empty)"
        new = f"{self.new_value} ({self.new_year})" if self.new_value else "(empty)"
        return f"{self.iso3} {self.column}: {old} -> {new}"


@dataclass
class ColumnChanges:
    """Counts of changed, added and removed values in one indicator column."""

    changed: int = 0
    added: int = 0
    removed: int = 0
    examples: list[ValueChange] = field(default_factory=list)


@dataclass
class ChangeReport:
    """What a refresh changed, per indicator column."""

    path: str
    economies: int
    written: bool
    columns: dict[str, ColumnChanges]

    @property
    def total_changed(self) -> int:
        """Return the number of values that changed (value or year) across all columns."""
        return sum(c.changed for c in self.columns.values())

    @property
    def total_added(self) -> int:
        """Return the number of values that were empty before and are filled now."""
        return sum(c.added for c in self.columns.values())

    @property
    def total_removed(self) -> int:
        """Return the number of values that were filled before and are empty now."""
        return sum(c.removed for c in self.columns.values())

    def format(self) -> str:
        """Return a human-readable, multi-line summary."""
        action = "written to" if self.written else "not written (dry run):"
        lines = [
            f"Snapshot {action} {self.path}: {self.economies} economies; "
            f"{self.total_changed} changed, {self.total_added} added, {self.total_removed} removed",
            f"{'column':<36} {'changed':>8} {'added':>6} {'removed':>8}",
        ]
        for column, c in self.columns.items():
            lines.append(f"{column:<36} {c.changed:>8} {c.added:>6} {c.removed:>8}")
        examples = [e for c in self.columns.values() for e in c.examples]
        if examples:
            lines.append("Examples:")
            lines.extend(f"  {e}" for e in examples)
        return "\n".join(lines)

    __str__ = format


def compare_snapshots(
    old_rows: Sequence[Mapping[str, str]],
    new_rows: Sequence[Mapping[str, str]],
    indicators: Mapping[str, str] = INDICATORS,
    *,
    max_examples: int = 3,
) -> dict[str, ColumnChanges]:
    """Count changed/added/removed values per indicator column, matching rows by iso3."""
    old_by_iso3 = {row["iso3"]: row for row in old_rows}
    columns = {column: ColumnChanges() for column in indicators}
    for new in new_rows:
        old = old_by_iso3.get(new["iso3"], {})
        for column, counts in columns.items():
            year_col = f"{column}_year"
            old_value, old_year = old.get(column, ""), old.get(year_col, "")
            new_value, new_year = new.get(column, ""), new.get(year_col, "")
            # Compared as text: the file stores text, so "1.50" -> "1.5" is a real change.
            if (old_value, old_year) == (new_value, new_year):
                continue
            if not old_value:
                counts.added += 1
            elif not new_value:
                counts.removed += 1
            else:
                counts.changed += 1
            if len(counts.examples) < max_examples:
                counts.examples.append(
                    ValueChange(new["iso3"], column, old_value, old_year, new_value, new_year)
                )
    return columns


def write_snapshot_atomic(
    path: str | os.PathLike[str], fieldnames: Sequence[str], rows: Iterable[Mapping[str, str]]
) -> None:
    """Write the CSV to a temp file in the same directory, fsync it, then os.replace it into place."""
    path = Path(path)
    directory = path.parent
    # Same directory, so os.replace is an atomic rename on the same filesystem.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fieldnames), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; keep the old file's mode so the service can still read it.
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable across a crash; not possible on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def refresh_snapshot(
    current_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    client: httpx.Client,
    *,
    indicators: Mapping[str, str] = INDICATORS,
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
    base_url: str = BASE_URL,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy = RetryPolicy(),
    dry_run: bool = False,
    max_examples: int = 3,
) -> ChangeReport:
    """Fetch all indicators, then atomically write the new snapshot to out_path and report changes."""
    fieldnames, current_rows = read_snapshot(current_path)
    _check_columns(fieldnames, indicators)  # fail before spending minutes on downloads
    # Everything is fetched before anything is written: a failure on any indicator
    # raises RefreshError here and the existing file is never touched.
    observations = {
        code: fetch_indicator(
            client,
            code,
            first_year=first_year,
            last_year=last_year,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
        )
        for code in dict.fromkeys(indicators.values())
    }
    new_rows = build_snapshot(
        current_rows, fieldnames, observations, indicators, first_year=first_year, last_year=last_year
    )
    columns = compare_snapshots(current_rows, new_rows, indicators, max_examples=max_examples)
    if not dry_run:
        write_snapshot_atomic(out_path, fieldnames, new_rows)
    return ChangeReport(path=str(out_path), economies=len(new_rows), written=not dry_run, columns=columns)


def make_client(timeout: float = DEFAULT_TIMEOUT) -> httpx.Client:
    """Return an httpx.Client configured for the World Bank API."""
    return httpx.Client(
        base_url=BASE_URL,
        timeout=timeout,
        headers={"User-Agent": "ClusterMatch snapshot refresh", "Accept": "application/json"},
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        description="Refresh the country-indicator snapshot from the World Bank API."
    )
    parser.add_argument("--current", default="data/country_indicators.csv", help="snapshot to refresh")
    parser.add_argument("--out", help="where to write the new snapshot (default: replace --current)")
    parser.add_argument("--dry-run", action="store_true", help="fetch and report, but do not write")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with make_client(args.timeout) as client:
        try:
            report = refresh_snapshot(
                args.current, args.out or args.current, client, timeout=args.timeout, dry_run=args.dry_run
            )
        except RefreshError as exc:
            print(f"Refresh failed; the snapshot was not changed: {exc}", file=sys.stderr)
            return 1
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
