"""Tests for app.worldbank: refreshing the snapshot from the World Bank API v2.

The API is replaced by httpx.MockTransport serving the pages recorded in
tests/fixtures/worldbank/ (built from the real values in shared/data/raw by
build_fixtures.py). No test touches the network.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.worldbank import (
    INDICATORS,
    ChangeReport,
    Observation,
    RefreshError,
    RetryPolicy,
    build_snapshot,
    fetch_indicator,
    read_snapshot,
    refresh_snapshot,
)

FIXTURES = Path(__file__).parent / "fixtures" / "worldbank"
PATH_PREFIX = "/v2/country/all/indicator/"

# Returns a response to send instead of the recording, or None to serve the recording.
Override = Callable[[httpx.Request], httpx.Response | None]


class RecordedWorldBank:
    """MockTransport handler serving the recorded pages, with optional per-indicator overrides."""

    def __init__(self, overrides: dict[str, Override] | None = None) -> None:
        self.overrides = overrides or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.url.host == "api.worldbank.org"
        assert request.url.path.startswith(PATH_PREFIX)
        code = request.url.path.removeprefix(PATH_PREFIX)
        if code in self.overrides:
            response = self.overrides[code](request)
            if response is not None:
                return response
        page = request.url.params["page"]
        recording = FIXTURES / f"{code}.page{page}.json"
        if not recording.exists():
            return httpx.Response(404, text="no recording")
        return httpx.Response(
            200, content=recording.read_bytes(), headers={"Content-Type": "application/json;charset=utf-8"}
        )

    def pages_requested(self, code: str) -> list[int]:
        """Return the page numbers requested for one indicator, in order."""
        return [int(r.url.params["page"]) for r in self.requests if r.url.path == f"{PATH_PREFIX}{code}"]


class RecordingSleep:
    """Stands in for time.sleep: records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def snapshot_path(tmp_path: Path) -> Path:
    """A copy of the small real-rows snapshot, which a refresh may replace."""
    path = tmp_path / "country_indicators.csv"
    shutil.copyfile(FIXTURES / "current_snapshot.csv", path)
    return path


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def run_refresh(
    snapshot_path: Path,
    handler: RecordedWorldBank,
    sleep: RecordingSleep,
    out_path: Path | None = None,
    *,
    dry_run: bool = False,
) -> ChangeReport:
    """Run refresh_snapshot against the mock API; out_path defaults to in-place."""
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return refresh_snapshot(
            snapshot_path,
            out_path or snapshot_path,
            client,
            retry=RetryPolicy(max_attempts=4, backoff=1.0, sleep=sleep),
            dry_run=dry_run,
        )


def rows_by_iso3(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["iso3"]: row for row in csv.DictReader(handle)}


def fail_always(status: int) -> Override:
    return lambda request: httpx.Response(status, text="Service Unavailable")


def fail_first(times: int, make: Override) -> Override:
    """Fail the first `times` requests, then serve the recording."""
    calls = 0

    def override(request: httpx.Request) -> httpx.Response | None:
        nonlocal calls
        calls += 1
        return make(request) if calls <= times else None

    return override


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def assert_unchanged(path: Path, original: bytes) -> None:
    assert path.read_bytes() == original
    # No stray temp files next to the snapshot either.
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# --- fetching and paging ---------------------------------------------------------


def test_fetch_follows_pages_and_sends_the_documented_query(sleep: RecordingSleep) -> None:
    handler = RecordedWorldBank()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        observations = fetch_indicator(client, "SP.POP.TOTL", retry=RetryPolicy(sleep=sleep))

    assert handler.pages_requested("SP.POP.TOTL") == [1, 2, 3]
    first = handler.requests[0]
    assert first.url.path == "/v2/country/all/indicator/SP.POP.TOTL"
    assert dict(first.url.params) == {"format": "json", "per_page": "20000", "date": "2010:2023", "page": "1"}
    assert first.extensions["timeout"]["read"] == 30.0  # a timeout is always set
    # 42 = 6 countries (5 economies + WLD) x 7 years, spread over 3 pages (18 + 18 + 6).
    assert len(observations) == 42
    assert {o.iso3 for o in observations} == {"WLD", "KAZ", "KOR", "ARE", "USA", "VNM"}
    # VNM is only on page 3.
    assert Observation("VNM", 2023, "100352192") in observations
    assert sleep.delays == []


