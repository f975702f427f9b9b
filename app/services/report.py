"""Printable bilingual report of a stored assessment, its charts, and the per-model country charts."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from statistics import mean
from typing import Any, Literal

from sqlalchemy.orm import Session

from app import charts
from app.schemas import PROFILE_INPUTS, MatchResponse, RankedModel
from app.services import assessments, discovery
from scoring.cluster_models import BY_ID, CLUSTER_MODELS, ClusterModel
from scoring.criteria import CRITERIA, CRITERION_INFO, FIT_CURVES, STAGE_FIT
from scoring.profile import LEVEL_VALUE, Level, Stage

Lang = Literal["en", "ko"]
ChartName = Literal["radar", "contributions", "positioning"]
CHART_NAMES: tuple[str, ...] = ("radar", "contributions", "positioning")

# Every fixed phrase of the report, (English, Korean).
TEXT: dict[str, tuple[str, str]] = {
    "title": ("Export model assessment", "바이오메디컬 클러스터 해외진출 모델 평가 보고서"),
    "no_country": (
        "Profile given by the caller (no reference country)",
        "요청자가 입력한 프로필(참조 국가 없음)",
    ),
    "assessment": ("Assessment", "평가 ID"),
    "created": ("Created", "생성 시각"),
    "summary": ("Summary", "요약"),
    "recommended": ("Recommended model", "추천 모델"),
    "score": ("Score", "점수"),
    "rule_score": ("Rule score", "규칙 점수"),
    "classifier_probability": ("Classifier probability", "분류기 확률"),
    "robustness": ("Robustness", "견고성"),
    "robustness_help": (
        "share of perturbed weight vectors under which the recommended model stays first",
        "가중치를 무작위로 흔들었을 때 추천 모델이 1위를 유지한 비율",
    ),
    "confidence": ("Confidence", "신뢰도"),
    "confidence_help": (
        "share of the total weight whose input was known",
        "입력값이 있는 항목의 가중치 비중",
    ),
    "method": ("Method", "방법"),
    "profile": ("Country profile and where each value came from", "국가 프로필과 값의 출처"),
    "input": ("Input", "입력 항목"),
    "value": ("Value", "값"),
    "level": ("Level", "수준"),
    "source": ("Source", "출처"),
    "year": ("Year", "연도"),
    "basis": ("Indicators / note", "지표 / 비고"),
    "ranking": ("Ranking of the four models", "4개 모델 순위"),
    "rank": ("Rank", "순위"),
    "model": ("Model", "모델"),
    "led_by": ("Led by", "주도"),
    "rationale": ("Why", "근거"),
    "contributions": ("Contribution of each criterion", "항목별 기여도"),
    "criterion": ("Criterion", "평가 항목"),
    "weight": ("Weight", "가중치"),
    "contrib_help": (
        "Each cell: contribution = weight × fit (fit in brackets). The contributions of a model add up "
        "to its fit before gates; each failed gate halves it.",
        "각 칸: 기여도 = 가중치 × 적합도(괄호 안이 적합도). 한 모델의 기여도 합이 게이트 적용 전 "
        "적합도이며, 충족하지 못한 게이트마다 절반으로 줄어듭니다.",
    ),
    "gates": ("Gates (conditions a model cannot do without)", "게이트(모델의 필수 조건)"),
    "status": ("Status", "결과"),
    "reason": ("Condition", "조건"),
    "passed": ("✔ passed", "✔ 충족"),
    "failed": ("✘ failed", "✘ 미충족"),
    "not_assessed": ("? not assessed (no input)", "? 평가 불가(입력 없음)"),
    "shares": ("First-place shares under perturbed weights", "가중치 변화 시 1위 비율"),
    "share": ("Share", "비율"),
    "samples": ("samples", "표본"),
    "leave_one_out": ("Leave one criterion out", "항목 하나씩 제외"),
    "without": ("Without", "제외 항목"),
    "top_model": ("First model", "1위 모델"),
    "changes_top": ("Changes the top?", "1위 변경 여부"),
    "yes": ("yes", "예"),
    "no": ("no", "아니오"),
    "counterfactual": ("What would change the answer", "결과를 바꿀 수 있는 조건"),
    "fit_chart": ("Profile against each model's ideal", "모델별 이상적 프로필과 비교"),
    "positioning": ("Positioning map of biomedical clusters", "바이오메디컬 클러스터 포지셔닝"),
    "structure": ("The recommended model: operating structure", "추천 모델의 운영 구조"),
    "lead": ("Who leads", "주도 주체"),
    "who_does_what": ("Who does what", "주체별 역할"),
    "fits_stages": ("Suits countries at stage", "적용 가능 국가"),
    "korean_clusters": ("Korean reference clusters", "국내 사례 클러스터"),
    "foreign_clusters": ("Foreign reference clusters", "해외 사례 클러스터"),
    "versions": ("Versions used (to reproduce this result)", "사용한 버전(재현 정보)"),
    "engine_version": ("Rule engine", "규칙 엔진"),
    "weight_profile": ("Weight profile", "가중치 프로필"),
    "weights_used": ("Weights used", "적용 가중치"),
    "model_version": ("Classifier model version", "분류기 모델 버전"),
    "data_version": ("Reference data version", "참조 데이터 버전"),
    "none_rules_only": ("none (rules only)", "없음(규칙만 사용)"),
    "none": ("none", "없음"),
    "sources": (
        "Sources: KHIDI brief (seeds/000) §II-3 Table 1 (positioning), §II-4 Tables 2-3 (export models); "
        "country figures from the World Bank WDI/WGI, WHO and UNESCO UIS as listed per value above.",
        "출처: 한국보건산업진흥원 보고서(seeds/000) §II-3 표 1(포지셔닝), §II-4 표 2-3(해외진출 모델); "
        "국가 지표는 위 표에 값마다 밝힌 세계은행 WDI/WGI, WHO, UNESCO UIS 자료.",
    ),
    "print_hint": ("Print or save as PDF: Ctrl+P (A4).", "인쇄 또는 PDF 저장: Ctrl+P (A4)."),
    "chart_link": ("SVG", "SVG"),
    "note": ("Note", "참고"),
    "country": ("Country", "국가"),
    "ideal": ("Model's ideal profile", "모델의 이상적 프로필"),
    "missing": ("no data", "자료 없음"),
    "radar_note": (
        "Axes run from 0 (centre) to 1; rings mark the low/medium/high boundaries. The ideal is the input "
        "value at which the model's fit curve peaks (the middle of the peak where a curve is flat). "
        "Stage is drawn as developing 1/6, chaser 1/2, leader 5/6. A hollow dot at the centre is an input "
        "with no data.",
        "축은 0(중심)에서 1까지이며 원은 낮음/중간/높음의 경계입니다. 이상적 프로필은 모델의 적합도 곡선이 "
        "최대가 되는 입력값(곡선이 평평하면 최대 구간의 중앙)입니다. 혁신 단계는 개발도상국 1/6, 혁신추격국 1/2, "
        "혁신선도국 5/6으로 표시합니다. 중심의 빈 점은 자료가 없는 항목입니다.",
    ),
    "contrib_axis": (
        "fit before gates = sum of weight × fit",
        "게이트 적용 전 적합도 = 가중치 × 적합도의 합",
    ),
    "gate_marker": (
        "score after failed gates (each halves the fit)",
        "게이트 미충족 후 점수(미충족마다 절반)",
    ),
    "contrib_note": (
        "Segments are criteria (colour, pattern and legend); numbers are each criterion's contribution.",
        "막대 구간은 평가 항목(색·무늬·범례로 구분)이며 숫자는 항목별 기여도입니다.",
    ),
    "maturity": ("Cluster maturity", "클러스터 성숙도"),
    "low": ("low", "낮음"),
    "high": ("high", "높음"),
    "focus": ("Value-chain focus", "가치사슬 중심"),
    "science": ("science & technology", "과학기술 중심"),
    "commercial": ("commercialisation (production, start-ups)", "상업화(생산·창업) 중심"),
    "korean_cluster": ("Korean cluster", "국내 클러스터"),
    "foreign_cluster": ("Foreign cluster", "해외 클러스터"),
    "reference_of": ("reference case of the recommended model", "추천 모델의 사례"),
    "positioning_note": (
        "Clusters are placed by quadrant only (seeds/000 §II-3 Table 1); their place inside a quadrant "
        "means nothing. The country is an approximation, not a cluster: maturity = mean of its R&D level "
        "and research capacity; focus = 0.5 + (manufacturing base − research capacity) / 2, so a country "
        "whose industry outweighs its science sits toward commercialisation.",
        "클러스터는 사분면만 표시합니다(seeds/000 §II-3 표 1). 사분면 안의 위치는 의미가 없습니다. 국가는 "
        "클러스터가 아니므로 근사치입니다: 성숙도 = R&D 수준과 연구 역량의 평균, 가치사슬 중심 = 0.5 + "
        "(제조 기반 − 연구 역량) / 2 로, 산업이 과학보다 강한 나라일수록 상업화 쪽에 놓입니다.",
    ),
    "not_placed": (
        "(country not placed: R&D/research capacity or manufacturing base unknown)",
        "(국가 미표시: R&D·연구 역량 또는 제조 기반 자료 없음)",
    ),
    "top_countries": (
        "Where {model} fits best: top {n} of {total} countries",
        "{model} 적합 국가 상위 {n}개 (전체 {total}개국)",
    ),
    "country_axis": ("rule score for the model (reference profile)", "모델 규칙 점수(참조 프로필 기준)"),
    "ranking_note": (
        "Scores come from each country's reference profile with weight profile {wp} and data version {dv}; "
        "beside each bar: stage and confidence (share of weight with data).",
        "점수는 국가별 참조 프로필과 가중치 프로필 {wp}, 데이터 버전 {dv}로 계산했습니다. 막대 옆: 혁신 단계와 "
        "신뢰도(자료가 있는 가중치 비중).",
    ),
    "conf_short": ("conf.", "신뢰도"),
    "stage_unknown": ("stage ?", "단계 ?"),
}

STAGE_NAMES: dict[str, tuple[str, str]] = {
    "leader": ("leader", "혁신선도국"),
    "chaser": ("chaser", "혁신추격국"),
    "developing": ("developing", "개발도상국"),
}
LEVEL_NAMES: dict[str, tuple[str, str]] = {
    "low": ("low", "낮음"),
    "medium": ("medium", "중간"),
    "high": ("high", "높음"),
}
SOURCE_NAMES: dict[str, tuple[str, str]] = {
    "caller": ("given by the caller", "요청자 입력"),
    "reference": ("reference data", "참조 자료"),
    "derived": ("derived from indicators", "지표에서 파생"),
    "missing": ("missing", "자료 없음"),
}
SHORT_AXES: dict[str, tuple[str, str]] = {
    "stage": ("Stage", "혁신 단계"),
    "public_investment_will": ("Gov. will", "정부 의지"),
    "rd": ("R&D", "R&D"),
    "healthcare_capacity": ("Healthcare", "의료"),
    "research_capacity": ("Research", "연구"),
    "manufacturing_base": ("Manufacturing", "제조"),
    "private_sector_strength": ("Private sector", "민간"),
}
# API input name -> criterion (shared/API.md names the inputs; scoring names the criteria).
INPUT_CRITERION: dict[str, str] = {
    name: "stage" if field == "innovation_stage" else field for name, field in PROFILE_INPUTS.items()
}

# Seeds/000 Tables 2-3, row 주도 (who leads), in both languages.
LEAD: dict[str, tuple[str, str]] = {
    "production": ("Public: central and local government", "공공(정부, 지자체)"),
    "hospital": ("Private: the hospital", "민간(병원)"),
    "research": ("Private: universities and research institutes", "민간(대학, 연구소)"),
    "composite": ("Public: central and local government", "공공(정부, 지자체)"),
}
# Seeds/000 Tables 2-3, row 기능역할, in the order of ClusterModel.roles: (actor, duties) in Korean.
ROLES_KO: dict[str, tuple[tuple[str, str], ...]] = {
    "production": (
        ("기업", "단일품목 생산, 일자리 창출, 재투자, 기술제휴 등"),
        ("지원기관", "용지 확보, 재원조달, 기업유치, 사업발굴, 전략수립 등 클러스터 경영·관리"),
    ),
    "hospital": (
        ("기업", "유전체 분석, 조직·장기 재생·세포치료 등 제약 바이오·의료기기 개발·생산"),
        ("병원", "용지나 건물을 확보하여 클러스터를 구축하고 입주기업 지원(특허, 인허가, 투자자 추천 등)"),
        ("지원기관", "전임상연구센터, 창업보육센터 등 혁신기술과 제품을 개발할 수 있는 물리적 플랫폼 제공"),
    ),
    "research": (
        ("기업", "대학·연구소와 연계하여 제약 바이오·의료기기 개발·생산"),
        ("대학·연구소", "전문인력 양성, 기초연구, 원천기술 확보, 공동연구를 통한 교류 등"),
        ("지원기관", "정책개발, 산업 R&D, 인력 및 네트워크, 창업, 투자, 글로벌 성장 지원"),
    ),
    "composite": (
        ("기업", "단일품목 생산, 일자리 창출 등"),
        ("대학·연구소", "전문인력 양성, 기초연구, 원천기술 확보, 공동연구를 통한 교류 등"),
        ("병원", "임상시험 등"),
        ("지원기관", "R&D, 시제품개발, 전임상, 임상, 인허가, 생산·판매 등 전주기 지원"),
    ),
}
# Every reference cluster of scoring.cluster_models: Korean name, and whether it is in Korea.
REFERENCE_CLUSTERS: dict[str, tuple[str, bool]] = {
    "Andong vaccine cluster": ("안동백신산업클러스터", True),
    "Hwaseong Hyangnam pharmaceutical park": ("화성향남제약산업단지", True),
    "Wonju medical-device techno valley": ("원주의료기기테크노밸리", True),
    "Songdo bio complex": ("송도 바이오 클러스터", True),
    "Bundang Healthcare Innovation Park": ("분당헬스케어혁신파크", True),
    "Texas Medical Center": ("텍사스 메디컬 센터(미국)", False),
    "Daejeon bio complex": ("대전바이오단지", True),
    "San Diego bio cluster": ("샌디에고 바이오 클러스터(미국)", False),
    "Osong high-tech medical complex": ("오송첨단의료복합단지", True),
    "Daegu-Gyeongbuk high-tech medical complex": ("대구경북첨단의료복합단지", True),
    "Boston biotech cluster": ("보스톤 바이오텍 클러스터(미국)", False),
    "Singapore Biopolis": ("싱가포르 바이오폴리스", False),
}
# Seeds/000 §II-3 Table 1: (English, Korean, quadrant, in Korea). A map cluster is a reference case of a
# model when its English name occurs in one of the model's reference clusters (e.g. "Wonju").
MAP_CLUSTERS: tuple[tuple[str, str, int, bool], ...] = (
    ("San Francisco", "샌프란시스코", 1, False),
    ("NIBRT", "아일랜드 NIBRT", 1, False),
    ("Singapore Tuas", "싱가포르 Tuas", 1, False),
    ("Wonju", "원주", 2, True),
    ("Hong Kong", "홍콩", 2, False),
    ("Osong", "오송", 2, True),
    ("Daejeon", "대전", 3, True),
    ("San Diego", "샌디에고", 4, False),
    ("Boston", "보스턴", 4, False),
    ("Texas", "텍사스", 4, False),
)
MAP_LABEL_EN = {"NIBRT": "Ireland NIBRT"}
QUADRANTS: dict[int, tuple[str, str]] = {
    1: (
        "Q1 · high maturity · commercialisation-led (firms)",
        "1사분면 · 성숙도 高 · 상업화(생산·창업) 중심형",
    ),
    2: (
        "Q2 · low maturity · commercialisation-led (government-built)",
        "2사분면 · 성숙도 低 · 상업화(생산·창업) 중심형",
    ),
    3: ("Q3 · low maturity · science & technology-led", "3사분면 · 성숙도 低 · 과학기술 중심형"),
    4: ("Q4 · high maturity · science & technology-led", "4사분면 · 성숙도 高 · 과학기술 중심형"),
}

# Stage on the same thirds scale as the levels: developing low, chaser medium, leader high.
STAGE_POSITION: dict[Stage, float] = {
    Stage.DEVELOPING: LEVEL_VALUE[Level.LOW],
    Stage.CHASER: LEVEL_VALUE[Level.MEDIUM],
    Stage.LEADER: LEVEL_VALUE[Level.HIGH],
}


def tr(key: str, lang: Lang) -> str:
    en, ko = TEXT[key]
    return ko if lang == "ko" else en


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[1] if lang == "ko" else pair[0]


def criterion_label(criterion: str, lang: Lang) -> str:
    info = CRITERION_INFO[criterion]
    return info.label_ko if lang == "ko" else info.label_en


def model_name(model: ClusterModel | str, lang: Lang) -> str:
    m = BY_ID[model] if isinstance(model, str) else model
    return m.name_ko if lang == "ko" else m.name_en


def _peak(xs: Sequence[float], ys: Sequence[float]) -> float:
    top = max(ys)
    return float(mean(x for x, y in zip(xs, ys, strict=True) if y == top))


def ideal_profiles() -> dict[str, list[float]]:
    """Per model, the input value at which each fit curve peaks (mean of the peaks where flat), in CRITERIA order."""
    out: dict[str, list[float]] = {}
    for m in CLUSTER_MODELS:
        stage_xs = [STAGE_POSITION[s] for s in STAGE_FIT[m.id]]
        values = [_peak(stage_xs, list(STAGE_FIT[m.id].values()))]
        values += [_peak(*FIT_CURVES[m.id][c]) for c in CRITERIA[1:]]
        out[m.id] = values
    return out


def country_vector(response: MatchResponse) -> list[float | None]:
    """The country's input per criterion on [0, 1] (stage by STAGE_POSITION), None where unknown."""
    by_criterion = {c.criterion: c.value for c in response.ranking[0].contributions}
    out: list[float | None] = []
    for criterion in CRITERIA:
        value = by_criterion.get(criterion)
        if isinstance(value, str):
            out.append(STAGE_POSITION[Stage(value)])
        elif isinstance(value, int | float):
            out.append(float(value))
        else:
            out.append(None)
    return out


