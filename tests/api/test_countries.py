"""Reference data: derivation on real rows, provenance of overrides, 404 suggestions, discovery."""

from __future__ import annotations

import pytest

from app.services import reference
from scoring.derive import derive_stage


def test_korea_shows_rd_intensity_with_source_and_year(client):
    body = client.get("/v1/countries/KOR").json()
    rd = next(i for i in body["indicators"] if i["indicator"] == "rd_exp_pct_gdp")
    assert rd == {
        "indicator": "rd_exp_pct_gdp",
        "code": "GB.XPD.RSDV.GD.ZS",
        "name": "R&D expenditure, % of GDP",
        "value": pytest.approx(4.94352),
        "year": 2023,
        "source": "UNESCO UIS via World Bank WDI",
    }
    assert body["profile"]["innovation_stage"]["value"] == "chaser"  # stated by the seed
    assert body["profile"]["rd"]["level"] == "high"


@pytest.mark.parametrize(
    ("iso3", "stage", "why"),
    [
        ("USA", "leader", "named by seeds/000"),
        ("KOR", "chaser", "named by seeds/000 although its figures would make it a leader"),
        ("FRA", None, "decided by its own figures, checked below"),
        ("ARE", "chaser", "high income, R&D 1.49 %, 2,607 researchers/million"),
        ("BRA", "chaser", "upper middle income, R&D 1.19 %"),
        ("KAZ", "developing", "upper middle income, R&D 0.14 %, 693 researchers/million"),
        ("VNM", "developing", "lower middle income"),
        ("KEN", "developing", "lower middle income"),
    ],
)
def test_stage_derivation_on_real_rows(session, iso3, stage, why):
    table = reference.reference_table(session)
    country = table.countries[iso3]
    derived = derive_stage(iso3, country.income_group, country.observations)
    if iso3 == "FRA":  # decided by the figures: show them rather than trust the label
        rd, _ = country.observations["rd_exp_pct_gdp"]
        res, _ = country.observations["researchers_per_million"]
        expected = "leader" if rd >= 2.5 and res >= 4000 else "chaser"
        assert derived.value.value == expected
    else:
        assert derived.value.value == stage, why


def test_unknown_code_is_404_with_close_matches(client):
    response = client.get("/v1/countries/KAX")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    codes = [s["iso3"] for s in response.json()["suggestions"]]
    assert "KAZ" in codes


def test_name_like_query_suggests_by_name(client):
    response = client.get("/v1/countries/Kazakh")
    assert response.status_code == 404
    assert "KAZ" in [s["iso3"] for s in response.json()["suggestions"]]


def test_caller_values_override_reference_and_provenance_says_so(client):
    body = client.post(
        "/v1/match",
        json={"country": "KAZ", "profile": {"government_investment_will": "high"}, "method": "rules"},
    ).json()
    used = body["profile_used"]
    assert used["government_investment_will"]["source"] == "caller"
    assert used["government_investment_will"]["value"] == "high"
    assert used["rd"]["source"] == "reference" and used["rd"]["year"] == 2023
    assert used["healthcare_capacity"]["source"] == "derived"
    assert "physicians_per_1000" in used["healthcare_capacity"]["indicator"]
    assert body["data_version"] and body["country"]["iso3"] == "KAZ"


def test_country_match_returns_a_full_stored_match(client):
    response = client.get("/v1/countries/KAZ/match?method=rules")
    assert response.status_code == 200
    body = response.json()
    assert len(body["ranking"]) == 4
    assert client.get(f"/v1/assessments/{body['assessment_id']}").json() == body


def test_missing_figures_are_reported_and_lower_confidence(client):
    taiwan = client.get("/v1/countries/TWN").json()  # no WDI data at all
    assert "rd" in taiwan["missing"]
    full = client.get("/v1/countries/DEU/match?method=rules").json()
    assert full["confidence"] == pytest.approx(1.0) and full["missing_inputs"] == []
    # The same country with four of its seven inputs unknown (given as the core three alone).
    core = {k: full["profile_used"][k]["value"] for k in ("innovation_stage", "government_investment_will")}
    partial = client.post(
        "/v1/match", json={"profile": {**core, "rd_level": full["profile_used"]["rd"]["level"]}}
    )
    assert partial.status_code == 201, partial.text
    assert set(partial.json()["missing_inputs"]) == {
        "healthcare_capacity",
        "research_capacity",
        "manufacturing_base",
        "private_sector_strength",
    }
    assert partial.json()["confidence"] < full["confidence"]


def test_country_list_filters_and_paginates(client):
    page = client.get("/v1/countries", params={"income_group": "Low income", "limit": 5}).json()
    assert page["total"] > 5 and len(page["items"]) == 5
    assert all(c["income_group"] == "Low income" for c in page["items"])
    assert all(c["profile"]["innovation_stage"]["value"] == "developing" for c in page["items"])


def test_target_discovery_ranks_countries_for_one_model(client):
    body = client.get("/v1/cluster-models/production/countries", params={"limit": 10}).json()
    scores = [c["score"] for c in body["items"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    only_developing = client.get(
        "/v1/cluster-models/production/countries", params={"stage": "developing"}
    ).json()
    assert {c["stage"] for c in only_developing["items"]} == {"developing"}


def test_loading_the_same_snapshot_twice_changes_nothing(session):
    version, changed = reference.load_snapshot(session, path=reference.PROJECT_DATA / reference.SNAPSHOT_FILE)
    assert not changed and version == reference.current_version(session)


def test_a_broken_snapshot_is_refused_and_data_stay(session, tmp_path):
    before = reference.current_version(session)
    good = (reference.PROJECT_DATA / reference.SNAPSHOT_FILE).read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([*good[:5], good[5].replace(",", ",oops,", 1), *good[6:]]), encoding="utf-8")
    with pytest.raises(reference.SnapshotError) as info:
        reference.load_snapshot(session, path=broken)
    assert "line 6" in str(info.value.detail) or "iso3" in str(info.value.detail)
    session.rollback()
    assert reference.current_version(session) == before
    assert reference.reference_table(session).countries["KOR"].name == "Korea, Rep."


def test_country_list_as_csv_opens_in_pandas_with_korean_safe_encoding(client):
    import io

    import pandas as pd

    response = client.get("/v1/countries", params={"format": "csv", "limit": 20})
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.startswith(b"\xef\xbb\xbf")  # BOM, so Excel reads UTF-8
    frame = pd.read_csv(io.BytesIO(response.content), encoding="utf-8-sig")
    assert len(frame) == 20 and "iso3" in frame.columns


def test_batch_as_csv_round_trips_korean_model_names(client):
    import io

    import pandas as pd

    items = [
        {
            "profile": {
                "innovation_stage": "developing",
                "rd_level": "low",
                "government_investment_will": "high",
            },
            "method": "rules",
        }
    ]
    response = client.post("/v1/match/batch", json={"items": items}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.BytesIO(response.content), encoding="utf-8-sig")
    assert len(frame) == 4  # one row per model
    korean = " ".join(str(v) for v in frame.astype(str).to_numpy().ravel())
    assert "생산중심형" in korean


def test_a_high_income_economy_with_little_rd_is_a_chaser_not_developing(session):
    table = reference.reference_table(session)
    # Andorra: high income; its R&D and researcher figures are below the chaser bars.
    andorra = table.countries["AND"]
    derived = derive_stage("AND", andorra.income_group, andorra.observations)
    assert andorra.income_group == "High income"
    assert derived.value.value == "chaser"