def test_refresh_uses_values_from_every_page(snapshot_path: Path, sleep: RecordingSleep) -> None:
    handler = RecordedWorldBank()
    run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("NY.GDP.PCAP.CD") == [1, 2]
    assert handler.pages_requested("SP.POP.TOTL") == [1, 2, 3]
    rows = rows_by_iso3(snapshot_path)
    # KAZ is on page 1 of NY.GDP.PCAP.CD, USA on page 2.
    assert rows["KAZ"]["gdp_per_capita_usd"] == "12879.4275257974"
    assert rows["USA"]["gdp_per_capita_usd"] == "82586.7847707894"


def test_aggregates_are_filtered_out(snapshot_path: Path, sleep: RecordingSleep) -> None:
    before = rows_by_iso3(snapshot_path)
    run_refresh(snapshot_path, RecordedWorldBank(), sleep)

    after = rows_by_iso3(snapshot_path)
    assert "WLD" in (FIXTURES / "NY.GDP.PCAP.CD.page1.json").read_text()  # the API did send it
    assert list(after) == list(before)  # same economies, same order, no WLD
    # TWN is in the snapshot but absent from the API: kept, with empty values.
    assert after["TWN"]["name"] == "Taiwan, China"
    assert all(after["TWN"][column] == "" for column in INDICATORS)


def test_kor_values_match_the_raw_files(snapshot_path: Path, sleep: RecordingSleep) -> None:
    run_refresh(snapshot_path, RecordedWorldBank(), sleep)

    kor = rows_by_iso3(snapshot_path)["KOR"]
    expected = json.loads((FIXTURES / "kor_expected_from_raw.json").read_text())
    assert set(expected) == set(INDICATORS)
    for column, want in expected.items():
        assert (kor[column], kor[f"{column}_year"]) == (want["value"], want["year"]), column
    # A few spelled out: text exactly as published, latest non-empty year (patents stop in 2021).
    assert (kor["rd_exp_pct_gdp"], kor["rd_exp_pct_gdp_year"]) == ("4.94352", "2023")
    assert (kor["gdp_per_capita_usd"], kor["gdp_per_capita_usd_year"]) == ("35674.095995632", "2023")
    assert (kor["patent_apps_resident"], kor["patent_apps_resident_year"]) == ("186245", "2021")
    assert kor["name"] == "Korea, Rep." and kor["income_group"] == "High income"


def test_refreshing_an_up_to_date_snapshot_changes_nothing(
    snapshot_path: Path, sleep: RecordingSleep
) -> None:
    original = snapshot_path.read_bytes()
    report = run_refresh(snapshot_path, RecordedWorldBank(), sleep)

    assert (report.total_changed, report.total_added, report.total_removed) == (0, 0, 0)
    assert report.written and report.economies == 6
    # Same bytes: no rounding, same quoting and line endings.
    assert snapshot_path.read_bytes() == original


# --- retries -------------------------------------------------------------------


def test_5xx_then_success_is_retried(snapshot_path: Path, sleep: RecordingSleep) -> None:
    handler = RecordedWorldBank({"SH.MED.BEDS.ZS": fail_first(2, fail_always(503))})
    report = run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("SH.MED.BEDS.ZS") == [1, 1, 1]
    assert sleep.delays == [1.0, 2.0]  # exponential backoff
    assert report.written


def test_connect_error_then_success_is_retried(snapshot_path: Path, sleep: RecordingSleep) -> None:
    handler = RecordedWorldBank({"NY.GDP.PCAP.CD": fail_first(1, connect_error)})
    run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("NY.GDP.PCAP.CD") == [1, 1, 2]
    assert sleep.delays == [1.0]


