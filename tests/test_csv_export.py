"""CSV exports: opened with pandas as a consultant's spreadsheet would, Korean text included."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from app.csv_export import (
    BATCH_COLUMNS,
    CSV_MEDIA_TYPE,
    MODEL_RANKING_COLUMNS,
    batch_csv_response,
    batch_csv_rows,
    content_disposition,
    country_csv_rows,
    csv_response,
    wants_csv,
)
from app.schemas import BatchItemError
from scoring.cluster_models import MODEL_IDS
from tests.factories import match_body

BOM = b"\xef\xbb\xbf"


def read(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content), encoding="utf-8-sig", keep_default_na=False, na_values=[""])


def test_csv_response_is_utf8_with_bom_and_a_download_name():
    response = csv_response([{"a": 1}], "models.csv")
    assert response.body.startswith(BOM)
    assert response.media_type == CSV_MEDIA_TYPE == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"models.csv\"; filename*=UTF-8''models.csv"
    )


def test_korean_text_numbers_and_blanks_round_trip_through_pandas():
    rows = [
        {"model": "hospital", "name_ko": "병원중심형", "score": 0.734512, "rank": 1, "note": None},
        {
            "model": "composite",
            "name_ko": "복합형(완성형)",
            "score": -0.5,
            "rank": 4,
            "note": '쉼표, 따옴표 "포함"',
        },
    ]
    frame = read(csv_response(rows, "x.csv").body)
    assert list(frame.columns) == ["model", "name_ko", "score", "rank", "note"]
    assert frame["name_ko"].tolist() == ["병원중심형", "복합형(완성형)"]
    assert frame["score"].tolist() == [0.734512, -0.5]  # numbers stay numbers, negative ones too
    assert frame["rank"].dtype.kind == "i"
    assert pd.isna(frame.loc[0, "note"]) and frame.loc[1, "note"] == '쉼표, 따옴표 "포함"'


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_neutralised():
    frame = read(csv_response([{"name": '=HYPERLINK("http://x")'}, {"name": "@SUM(A1)"}], "x.csv").body)
    assert frame["name"].tolist() == ['\'=HYPERLINK("http://x")', "'@SUM(A1)"]


def test_header_is_written_even_without_rows():
    frame = read(csv_response([], "empty.csv", columns=["iso3", "score"]).body)
    assert list(frame.columns) == ["iso3", "score"] and frame.empty


def test_non_ascii_file_name_gets_an_ascii_fallback():
    header = content_disposition("보고서 2026.csv")
    assert header.startswith('attachment; filename="')
    assert header.split('"')[1].isascii()
    assert "filename*=UTF-8''%EB%B3%B4%EA%B3%A0%EC%84%9C%202026.csv" in header


@pytest.mark.parametrize(
    ("fmt", "accept", "expected"),
    [
        ("csv", None, True),
        ("CSV", "application/json", True),
        ("json", "text/csv", False),  # an explicit format wins
        (None, "text/csv", True),
        (None, "text/csv, application/json", True),
        (None, "application/json, text/csv", False),
        (None, "*/*", False),
        (None, None, False),
        (None, "text/csv;q=0, application/json", False),  # q=0: not acceptable
        (None, "text/csv;q=0.5, application/json", False),  # JSON preferred by quality
        (None, "application/json;q=0.4, text/csv;q=0.9", True),
        (None, "application/json;q=0.5, text/csv", True),
        (None, "text/csv, */*;q=0.1", True),
        (None, "text/*, application/json;q=0.2", True),
        (None, "Text/CSV; Q=1", True),  # case-insensitive
        (None, "text/csv;q=abc", False),  # a malformed weight is not a preference
        (None, "application/json;q=nan, text/csv", True),  # nor is a weight that is not a number
        (None, "text/csv;q=inf, application/json", False),
        (None, "image/png", False),  # nothing we serve: JSON
    ],
)
def test_wants_csv_reads_the_format_parameter_then_accept(fmt, accept, expected):
    assert wants_csv(fmt, accept) is expected


def test_model_countries_csv_opens_in_pandas_with_korean_model_names(client):
    response = client.get("/v1/cluster-models/production/countries.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="clustermatch-production-countries.csv"' in response.headers["content-disposition"]
    assert response.content.startswith(BOM)
    frame = read(response.content)
    assert list(frame.columns) == list(MODEL_RANKING_COLUMNS)
    assert set(frame["model_name_ko"]) == {"생산중심형"}
    assert frame["rank"].tolist() == list(range(1, len(frame) + 1))
    assert frame["score"].is_monotonic_decreasing
    assert len(frame) > 150  # every scorable reference country
    json_items = client.get("/v1/cluster-models/production/countries.csv", params={"limit": 5})
    assert len(read(json_items.content)) == 5


def test_model_countries_csv_filters_and_keeps_the_header_when_empty(client):
    frame = read(
        client.get("/v1/cluster-models/hospital/countries.csv", params={"region": "Atlantis"}).content
    )
    assert frame.empty and list(frame.columns) == list(MODEL_RANKING_COLUMNS)


def test_batch_rows_give_one_row_per_item_and_model_and_one_per_failed_item(client):
    items = [match_body(), {"country": "VNM", "method": "rules"}, {"profile": {"innovation_stage": "nope"}}]
    results = client.post("/v1/match/batch", json={"items": items}).json()["results"]
    rows = batch_csv_rows(results)
    assert len(rows) == 2 * len(MODEL_IDS) + 1

    frame = read(batch_csv_response(results).body)
    assert list(frame.columns) == list(BATCH_COLUMNS)
    good = frame[frame["status"] == 201]
    assert good.groupby("item_index")["model"].apply(list).tolist() == [
        [r["model"] for r in results[0]["ranking"]],
        [r["model"] for r in results[1]["ranking"]],
    ]
    assert set(good["model_name_ko"]) == {"생산중심형", "병원중심형", "연구중심형", "복합형(완성형)"}
    vnm = good[good["item_index"] == 1]
    assert set(vnm["country_name"]) == {"Vietnam"} and set(vnm["country_iso3"]) == {"VNM"}
    top = results[1]["ranking"][0]
    first = vnm[vnm["rank"] == 1].iloc[0]
    assert first["score"] == pytest.approx(top["score"])
    assert first["contribution_stage"] == pytest.approx(
        next(c["contribution"] for c in top["contributions"] if c["criterion"] == "stage")
    )
    bad = frame[frame["item_index"] == 2].iloc[0]
    assert bad["status"] == 422 and bad["error_title"] == "Invalid request" and pd.isna(bad["model"])


def test_batch_rows_accept_pydantic_results_too():
    error = BatchItemError(index=0, status=404, title="Not found", detail="unknown country code 'XXX'")
    assert batch_csv_rows([error]) == [
        {
            "item_index": 0,
            "status": 404,
            "error_title": "Not found",
            "error_detail": "unknown country code 'XXX'",
        }
    ]


def test_country_rows_flatten_the_profile_for_a_spreadsheet(client):
    items = client.get("/v1/countries", params={"limit": 500}).json()["items"]
    frame = read(csv_response(country_csv_rows(items), "countries.csv").body)
    assert len(frame) == len(items)
    kaz = frame[frame["iso3"] == "KAZ"].iloc[0]
    assert kaz["name"] == "Kazakhstan" and kaz["innovation_stage"] == "developing"
    assert kaz["rd_source"] == "reference" and kaz["rd_year"] == 2023
    assert {"government_investment_will_level", "healthcare_capacity_source", "missing"} <= set(frame.columns)
