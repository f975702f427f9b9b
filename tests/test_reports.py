"""Report pages, SVG charts and target discovery, through httpx on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from app import charts
from app.errors import NotFound
from app.schemas import MatchResponse
from app.services import discovery, report, weight_profiles
from app.services.report import (
    LEAD,
    MAP_CLUSTERS,
    REFERENCE_CLUSTERS,
    ROLES_KO,
    STAGE_POSITION,
    country_position,
    ideal_profiles,
    map_clusters,
)
from scoring.cluster_models import CLUSTER_MODELS, MODEL_IDS
from scoring.criteria import CRITERIA, FIT_CURVES, STAGE_FIT
from scoring.profile import Stage

SVG_NS = "{http://www.w3.org/2000/svg}"
UAE_LIKE = {
    "profile": {"innovation_stage": "chaser", "rd_level": "high", "government_investment_will": "high"},
    "method": "rules",
}


@pytest.fixture
def vnm(client) -> dict:
    response = client.post("/v1/match", json={"country": "VNM", "method": "rules"})
    assert response.status_code == 201, response.text
    return response.json()


def report_of(client, assessment_id: str, **params: str):
    return client.get(f"/v1/assessments/{assessment_id}/report", params=params)


# --- the page --------------------------------------------------------------------------------


def test_report_shows_country_profile_provenance_ranking_and_versions(client, vnm):
    response = report_of(client, vnm["assessment_id"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert '<html lang="en">' in page
    assert "Vietnam (VNM)" in page and "Lower middle income" in page
    for used in vnm["profile_used"].values():
        if used.get("indicator"):
            assert used["indicator"].split(",")[0] in page  # provenance of every derived value
    assert "derived from indicators" in page
    for ranked in vnm["ranking"]:
        assert ranked["name_en"] in page and f"{ranked['score']:.3f}" in page
    for version in (vnm["engine_version"], vnm["data_version"], "default v1"):
        assert version in page


def test_report_has_all_sections_and_three_inline_charts(client, vnm):
    page = report_of(client, vnm["assessment_id"]).text
    for section in (
        "summary",
        "profile",
        "ranking",
        "gates",
        "robustness",
        "counterfactual",
        "fit",
        "positioning",
        "model",
        "versions",
    ):
        assert f'id="{section}"' in page
    assert page.count("<svg ") == 3
    assert "@page { size: A4" in page


def test_report_is_self_contained(client, vnm):
    response = report_of(client, vnm["assessment_id"])
    page = response.text
    # Nothing to fetch: no scripts, no external stylesheets, fonts or images.
    assert "<script" not in page and '<link rel="stylesheet"' not in page and "@import" not in page
    assert not re.search(r"""(src|href)=["']?https?://""", page)
    assert not re.search(r"url\(\s*['\"]?https?://", page)
    assert "default-src 'none'" in response.headers.get("content-security-policy", "")


def test_report_in_korean_uses_korean_labels_and_roles(client, vnm):
    page = report_of(client, vnm["assessment_id"], lang="ko").text
    assert '<html lang="ko">' in page
    assert "추천 모델" in page and "생산중심형" in page
    recommended = vnm["recommended_model"]
    for actor, duties in ROLES_KO[recommended]:
        assert actor in page and duties in page
    assert "개발도상국" in page  # the stage, translated


def test_report_defaults_to_english(client, vnm):
    default, english = (
        report_of(client, vnm["assessment_id"]),
        report_of(client, vnm["assessment_id"], lang="en"),
    )
    assert default.status_code == english.status_code == 200
    assert default.text == english.text


def test_report_of_unknown_assessment_is_404_problem(client):
    response = report_of(client, "0" * 32)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "does not exist" in response.json()["detail"]


def test_report_with_unknown_language_is_422_naming_lang(client, vnm):
    response = report_of(client, vnm["assessment_id"], lang="fr")
    assert response.status_code == 422
    assert any(e["loc"][-1] == "lang" for e in response.json()["errors"])


def test_composite_report_lists_korean_and_foreign_reference_clusters_apart(client):
    created = client.post("/v1/match", json=UAE_LIKE).json()
    assert created["recommended_model"] == "composite"
    page = report_of(client, created["assessment_id"]).text
    korean = re.search(r'<ul class="korean_clusters">(.*?)</ul>', page).group(1)
    foreign = re.search(r'<ul class="foreign_clusters">(.*?)</ul>', page).group(1)
    assert "Osong" in korean and "Daegu-Gyeongbuk" in korean and "Boston" not in korean
    assert "Boston biotech cluster" in foreign and "Singapore Biopolis" in foreign
    assert "Profile given by the caller" in page  # no country: said so, not left blank


def test_report_escapes_what_it_prints(client):
    # The only free text a caller controls is the weight profile name, and its pattern forbids markup;
    # the builder itself must still escape everything it is handed.
    element = charts.Element("text", text='<script>&"')
    assert element.render() == "<text>&lt;script&gt;&amp;&quot;</text>"
    assert charts.Element("g", {"data_x": '"><b>'}).render() == '<g data-x="&quot;&gt;&lt;b&gt;"/>'