def country_position(vector: Sequence[float | None]) -> tuple[float, float] | None:
    """(maturity, commercialisation focus) on [0, 1]; None without the inputs it is built from."""
    values = dict(zip(CRITERIA, vector, strict=True))
    science = [v for v in (values["rd"], values["research_capacity"]) if v is not None]
    manufacturing = values["manufacturing_base"]
    if not science or manufacturing is None:
        return None
    research = values["research_capacity"] if values["research_capacity"] is not None else mean(science)
    maturity = mean(science)
    focus = min(1.0, max(0.0, 0.5 + (manufacturing - research) / 2))
    return float(maturity), float(focus)


def map_clusters(recommended: str, lang: Lang) -> list[charts.MapCluster]:
    """Table 1's clusters, the recommended model's reference cases highlighted."""
    refs = BY_ID[recommended].reference_clusters
    return [
        charts.MapCluster(
            label=ko if lang == "ko" else MAP_LABEL_EN.get(en, en),
            quadrant=q,
            korean=korean,
            highlighted=any(en in ref for ref in refs),
        )
        for en, ko, q, korean in MAP_CLUSTERS
    ]


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def _value_text(value: Any, lang: Lang) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return _pick(STAGE_NAMES[value], lang) if value in STAGE_NAMES else value
    return f"{float(value):.2f}"


