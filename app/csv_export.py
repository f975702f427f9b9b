"""CSV exports that open cleanly in Excel (Korean included) and in pandas."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi.responses import Response
from pydantic import BaseModel

from scoring.criteria import CRITERIA

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# A cell that starts with one of these is run as a formula by spreadsheet programs (CSV injection);
# text cells get a leading apostrophe, numbers are left alone so they stay numbers.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping | list | tuple):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """UTF-8 with a byte-order mark: Excel reads Hangul correctly only with the BOM."""
    cols = list(columns) if columns is not None else columns_of(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])
    return buffer.getvalue().encode("utf-8-sig")


def content_disposition(filename: str) -> str:
    """attachment with an ASCII fallback name and the UTF-8 name (RFC 6266, RFC 8187)."""
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def csv_response(
    rows: list[dict[str, Any]], filename: str, *, columns: Sequence[str] | None = None
) -> Response:
    """A downloadable CSV response; `columns` fixes the header when there may be no rows."""
    return Response(
        content=to_csv(rows, columns),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(filename)},
    )


def _preference(ranges: list[tuple[str, float]], media: str) -> tuple[float, int]:
    """(quality, position) of the most specific range in an Accept header that covers `media`;
    (0, len) when none does. Position is where an explicit mention of `media` stands, else len."""
    kind = media.split("/")[0] + "/*"
    for wanted in (media, kind, "*/*"):
        found = [(q, i) for i, (r, q) in enumerate(ranges) if r == wanted]
        if found:
            q, i = found[0]
            return q, i if wanted == media else len(ranges)
    return 0.0, len(ranges)


def wants_csv(format_param: str | None, accept: str | None) -> bool:
    """True for `?format=csv`, or for an Accept header that prefers text/csv over JSON: by quality
    (`q`, RFC 9110 12.5.1), then by the order of explicit mentions; `*/*` alone means JSON."""
    if format_param is not None:
        return format_param.lower() == "csv"
    if not accept:
        return False
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                q = min(max(q, 0.0), 1.0) if math.isfinite(q) else 0.0  # malformed: "not acceptable"
        ranges.append((media.lower(), q))
    csv_q, csv_at = _preference(ranges, "text/csv")
    json_q, json_at = _preference(ranges, "application/json")
    return csv_q > 0 and (csv_q > json_q or (csv_q == json_q and csv_at < json_at))


BATCH_COLUMNS: tuple[str, ...] = (
    "item_index",
    "status",
    "assessment_id",
    "country_iso3",
    "country_name",
    "method",
    "recommended_model",
    "model",
    "model_name_en",
    "model_name_ko",
    "rank",
    "score",
    "rule_score",
    "classifier_probability",
    "first_place_share",
    "gates_failed",
    "confidence",
    "robustness",
    *(f"{kind}_{c}" for c in CRITERIA for kind in ("value", "fit", "contribution")),
    "weight_profile",
    "weight_profile_version",
    "engine_version",
    "model_version",
    "data_version",
    "error_title",
    "error_detail",
)


def batch_csv_rows(results: Sequence[Mapping[str, Any] | BaseModel]) -> list[dict[str, Any]]:
    """Batch results as rows: one per item and model (ranked order), one row for an item that failed."""
    rows: list[dict[str, Any]] = []
    for index, raw in enumerate(results):
        item = raw.model_dump(mode="json") if isinstance(raw, BaseModel) else dict(raw)
        if "ranking" not in item:
            rows.append(
                {
                    "item_index": item.get("index", index),
                    "status": item.get("status"),
                    "error_title": item.get("title"),
                    "error_detail": item.get("detail"),
                }
            )
            continue
        country = item.get("country") or {}
        weight_profile = item.get("weight_profile") or {}
        shares = item.get("first_place_shares") or {}
        common = {
            "item_index": index,
            "status": 201,
            "assessment_id": item.get("assessment_id"),
            "country_iso3": country.get("iso3"),
            "country_name": country.get("name"),
            "method": item.get("method"),
            "recommended_model": item.get("recommended_model"),
            "confidence": item.get("confidence"),
            "robustness": item.get("robustness"),
            "weight_profile": weight_profile.get("name"),
            "weight_profile_version": weight_profile.get("version"),
            "engine_version": item.get("engine_version"),
            "model_version": item.get("model_version"),
            "data_version": item.get("data_version"),
        }
        for ranked in item["ranking"]:
            row = {
                **common,
                "model": ranked["model"],
                "model_name_en": ranked.get("name_en"),
                "model_name_ko": ranked.get("name_ko"),
                "rank": ranked["rank"],
                "score": ranked["score"],
                "rule_score": ranked.get("rule_score"),
                "classifier_probability": ranked.get("classifier_probability"),
                "first_place_share": shares.get(ranked["model"]),
                "gates_failed": sum(1 for g in ranked.get("gates", []) if not g["passed"]),
            }
            for c in ranked.get("contributions", []):
                row[f"value_{c['criterion']}"] = c.get("value")
                row[f"fit_{c['criterion']}"] = c.get("fit")
                row[f"contribution_{c['criterion']}"] = c.get("contribution")
            rows.append(row)
    return rows


def batch_csv_response(
    results: Sequence[Mapping[str, Any] | BaseModel], filename: str = "clustermatch-batch.csv"
) -> Response:
    """The batch endpoint's CSV answer, with a fixed header even when every item failed."""
    return csv_response(batch_csv_rows(results), filename, columns=BATCH_COLUMNS)


MODEL_RANKING_COLUMNS: tuple[str, ...] = (
    "model",
    "model_name_en",
    "model_name_ko",
    "rank",
    "iso3",
    "name",
    "region",
    "income_group",
    "stage",
    "score",
    "confidence",
    "weight_profile",
    "weight_profile_version",
    "data_version",
)


def country_csv_rows(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """GET /v1/countries items flattened: one row per country, each profile input as value, level, source, year."""
    rows = []
    for item in items:
        row: dict[str, Any] = {k: item.get(k) for k in ("iso3", "name", "region", "income_group")}
        for name, derived in (item.get("profile") or {}).items():
            row[name] = derived.get("value")
            row[f"{name}_level"] = derived.get("level")
            row[f"{name}_source"] = derived.get("source")
            row[f"{name}_year"] = derived.get("year")
        row["missing"] = ";".join(item.get("missing") or [])
        rows.append(row)
    return rows