# --- data behind the page --------------------------------------------------------------------


def test_every_reference_cluster_is_named_in_korean_and_sided():
    for model in CLUSTER_MODELS:
        for cluster in model.reference_clusters:
            assert cluster in REFERENCE_CLUSTERS, cluster


def test_korean_roles_pair_with_the_english_roles():
    for model in CLUSTER_MODELS:
        assert len(ROLES_KO[model.id]) == len(model.roles), model.id


def test_who_leads_agrees_with_led_by():
    for model in CLUSTER_MODELS:
        assert LEAD[model.id][0].lower().startswith(model.led_by)
        assert LEAD[model.id][1].startswith("공공" if model.led_by == "public" else "민간")


def test_ideal_profile_sits_where_each_fit_curve_peaks():
    ideals = ideal_profiles()
    for model in MODEL_IDS:
        stage_fit = {STAGE_POSITION[s]: f for s, f in STAGE_FIT[model].items()}
        nearest = min(stage_fit, key=lambda x: abs(x - ideals[model][0]))
        assert stage_fit[nearest] == max(stage_fit.values())
        for j, criterion in enumerate(CRITERIA[1:], start=1):
            xs, ys = FIT_CURVES[model][criterion]
            assert np.interp(ideals[model][j], xs, ys) == pytest.approx(max(ys)), (model, criterion)


def test_ideal_profile_reads_like_the_seed():
    ideals = {m: dict(zip(CRITERIA, v, strict=True)) for m, v in ideal_profiles().items()}
    assert ideals["production"]["stage"] == STAGE_POSITION[Stage.DEVELOPING]
    assert ideals["production"]["rd"] == 0.0  # a production base, not research
    assert ideals["composite"]["rd"] == 1.0 and ideals["composite"]["public_investment_will"] == 1.0
    assert ideals["hospital"]["healthcare_capacity"] == 1.0
    assert ideals["research"]["research_capacity"] == 1.0
    assert ideals["production"]["healthcare_capacity"] == 0.5  # flat curve: the middle


def test_country_position_follows_industry_against_science():
    values = dict.fromkeys(CRITERIA, 0.5)
    industrial = country_position(
        [{**values, "manufacturing_base": 0.9, "research_capacity": 0.2}[c] for c in CRITERIA]
    )
    scientific = country_position(
        [{**values, "manufacturing_base": 0.2, "research_capacity": 0.9}[c] for c in CRITERIA]
    )
    assert industrial is not None and scientific is not None
    assert industrial[1] > 0.5 > scientific[1]
    assert scientific[0] > industrial[0]  # more research capacity, more mature
    assert country_position([{**values, "manufacturing_base": None}[c] for c in CRITERIA]) is None


def test_positioning_map_holds_table_1_and_highlights_the_recommended_models_cases():
    assert {q for *_, q, _ in MAP_CLUSTERS} == {1, 2, 3, 4}
    by_model = {m: {c.label for c in map_clusters(m, "en") if c.highlighted} for m in MODEL_IDS}
    assert by_model == {
        "production": {"Wonju"},
        "hospital": {"Texas"},
        "research": {"Daejeon", "San Diego"},
        "composite": {"Osong", "Boston"},
    }


# --- charts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["radar", "contributions", "positioning"])
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_each_chart_is_a_standalone_accessible_svg(client, vnm, name, lang):
    response = client.get(f"/v1/assessments/{vnm['assessment_id']}/charts/{name}.svg", params={"lang": lang})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{SVG_NS}svg" and root.get("role") == "img"
    assert root.find(f"{SVG_NS}title").text
    assert len(list(root.iter())) > 40


def test_contribution_bars_are_told_apart_by_pattern_as_well_as_colour(client, vnm):
    svg = client.get(f"/v1/assessments/{vnm['assessment_id']}/charts/contributions.svg").text
    root = ET.fromstring(svg)
    patterns = root.findall(f".//{SVG_NS}pattern")
    assert len(patterns) == len(CRITERIA)
    overlays = [p for p in patterns if len(list(p)) > 1]
    assert len(overlays) >= len(CRITERIA) - 1  # all but one carry a black overlay
    segments = [r for r in root.iter(f"{SVG_NS}rect") if r.get("data-criterion")]
    assert segments and all(r.get("fill", "").startswith("url(#") for r in segments)
    assert {c.upper() for c in charts.OKABE_ITO} <= {p[0].get("fill").upper() for p in patterns}