def _country_heading(response: MatchResponse, lang: Lang) -> str:
    c = response.country
    if c is None:
        return tr("no_country", lang)
    return f"{c.name} ({c.iso3})"


# --- charts ------------------------------------------------------------------------------------


def radar_svg(response: MatchResponse, lang: Lang, uid: str = "radar") -> str:
    ideals = ideal_profiles()
    country = _country_heading(response, lang)
    panels = [
        charts.RadarPanel(
            title=f"{r.rank}. {model_name(r.model, lang)} · {tr('score', lang)} {r.score:.2f}",
            model=r.model,
            ideal=ideals[r.model],
        )
        for r in response.ranking
    ]
    return charts.radar(
        uid=uid,
        title=f"{tr('fit_chart', lang)}: {country}",
        desc=tr("radar_note", lang),
        axes=[_pick(SHORT_AXES[c], lang) for c in CRITERIA],
        country=country_vector(response),
        country_label=country,
        ideal_label=tr("ideal", lang),
        panels=panels,
        missing_label=tr("missing", lang),
        note=tr("radar_note", lang),
    )


def _gates_failed(r: RankedModel) -> int:
    return sum(1 for g in r.gates if not g.passed)


def contributions_svg(response: MatchResponse, lang: Lang, uid: str = "contrib") -> str:
    bars = []
    for r in response.ranking:
        by_c = {c.criterion: c.contribution for c in r.contributions}
        bars.append(
            charts.ContributionBar(
                model=r.model,
                label=f"{r.rank}. {model_name(r.model, lang)}",
                segments=[by_c.get(c, 0.0) for c in CRITERIA],
                gated_score=r.rule_score,
                gates_failed=_gates_failed(r),
                score_text=f"{r.rule_score:.2f}" + (" ✘" * _gates_failed(r)),
            )
        )
    return charts.contributions(
        uid=uid,
        title=f"{tr('contributions', lang)}: {_country_heading(response, lang)}",
        desc=tr("contrib_help", lang),
        criteria=[criterion_label(c, lang) for c in CRITERIA],
        bars=bars,
        axis_label=tr("contrib_axis", lang),
        gate_label=tr("gate_marker", lang),
        note=tr("contrib_note", lang),
    )