def test_429_honours_retry_after(snapshot_path: Path, sleep: RecordingSleep) -> None:
    too_many = fail_first(1, lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    run_refresh(snapshot_path, RecordedWorldBank({"GE.EST": too_many}), sleep)

    assert sleep.delays == [7.0]


def test_client_errors_are_not_retried(snapshot_path: Path, sleep: RecordingSleep) -> None:
    original = snapshot_path.read_bytes()
    handler = RecordedWorldBank({"GE.EST": fail_always(400)})
    with pytest.raises(RefreshError, match=r"GE\.EST page 1: HTTP 400"):
        run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("GE.EST") == [1]
    assert sleep.delays == []
    assert_unchanged(snapshot_path, original)


# --- failures leave the snapshot untouched ------------------------------------------


def test_persistent_500_half_way_raises_and_leaves_file_identical(
    snapshot_path: Path, sleep: RecordingSleep
) -> None:
    original = snapshot_path.read_bytes()
    handler = RecordedWorldBank({"SH.MED.BEDS.ZS": fail_always(500)})  # 8th of 14 indicators
    with pytest.raises(RefreshError, match=r"SH\.MED\.BEDS\.ZS page 1: gave up after 4 attempts.*HTTP 500"):
        run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("NY.GDP.PCAP.CD") == [1, 2]  # earlier indicators were fetched
    assert handler.pages_requested("SH.MED.BEDS.ZS") == [1, 1, 1, 1]  # bounded retries
    assert sleep.delays == [1.0, 2.0, 4.0]
    assert handler.pages_requested("GE.EST") == []  # stopped at the first failure
    assert_unchanged(snapshot_path, original)


def test_connection_error_on_second_page_leaves_file_identical(
    snapshot_path: Path, sleep: RecordingSleep
) -> None:
    original = snapshot_path.read_bytes()

    def page_two_unreachable(request: httpx.Request) -> httpx.Response | None:
        return connect_error(request) if request.url.params["page"] == "2" else None

    handler = RecordedWorldBank({"SP.POP.TOTL": page_two_unreachable})
    with pytest.raises(RefreshError, match=r"SP\.POP\.TOTL page 2: gave up.*ConnectError"):
        run_refresh(snapshot_path, handler, sleep)

    assert_unchanged(snapshot_path, original)


def test_failure_leaves_a_separate_out_path_uncreated(
    snapshot_path: Path, tmp_path: Path, sleep: RecordingSleep
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(RefreshError):
        run_refresh(
            snapshot_path, RecordedWorldBank({"IP.PAT.RESD": fail_always(502)}), sleep, out_dir / "new.csv"
        )

    assert list(out_dir.iterdir()) == []


# The shape the API uses for errors (HTTP 200), e.g. for an unknown parameter value.
WB_ERROR_MESSAGE = [
    {"message": [{"id": "120", "key": "Invalid value", "value": "The provided parameter value is not valid"}]}
]


def recorded_ge_est_with(pattern: bytes, replacement: bytes) -> bytes:
    """The recorded GE.EST page with the first match of `pattern` replaced."""
    return re.sub(pattern, replacement, (FIXTURES / "GE.EST.page1.json").read_bytes(), count=1)


MALFORMED_BODIES = {
    "not json": b"<html><body>Service temporarily unavailable</body></html>",
    "truncated json": (FIXTURES / "GE.EST.page1.json").read_bytes()[:500],
    "wb error message": json.dumps(WB_ERROR_MESSAGE).encode(),
    "header only": b'[{"page":1,"pages":1,"per_page":20000,"total":0}]',
    "observations not a list": b'[{"page":1,"pages":1,"per_page":20000,"total":1},{"value":1}]',
    "missing pages": b'[{"page":1,"per_page":20000,"total":0},[]]',
    "NaN value": recorded_ge_est_with(rb'"value":-?[0-9.]+', b'"value":NaN'),
    "text value": recorded_ge_est_with(rb'"value":-?[0-9.]+', b'"value":"n/a"'),
    "other indicator": recorded_ge_est_with(rb'"id":"GE.EST"', b'"id":"GE.PER.RNK"'),
    "quarterly date": recorded_ge_est_with(rb'"date":"2023"', b'"date":"2023Q1"'),
    "short total": recorded_ge_est_with(rb'"total":35', b'"total":36'),
    "no data at all": b'[{"page":0,"pages":0,"per_page":20000,"total":0},null]',
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_malformed_responses_are_refused(snapshot_path: Path, sleep: RecordingSleep, body: bytes) -> None:
    original = snapshot_path.read_bytes()
    handler = RecordedWorldBank({"GE.EST": lambda request: httpx.Response(200, content=body)})
    with pytest.raises(RefreshError, match=r"GE\.EST"):
        run_refresh(snapshot_path, handler, sleep)

    assert handler.pages_requested("GE.EST") == [1]  # a malformed body is not retried
    assert_unchanged(snapshot_path, original)


def test_wb_error_message_is_reported(sleep: RecordingSleep) -> None:
    handler = RecordedWorldBank({"XX.NOPE": lambda request: httpx.Response(200, json=WB_ERROR_MESSAGE)})
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(RefreshError, match="120 Invalid value: The provided parameter value is not valid"),
    ):
        fetch_indicator(client, "XX.NOPE", retry=RetryPolicy(sleep=sleep))


# --- building and reporting -------------------------------------------------------


def test_change_report_counts_changes(snapshot_path: Path, sleep: RecordingSleep) -> None:
    # Edit the current snapshot so the (unchanged) API data differs from it in known ways.
    fieldnames, rows = read_snapshot(snapshot_path)
    by_iso3 = {row["iso3"]: row for row in rows}
    by_iso3["KOR"]["gdp_per_capita_usd"] = "1.0"  # changed value
    by_iso3["VNM"]["gdp_per_capita_usd_year"] = "2022"  # changed year only
    by_iso3["USA"]["rd_exp_pct_gdp"] = by_iso3["USA"]["rd_exp_pct_gdp_year"] = ""  # will be added
    by_iso3["TWN"]["population"], by_iso3["TWN"]["population_year"] = "23000000", "2023"  # will be removed
    with snapshot_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    report = run_refresh(snapshot_path, RecordedWorldBank(), sleep)

    counts = {col: (c.changed, c.added, c.removed) for col, c in report.columns.items()}
    assert counts == {
        **{column: (0, 0, 0) for column in INDICATORS},
        "gdp_per_capita_usd": (2, 0, 0),
        "rd_exp_pct_gdp": (0, 1, 0),
        "population": (0, 0, 1),
    }
    assert (report.total_changed, report.total_added, report.total_removed) == (2, 1, 1)
    examples = [str(e) for c in report.columns.values() for e in c.examples]
    assert "KOR gdp_per_capita_usd: 1.0 (2023) -> 35674.095995632 (2023)" in examples
    assert "USA rd_exp_pct_gdp: (empty) -> 3.44716 (2023)" in examples
    assert "TWN population: 23000000 (2023) -> (empty)" in examples
    text = str(report)
    assert "2 changed, 1 added, 1 removed" in text
    assert "KOR gdp_per_capita_usd: 1.0 (2023) -> 35674.095995632 (2023)" in text
    assert rows_by_iso3(snapshot_path)["TWN"]["population"] == ""


def test_dry_run_reports_without_writing(snapshot_path: Path, sleep: RecordingSleep) -> None:
    original = snapshot_path.read_bytes()
    report = run_refresh(snapshot_path, RecordedWorldBank(), sleep, dry_run=True)

    assert not report.written
    assert "not written" in str(report)
    assert_unchanged(snapshot_path, original)


def test_writes_to_a_separate_out_path_and_keeps_the_current_file(
    snapshot_path: Path, tmp_path: Path, sleep: RecordingSleep
) -> None:
    original = snapshot_path.read_bytes()
    out = tmp_path / "new" / "country_indicators.csv"
    out.parent.mkdir()
    run_refresh(snapshot_path, RecordedWorldBank(), sleep, out_path=out)

    assert snapshot_path.read_bytes() == original
    assert out.read_bytes() == original  # the recordings agree with the shipped values


def test_build_snapshot_takes_latest_non_empty_year_in_range() -> None:
    fieldnames, rows = read_snapshot(FIXTURES / "current_snapshot.csv")
    observations = {code: [Observation("KOR", 2015, "1")] for code in INDICATORS.values()}
    observations["SP.POP.TOTL"] = [
        Observation("KOR", 2024, "999"),  # outside 2010-2023: ignored
        Observation("KOR", 2023, None),  # empty: ignored
        Observation("KOR", 2021, "51769539"),
        Observation("KOR", 2022, "51672569"),  # latest usable, whatever the order
        Observation("KOR", 2009, "1"),
        Observation("WLD", 2023, "8000000000"),  # aggregate: ignored
        Observation("", 2023, "1"),  # aggregate without an iso3 code: ignored
    ]
    new_rows = {row["iso3"]: row for row in build_snapshot(rows, fieldnames, observations)}

    assert set(new_rows) == {row["iso3"] for row in rows}
    assert (new_rows["KOR"]["population"], new_rows["KOR"]["population_year"]) == ("51672569", "2022")
    assert (new_rows["USA"]["population"], new_rows["USA"]["population_year"]) == ("", "")
    assert list(new_rows["KOR"]) == fieldnames


def test_build_snapshot_refuses_to_blank_a_whole_column() -> None:
    fieldnames, rows = read_snapshot(FIXTURES / "current_snapshot.csv")
    observations = {code: [Observation("KOR", 2020, "1")] for code in INDICATORS.values()}
    observations["GE.EST"] = [Observation("WLD", 2023, "0.1")]  # only an aggregate

    with pytest.raises(RefreshError, match=r"GE\.EST"):
        build_snapshot(rows, fieldnames, observations)