def test_radar_draws_the_country_and_each_models_ideal(client, vnm):
    root = ET.fromstring(client.get(f"/v1/assessments/{vnm['assessment_id']}/charts/radar.svg").content)
    panels = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "panel"]
    assert [p.get("data-model") for p in panels] == [r["model"] for r in vnm["ranking"]]
    for panel in panels:
        kinds = [p.get("class") for p in panel.iter(f"{SVG_NS}polygon")]
        assert kinds.count("ideal") == 1 and kinds.count("country") == 1


def test_positioning_places_the_country_and_explains_how(client, vnm):
    root = ET.fromstring(client.get(f"/v1/assessments/{vnm['assessment_id']}/charts/positioning.svg").content)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "Vietnam (VNM)" in texts and "approximation" in texts
    assert any(g.get("class") == "country" for g in root.iter(f"{SVG_NS}g"))
    assert len([g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "cluster"]) == len(MAP_CLUSTERS)


def test_unknown_chart_name_is_422_and_unknown_assessment_404(client, vnm):
    assert client.get(f"/v1/assessments/{vnm['assessment_id']}/charts/pie.svg").status_code == 422
    assert client.get(f"/v1/assessments/{'f' * 32}/charts/radar.svg").status_code == 404


# --- target discovery ----------------------------------------------------------------------------


def test_rank_countries_returns_plain_ranked_dicts(session):
    weights = weight_profiles.resolve(session, name="default", version=None, overrides=None).weights
    rows = discovery.rank_countries(session, model_id="hospital", weights=weights, limit=15)
    assert len(rows) == 15
    assert set(rows[0]) == {"iso3", "name", "region", "income_group", "stage", "score", "rank", "confidence"}
    assert [r["rank"] for r in rows] == list(range(1, 16))
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert all(0 <= r["score"] <= 1 and 0 < r["confidence"] <= 1 for r in rows)


def test_rank_countries_agrees_with_a_rules_match_of_the_same_country(client, session):
    weights = weight_profiles.resolve(session, name="default", version=None, overrides=None).weights
    match = client.post("/v1/match", json={"country": "VNM", "method": "rules"}).json()
    for model in MODEL_IDS:
        rows = discovery.rank_countries(session, model_id=model, weights=weights)
        vnm = next(r for r in rows if r["iso3"] == "VNM")
        expected = next(r["rule_score"] for r in match["ranking"] if r["model"] == model)
        assert vnm["score"] == pytest.approx(expected, abs=1e-6), model


def test_rank_countries_filters_by_region_income_and_stage(session):
    weights = weight_profiles.resolve(session, name="default", version=None, overrides=None).weights
    rows = discovery.rank_countries(
        session, model_id="production", weights=weights, region="east asia & pacific", stage="developing"
    )
    assert rows and all(r["region"] == "East Asia & Pacific" and r["stage"] == "developing" for r in rows)
    low = discovery.rank_countries(session, model_id="production", weights=weights, income_group="Low income")
    assert low and all(r["income_group"] == "Low income" for r in low)
    assert discovery.rank_countries(session, model_id="production", weights=weights, region="Atlantis") == []


def test_rank_countries_refuses_an_unknown_model(session):
    with pytest.raises(NotFound, match="unknown cluster model"):
        discovery.rank_countries(session, model_id="spaceport", weights={"stage": 1.0})


def test_model_countries_chart_draws_the_top_n(client):
    response = client.get("/v1/cluster-models/research/countries.svg", params={"limit": 12, "lang": "ko"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    bars = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "bar"]
    assert len(bars) == 12
    assert "연구중심형" in root.find(f"{SVG_NS}title").text


def test_model_countries_chart_refuses_unknown_model_and_bad_limit(client):
    assert client.get("/v1/cluster-models/spaceport/countries.svg").status_code == 422
    assert client.get("/v1/cluster-models/research/countries.svg", params={"limit": 0}).status_code == 422


def test_routes_are_documented_for_swagger(client):
    spec = client.get("/openapi.json").json()
    for path, media in (
        ("/v1/assessments/{assessment_id}/report", "text/html"),
        ("/v1/assessments/{assessment_id}/charts/{name}.svg", "image/svg+xml"),
        ("/v1/cluster-models/{model_id}/countries.svg", "image/svg+xml"),
        ("/v1/cluster-models/{model_id}/countries.csv", "text/csv"),
    ):
        operation = spec["paths"][path]["get"]
        assert " / " in operation["summary"] and operation["description"]
        assert media in operation["responses"]["200"]["content"]
        assert "404" in operation["responses"] and "422" in operation["responses"]


def test_report_service_renders_from_the_stored_body_alone(session, vnm):
    # The page is a function of the answer alone: the one stored gives the page that the answer as
    # the caller received it gives, with nothing read from the reference data or the weights now.
    stored = report.render_report(session, assessment_id=vnm["assessment_id"], lang="en")
    base = f"/v1/assessments/{vnm['assessment_id']}"
    assert stored == report.report_html(MatchResponse.model_validate(vnm), "en", base_path=base)
    assert stored != report.report_html(MatchResponse.model_validate(vnm), "ko", base_path=base)