def positioning_svg(response: MatchResponse, lang: Lang, uid: str = "positioning") -> str:
    position = country_position(country_vector(response))
    country = _country_heading(response, lang)
    note = tr("positioning_note", lang)
    if position is None:
        note = f"{note} {tr('not_placed', lang)}"
    return charts.positioning(
        uid=uid,
        title=tr("positioning", lang),
        desc=note,
        x_label=(tr("maturity", lang), tr("low", lang), tr("high", lang)),
        y_label=(tr("focus", lang), tr("science", lang), tr("commercial", lang)),
        quadrant_labels={q: _pick(pair, lang) for q, pair in QUADRANTS.items()},
        clusters=map_clusters(response.recommended_model, lang),
        country=position,
        country_label=country,
        legend=(tr("korean_cluster", lang), tr("foreign_cluster", lang), tr("reference_of", lang)),
        note=note,
    )


CHARTS = {"radar": radar_svg, "contributions": contributions_svg, "positioning": positioning_svg}


def chart_svg(session: Session, *, assessment_id: str, name: str, lang: Lang) -> str:
    """One chart of a stored assessment as a standalone SVG document; 404 for an unknown id."""
    response = MatchResponse.model_validate_json(
        assessments.get_response_text(session, assessment_id=assessment_id)
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + CHARTS[name](response, lang)


def model_countries_svg(
    session: Session,
    *,
    model_id: str,
    weight_profile: str,
    region: str | None,
    income_group: str | None,
    stage: Stage | None,
    limit: int,
    lang: Lang,
) -> str:
    """Bar chart of the countries where one model fits best (target discovery)."""
    found = discovery.ranking(
        session,
        model_id=model_id,
        weight_profile=weight_profile,
        region=region,
        income_group=income_group,
        stage=stage,
        limit=limit,
    )
    items = found["items"]
    wp = f"{found['weight_profile']['name']} v{found['weight_profile']['version']}"
    bars = [
        charts.RankedBar(
            label=f"{i['rank']}. {i['name']} ({i['iso3']})",
            score=i["score"],
            detail=(_pick(STAGE_NAMES[i["stage"]], lang) if i["stage"] else tr("stage_unknown", lang))
            + f" · {tr('conf_short', lang)} {i['confidence']:.2f}",
        )
        for i in items
    ]
    title = tr("top_countries", lang).format(
        model=model_name(model_id, lang), n=len(items), total=found["total"]
    )
    filters = ", ".join(
        f"{k}={v}" for k, v in (("region", region), ("income_group", income_group), ("stage", stage)) if v
    )
    if filters:
        title += f" ({filters})"
    note = tr("ranking_note", lang).format(wp=wp, dv=found["data_version"])
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + charts.ranking_bars(
        uid=f"rank-{model_id}",
        title=title,
        desc=note,
        model=model_id,
        bars=bars,
        axis_label=tr("country_axis", lang),
        note=note,
    )


def model_countries_rows(
    session: Session,
    *,
    model_id: str,
    weight_profile: str,
    region: str | None,
    income_group: str | None,
    stage: Stage | None,
    limit: int | None,
) -> list[dict[str, Any]]:
    """The same ranking as rows for a CSV export (one row per country, with the versions used)."""
    found = discovery.ranking(
        session,
        model_id=model_id,
        weight_profile=weight_profile,
        region=region,
        income_group=income_group,
        stage=stage,
        limit=limit,
    )
    m = BY_ID[model_id]
    return [
        {
            "model": model_id,
            "model_name_en": m.name_en,
            "model_name_ko": m.name_ko,
            **item,
            "weight_profile": found["weight_profile"]["name"],
            "weight_profile_version": found["weight_profile"]["version"],
            "data_version": found["data_version"],
        }
        for item in found["items"]
    ]


# --- the HTML page -----------------------------------------------------------------------------

CSS = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-right { content: counter(page) " / " counter(pages); font: 8pt sans-serif; color: #555; } }
:root { --ink: #111; --muted: #555; --rule: #bbb; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font-family: system-ui, "Noto Sans CJK KR", "Nanum Gothic", "Malgun Gothic", "Apple SD Gothic Neo",
  sans-serif; font-size: 10.5pt; line-height: 1.45; color: var(--ink); max-width: 190mm; margin: 0 auto;
  padding: 10mm 6mm; background: #fff; }
/* Korean breaks between words, not inside them; long indicator ids may break anywhere. */
body { word-break: keep-all; overflow-wrap: break-word; }
td small { overflow-wrap: anywhere; }
h1 { font-size: 18pt; margin: 0 0 2mm; }
h2 { font-size: 13pt; margin: 7mm 0 2mm; border-bottom: 1.5pt solid var(--ink); padding-bottom: 1mm;
  break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1mm; break-after: avoid; }
p, li { margin: 1mm 0; }
.muted, small { color: var(--muted); }
nav { display: flex; gap: 4mm; font-size: 9.5pt; margin-bottom: 3mm; }
nav a[aria-current] { font-weight: bold; text-decoration: none; color: var(--ink); }
table { border-collapse: collapse; width: 100%; margin: 2mm 0; font-size: 9pt; break-inside: auto; }
tr { break-inside: avoid; }
th, td { border-bottom: 0.5pt solid var(--rule); padding: 1mm 1.5mm; text-align: left; vertical-align: top; }
th { border-bottom: 1pt solid var(--ink); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.matrix { font-size: 8.5pt; table-layout: fixed; }
table.matrix th:first-child { width: 24%; }
.facts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2mm 6mm; margin: 2mm 0; }
.facts div { border-left: 2pt solid var(--ink); padding-left: 2mm; }
.facts dt { font-size: 8.5pt; color: var(--muted); }
.facts dd { margin: 0; font-size: 12pt; font-weight: 600; }
figure { margin: 3mm 0; break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 8.5pt; color: var(--muted); }
.share { display: inline-block; height: 2.6mm; background: #0072B2;
  background-image: repeating-linear-gradient(45deg, transparent 0 2px, rgba(0,0,0,.35) 2px 3px);
  border: 0.5pt solid #000; vertical-align: middle; }
.roles { display: grid; grid-template-columns: repeat(2, 1fr); gap: 2mm; margin: 2mm 0; }
.roles section { border: 0.75pt solid var(--ink); padding: 2mm; break-inside: avoid; }
.roles h4 { margin: 0 0 1mm; font-size: 10pt; }
.lead { border: 1.5pt solid var(--ink); padding: 2mm; font-weight: 600; margin: 2mm 0; }
.recommended { font-weight: 700; }
footer { margin-top: 8mm; font-size: 8.5pt; color: var(--muted); border-top: 0.5pt solid var(--rule);
  padding-top: 2mm; }
@media print { nav, .noprint { display: none; } a { color: inherit; text-decoration: none; }
  body { padding: 0; max-width: none; } .pagebreak { break-before: page; } }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(head: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    """Rows of already escaped cell HTML; a head cell's flag right-aligns numeric columns."""
    ths = "".join(f'<th scope="col"{" class=num" if num else ""}>{_e(h)}</th>' for h, num in head)
    thead = f"<thead><tr>{ths}</tr></thead>" if any(h for h, _ in head) else ""
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if head[i][1] else ''}>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}>{thead}<tbody>{body}</tbody></table>"


def _counterfactual_text(response: MatchResponse, lang: Lang) -> str:
    """The counterfactual in words, from its fields (the stored summary names raw input ids)."""
    cf = response.counterfactual
    target = model_name(cf.target_model, lang)
    change = cf.change
    if change is None:
        if lang == "ko":
            return f"한 단계 이내의 입력값 하나만 바꿔서는 {target}이(가) 1위가 되지 않습니다."
        return f"No single input change within one level step puts {target} first."
    if change.input == "innovation_stage":
        before, after = _value_text(change.from_value, lang), _value_text(change.to_value, lang)
        if lang == "ko":
            return f"혁신 단계가 {before}이(가) 아니라 {after}였다면 {target}이(가) 1위가 됩니다."
        return f"{target} would rank first if the innovation stage were {after} instead of {before}."
    # `input` is the request field to change; R&D is given as intensity, % of GDP.
    label = criterion_label(
        "rd" if change.input == "rd_intensity_pct" else INPUT_CRITERION[change.input], lang
    )
    unit = " % GDP" if change.input == "rd_intensity_pct" else ""
    rises = float(change.to_value) > float(change.from_value)
    before = f"{float(change.from_value):.4g}{unit} ({_pick(LEVEL_NAMES[change.from_level or 'low'], lang)})"
    after = f"{float(change.to_value):.4g}{unit} ({_pick(LEVEL_NAMES[change.to_level or 'low'], lang)})"
    if lang == "ko":
        return f"{label}이(가) {before}에서 {after}(으)로 {'오르면' if rises else '내려가면'} {target}이(가) 1위가 됩니다."
    return f"{target} would rank first if {label} {'rose' if rises else 'fell'} from {before} to {after}."


def _figure(svg: str, href: str, lang: Lang) -> str:
    # The chart carries its own title and notes, so it reads the same on its own as in the page.
    return (
        f'<figure>{svg}<figcaption class="noprint"><a href="{_e(href)}">'
        f"{_e(tr('chart_link', lang))}</a></figcaption></figure>"
    )


def report_html(response: MatchResponse, lang: Lang, *, base_path: str) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG, nothing fetched)."""
    top = response.ranking[0]
    recommended = BY_ID[response.recommended_model]
    heading = _country_heading(response, lang)
    c = response.country
    subtitle = " · ".join(x for x in ([c.region, c.income_group or ""] if c else []) if x)
    other = "ko" if lang == "en" else "en"
    parts: list[str] = []
    add = parts.append

    add(
        f'<nav aria-label="language"><a href="?lang=en"{" aria-current=page" if lang == "en" else ""}>English</a>'
        f'<a href="?lang=ko"{" aria-current=page" if lang == "ko" else ""}>한국어</a>'
        f'<span class="muted">{_e(tr("print_hint", lang))}</span></nav>'
    )
    add(f"<header><h1>{_e(tr('title', lang))}: {_e(heading)}</h1>")
    add(
        f'<p class="muted">{_e(subtitle)}{" · " if subtitle else ""}{_e(tr("assessment", lang))} '
        f"<code>{_e(response.assessment_id)}</code> · {_e(tr('created', lang))} "
        f"{_e(response.created_at.strftime('%Y-%m-%d %H:%M UTC'))}</p></header>"
    )

    # Summary
    method = response.method.value
    add(f'<section id="summary"><h2>{_e(tr("summary", lang))}</h2><dl class="facts">')
    facts = [
        (tr("recommended", lang), f"{model_name(recommended, lang)}"),
        (tr("score", lang), f"{top.score:.3f}"),
        (tr("robustness", lang), _pct(response.robustness)),
        (tr("confidence", lang), _pct(response.confidence)),
        (tr("method", lang), method),
        (tr("led_by", lang), _pick(LEAD[recommended.id], lang)),
    ]
    add("".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts) + "</dl>")
    add(f"<p>{_e(top.rationale_ko if lang == 'ko' else top.rationale)}</p>")
    add(
        f'<p class="muted">{_e(tr("robustness", lang))}: {_e(tr("robustness_help", lang))}. '
        f"{_e(tr('confidence', lang))}: {_e(tr('confidence_help', lang))}.</p>"
    )
    if response.method_note:
        add(f'<p class="muted">{_e(tr("note", lang))}: {_e(response.method_note)}</p>')
    add("</section>")

    # Profile with provenance
    rows = []
    for name, used in response.profile_used.items():
        criterion = INPUT_CRITERION.get(name, name)
        label = criterion_label(criterion, lang) if criterion in CRITERION_INFO else name
        basis = " · ".join(x for x in (used.indicator, used.note) if x)
        rows.append(
            [
                _e(label),
                _e(_value_text(used.value, lang)),
                _e(_pick(LEVEL_NAMES[used.level], lang) if used.level in LEVEL_NAMES else "–"),
                _e(_pick(SOURCE_NAMES[used.source], lang)),
                _e(used.year or "–"),
                f"<small>{_e(basis)}</small>",
            ]
        )
    add(f'<section id="profile"><h2>{_e(tr("profile", lang))}</h2>')
    add(
        _table(
            [
                (tr("input", lang), False),
                (tr("value", lang), True),
                (tr("level", lang), False),
                (tr("source", lang), False),
                (tr("year", lang), True),
                (tr("basis", lang), False),
            ],
            rows,
        )
        + "</section>"
    )

    # Ranking
    rows = []
    for r in response.ranking:
        cls = ' class="recommended"' if r.model == response.recommended_model else ""
        rows.append(
            [
                f"<span{cls}>{r.rank}</span>",
                f"<span{cls}>{_e(model_name(r.model, lang))}</span><br><small>{_e(_pick(LEAD[r.model], lang))}</small>",
                _num(r.score),
                _num(r.rule_score),
                _num(r.classifier_probability),
                f"<small>{_e(r.rationale_ko if lang == 'ko' else r.rationale)}</small>",
            ]
        )
    add(f'<section id="ranking"><h2>{_e(tr("ranking", lang))}</h2>')
    add(
        _table(
            [
                (tr("rank", lang), True),
                (tr("model", lang), False),
                (tr("score", lang), True),
                (tr("rule_score", lang), True),
                (tr("classifier_probability", lang), True),
                (tr("rationale", lang), False),
            ],
            rows,
        )
    )
    add(
        _figure(
            contributions_svg(response, lang, uid="contrib"),
            f"{base_path}/charts/contributions.svg?lang={lang}",
            lang,
        )
    )
    by_model = {r.model: {c.criterion: c for c in r.contributions} for r in response.ranking}
    weights_row = {c.criterion: c for c in top.contributions}
    rows = []
    for criterion in CRITERIA:
        base = weights_row.get(criterion)
        cells = [
            _e(criterion_label(criterion, lang)),
            _e(_value_text(base.value if base else None, lang)),
            _num(base.weight if base else None, 2),
        ]
        for r in response.ranking:
            cc = by_model[r.model].get(criterion)
            cells.append(
                "–"
                if cc is None or cc.fit is None
                else f"<b>{cc.contribution:.3f}</b><br><small>({cc.fit:.2f})</small>"
            )
        rows.append(cells)
    head = [(tr("criterion", lang), False), (tr("value", lang), True), (tr("weight", lang), True)]
    head += [(model_name(r.model, lang), True) for r in response.ranking]
    add(
        f'<h3>{_e(tr("contributions", lang))}</h3>{_table(head, rows, css_class="matrix")}<p class="muted">{_e(tr("contrib_help", lang))}</p>'
    )
    add("</section>")

    # Gates
    rows = []
    for r in response.ranking:
        for g in r.gates:
            status = "passed" if g.passed and g.assessed else ("not_assessed" if not g.assessed else "failed")
            rows.append(
                [
                    _e(model_name(r.model, lang)),
                    _e(criterion_label(g.criterion, lang)),
                    f"<b>{_e(tr(status, lang))}</b>",
                    f"{_e(g.reason_ko if lang == 'ko' else g.reason)}<br><small>{_e(g.source)}</small>",
                ]
            )
    add(f'<section id="gates"><h2>{_e(tr("gates", lang))}</h2>')
    add(
        _table(
            [
                (tr("model", lang), False),
                (tr("criterion", lang), False),
                (tr("status", lang), False),
                (tr("reason", lang), False),
            ],
            rows,
        )
        + "</section>"
    )

    # Robustness
    detail = response.robustness_detail
    rows = []
    for r in response.ranking:
        share = response.first_place_shares.get(r.model, 0.0)
        rows.append(
            [
                _e(model_name(r.model, lang)),
                _pct(share),
                f'<span class="share" style="width:{share * 60:.1f}mm" aria-hidden="true"></span>',
            ]
        )
    add(f'<section id="robustness"><h2>{_e(tr("robustness", lang))}: {_pct(response.robustness)}</h2>')
    add(
        f'<p class="muted">{_e(tr("robustness_help", lang))} ({detail.samples} {_e(tr("samples", lang))}, '
        f"Dirichlet α = {detail.concentration:g} × weights, seed {detail.seed}).</p>"
    )
    add(f"<h3>{_e(tr('shares', lang))}</h3>")
    add(_table([(tr("model", lang), False), (tr("share", lang), True), ("", False)], rows))
    if detail.leave_one_out:
        rows = [
            [
                _e(criterion_label(x.criterion, lang)),
                _e(model_name(x.top_model, lang)),
                _e(tr("yes" if x.changes_top else "no", lang)),
            ]
            for x in detail.leave_one_out
        ]
        add(f"<h3>{_e(tr('leave_one_out', lang))}</h3>")
        add(
            _table(
                [
                    (tr("without", lang), False),
                    (tr("top_model", lang), False),
                    (tr("changes_top", lang), False),
                ],
                rows,
            )
        )
    add("</section>")

    add(f'<section id="counterfactual"><h2>{_e(tr("counterfactual", lang))}</h2>')
    add(f"<p>{_e(_counterfactual_text(response, lang))}</p></section>")

    add(f'<section id="fit" class="pagebreak"><h2>{_e(tr("fit_chart", lang))}</h2>')
    add(_figure(radar_svg(response, lang, uid="radar"), f"{base_path}/charts/radar.svg?lang={lang}", lang))
    add("</section>")

    add(f'<section id="positioning"><h2>{_e(tr("positioning", lang))}</h2>')
    add(
        _figure(
            positioning_svg(response, lang, uid="positioning"),
            f"{base_path}/charts/positioning.svg?lang={lang}",
            lang,
        )
    )
    add("</section>")

    # Operating structure of the recommended model
    m = recommended
    add(
        f'<section id="model" class="pagebreak"><h2>{_e(tr("structure", lang))}: {_e(model_name(m, lang))}</h2>'
    )
    add(f"<p>{_e(m.summary_ko if lang == 'ko' else m.summary)}</p>")
    add(f'<p class="lead">{_e(tr("lead", lang))}: {_e(_pick(LEAD[m.id], lang))}</p>')
    stages = ", ".join(_pick(STAGE_NAMES[s.value], lang) for s in m.fits_stages)
    add(f"<p><b>{_e(tr('fits_stages', lang))}:</b> {_e(stages)}</p>")
    add(f'<h3>{_e(tr("who_does_what", lang))}</h3><div class="roles">')
    for i, role in enumerate(m.roles):
        if lang == "ko":
            actor, duties = ROLES_KO[m.id][i]
        else:
            actor, _, duties = role.partition(": ")
        add(f"<section><h4>{_e(actor)}</h4><p>{_e(duties)}</p></section>")
    add("</div>")
    korean = [n for n in m.reference_clusters if REFERENCE_CLUSTERS[n][1]]
    foreign = [n for n in m.reference_clusters if not REFERENCE_CLUSTERS[n][1]]
    for key, names in (("korean_clusters", korean), ("foreign_clusters", foreign)):
        items = (
            "".join(f"<li>{_e(REFERENCE_CLUSTERS[n][0] if lang == 'ko' else n)}</li>" for n in names)
            or f"<li>{_e(tr('none', lang))}</li>"
        )
        add(f'<h3>{_e(tr(key, lang))}</h3><ul class="{key}">{items}</ul>')
    add(f'<p class="muted"><small>{_e(m.source)}</small></p></section>')

    # Versions
    weights = ", ".join(f"{criterion_label(k, lang)} {v:g}" for k, v in response.weights_used.items())
    rows = [
        [_e(tr("engine_version", lang)), f"<code>{_e(response.engine_version)}</code>"],
        [
            _e(tr("weight_profile", lang)),
            f"<code>{_e(response.weight_profile.name)} v{response.weight_profile.version}</code>",
        ],
        [_e(tr("weights_used", lang)), f"<small>{_e(weights)}</small>"],
        [
            _e(tr("model_version", lang)),
            f"<code>{_e(response.model_version or tr('none_rules_only', lang))}</code>",
        ],
        [_e(tr("data_version", lang)), f"<code>{_e(response.data_version or tr('none', lang))}</code>"],
        [_e(tr("method", lang)), _e(method)],
    ]
    add(f'<section id="versions"><h2>{_e(tr("versions", lang))}</h2>')
    add(_table([("", False), ("", False)], rows) + "</section>")
    add(
        f"<footer><p>{_e(tr('sources', lang))}</p><p>ClusterMatch · {_e(response.assessment_id)}</p></footer>"
    )

    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(tr('title', lang))}: {_e(heading)}</title>"
        # An empty inline icon: otherwise browsers fetch /favicon.ico, the one request the page would make.
        '<link rel="icon" href="data:,">'
        f'<link rel="alternate" hreflang="{other}" href="?lang={other}">'
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )


def render_report(session: Session, *, assessment_id: str, lang: Lang) -> str:
    """The report page of a stored assessment; 404 for an unknown id."""
    response = MatchResponse.model_validate_json(
        assessments.get_response_text(session, assessment_id=assessment_id)
    )
    return report_html(response, lang, base_path=f"/v1/assessments/{response.assessment_id}")
