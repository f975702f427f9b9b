"""Criteria, their fit curves per model, the gates and the default weights.

A fit says how well a country's value on one criterion suits one model, in [0, 1].
Numeric criteria use piecewise-linear curves through a few knots on the [0, 1]
input scale; the stage is a table. Every curve and weight below names the seed
passage it comes from, so a consultant can check the reasoning line by line.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoring.profile import LOW_UPPER, MEDIUM_UPPER, Stage

CRITERIA: tuple[str, ...] = (
    "stage",
    "public_investment_will",
    "rd",
    "healthcare_capacity",
    "research_capacity",
    "manufacturing_base",
    "private_sector_strength",
)
NUMERIC_CRITERIA: tuple[str, ...] = CRITERIA[1:]


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    label_en: str
    label_ko: str
    rationale: str  # why it matters and how the curves were drawn
    source: str


CRITERION_INFO: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion(
            "stage",
            "innovation stage",
            "혁신 단계",
            "Each model names the country stages it suits: production for developing countries; "
            "hospital and research for developing countries and chasers; composite for chasers "
            "and leaders. Unlisted stages get a partial fit where the seed's own reference "
            "clusters show the model working there (Texas Medical Center, San Diego in leader "
            "countries); production gets a low fit for chasers and none for leaders.",
            "seeds/000 §II-4 Tables 2-3, row 적용가능 국가, and the note defining the stages",
        ),
        Criterion(
            "public_investment_will",
            "government investment will",
            "정부 투자 의지",
            "Production and composite are led by central or local government; they need a "
            "government willing to fund and lead the cluster as Korea did. Hospital and research "
            "are led privately and depend less on it; they are the realistic option where public "
            "will is weak, so their fit eases slightly as public will rises.",
            "seeds/000 §II-4 Tables 2-3, row 주도; §III-1 (정부에서 우리나라만큼 투자할 의지가 "
            "있는지); §III-2 (정부 주도로 비교적 빠른 시간에 구축)",
        ),
        Criterion(
            "rd",
            "bio-medical R&D level",
            "바이오의료 R&D 수준",
            "Production serves countries still building a production base (low R&D suits it "
            "best). Research rests on basic science and composite on the whole chain from "
            "source technology on, so both need R&D; hospital-led translational research needs "
            "some, and fits best from a medium level.",
            "seeds/000 §II-4 Table 2 개요 (생산중심형: 저개발 국가), Table 3 개요 (연구중심형: 기초과학 "
            "역량; 복합형: 가치사슬 전체); §III-1 (바이오의료 분야 R&D 수준)",
        ),
        Criterion(
            "healthcare_capacity",
            "healthcare capacity",
            "의료 서비스 역량",
            "The hospital model is built by a hospital that supplies land, demand and clinical "
            "research; composite needs hospitals for clinical trials. Others barely depend on it.",
            "seeds/000 §II-4 Table 2 기능역할 (병원중심형: 병원), Table 3 (복합형: 병원-임상시험); "
            "§III-1 (의료 서비스의 수준)",
        ),
        Criterion(
            "research_capacity",
            "research capacity (universities, institutes)",
            "연구 역량 (대학·연구소)",
            "The research model grows from universities and institutes; composite includes them "
            "for talent and source technology.",
            "seeds/000 §II-4 Table 3 기능역할 (연구중심형, 복합형: 대학·연구소)",
        ),
        Criterion(
            "manufacturing_base",
            "manufacturing base",
            "제조 기반",
            "Production and composite both include single-product manufacturing; an existing "
            "industrial base shortens technology transfer.",
            "seeds/000 §II-4 Table 2 기능역할 (생산중심형: 기업-단일품목 생산), Table 3 (복합형)",
        ),
        Criterion(
            "private_sector_strength",
            "private-sector and investment strength",
            "민간 부문·투자 역량",
            "Hospital and research models are led by private actors and draw in firms and "
            "investors; the public-led models do not depend on them at the start.",
            "seeds/000 §II-4 Tables 2-3, row 주도 (민간) and 기능역할 (지원기관: 투자)",
        ),
    )
}

# Fit of each stage for each model (seeds/000 Tables 2-3, row 적용가능 국가).
STAGE_FIT: dict[str, dict[Stage, float]] = {
    "production": {Stage.DEVELOPING: 1.0, Stage.CHASER: 0.3, Stage.LEADER: 0.0},
    "hospital": {Stage.DEVELOPING: 0.8, Stage.CHASER: 1.0, Stage.LEADER: 0.5},
    "research": {Stage.DEVELOPING: 0.8, Stage.CHASER: 1.0, Stage.LEADER: 0.5},
    "composite": {Stage.DEVELOPING: 0.0, Stage.CHASER: 1.0, Stage.LEADER: 1.0},
}

Knots = tuple[tuple[float, ...], tuple[float, ...]]
FLAT = 0.6  # a criterion the model does not depend on: neither helps nor hurts much

# Fit curves: model -> criterion -> (x knots, fit at knots). See CRITERION_INFO for why.
FIT_CURVES: dict[str, dict[str, Knots]] = {
    "production": {
        "public_investment_will": ((0.0, 1.0), (0.0, 1.0)),
        "rd": ((0.0, 0.5, 1.0), (1.0, 0.8, 0.4)),
        "healthcare_capacity": ((0.0, 1.0), (FLAT, FLAT)),
        "research_capacity": ((0.0, 1.0), (FLAT, FLAT)),
        "manufacturing_base": ((0.0, 1.0), (0.3, 1.0)),
        "private_sector_strength": ((0.0, 1.0), (0.8, 0.6)),
    },
    "hospital": {
        "public_investment_will": ((0.0, 1.0), (0.8, 0.5)),
        "rd": ((0.0, 0.5, 1.0), (0.3, 1.0, 0.8)),
        "healthcare_capacity": ((0.0, 1.0), (0.0, 1.0)),
        "research_capacity": ((0.0, 1.0), (0.5, 0.7)),
        "manufacturing_base": ((0.0, 1.0), (0.5, 0.5)),
        "private_sector_strength": ((0.0, 1.0), (0.3, 1.0)),
    },
    "research": {
        "public_investment_will": ((0.0, 1.0), (0.8, 0.5)),
        "rd": ((0.0, 0.5, 1.0), (0.2, 0.9, 1.0)),
        "healthcare_capacity": ((0.0, 1.0), (0.5, 0.7)),
        "research_capacity": ((0.0, 1.0), (0.0, 1.0)),
        "manufacturing_base": ((0.0, 1.0), (0.5, 0.5)),
        "private_sector_strength": ((0.0, 1.0), (0.3, 1.0)),
    },
    "composite": {
        "public_investment_will": ((0.0, 0.5, 1.0), (0.0, 0.4, 1.0)),
        "rd": ((0.0, 0.5, 1.0), (0.0, 0.5, 1.0)),
        "healthcare_capacity": ((0.0, 1.0), (0.2, 1.0)),
        "research_capacity": ((0.0, 1.0), (0.2, 1.0)),
        "manufacturing_base": ((0.0, 1.0), (0.3, 1.0)),
        "private_sector_strength": ((0.0, 1.0), (0.7, 0.7)),
    },
}

# Default weights (they need not sum to 1; the engine normalises over assessed criteria).
# The three core inputs the brief asks about carry most of the weight.
DEFAULT_WEIGHTS: dict[str, float] = {
    # Tables 2-3 are organised by the country stage each model suits.
    "stage": 0.25,
    # §III-1 asks first whether the government will invest as Korea did; §III-2 names
    # government-led speed as Korea's selling point.
    "public_investment_will": 0.25,
    # §III-1 asks second for the bio-medical R&D level.
    "rd": 0.15,
    # §III-1 asks for the medical-service level; Table 2's hospital model rests on it.
    "healthcare_capacity": 0.10,
    # Table 3's research model rests on universities and institutes.
    "research_capacity": 0.10,
    # Table 2's production model and Table 3's composite include manufacturing.
    "manufacturing_base": 0.10,
    # Tables 2-3 row 주도: private-led models need private actors; the lightest criterion.
    "private_sector_strength": 0.05,
}

# A model that fails a gate keeps its computed fit, multiplied by this factor per failed gate.
GATE_PENALTY = 0.5


@dataclass(frozen=True, slots=True)
class Gate:
    """Something a model cannot do without; checked on the input, never on weights."""

    model: str
    criterion: str
    minimum: float | None  # numeric threshold on the [0, 1] scale
    stages: tuple[Stage, ...] | None  # or the stages allowed
    reason_en: str
    reason_ko: str
    source: str


GATES: tuple[Gate, ...] = (
    Gate(
        "production",
        "public_investment_will",
        LOW_UPPER,
        None,
        "public-led: needs at least medium government investment will",
        "공공 주도 모델: 최소 중간 수준 이상의 정부 투자 의지 필요",
        "seeds/000 Table 2, 주도: 공공(정부, 지자체)",
    ),
    Gate(
        "hospital",
        "healthcare_capacity",
        LOW_UPPER,
        None,
        "hospital-led: needs a hospital sector able to lead (healthcare capacity not low)",
        "병원 주도 모델: 클러스터를 이끌 병원 역량 필요(의료 역량이 낮지 않아야 함)",
        "seeds/000 Table 2 기능역할, 병원: 용지나 건물을 확보하여 클러스터를 구축",
    ),
    Gate(
        "research",
        "research_capacity",
        LOW_UPPER,
        None,
        "research-led: needs universities and institutes with a science base (research capacity not low)",
        "연구 주도 모델: 기초과학 역량을 갖춘 대학·연구소 필요(연구 역량이 낮지 않아야 함)",
        "seeds/000 Table 3 개요, 연구중심형: 대학 및 연구소의 기초과학 역량을 바탕으로",
    ),
    Gate(
        "composite",
        "stage",
        None,
        (Stage.CHASER, Stage.LEADER),
        "full package: suits innovation chasers and leaders only",
        "완성형 모델: 혁신추격국·혁신선도국에 적용",
        "seeds/000 Table 3, 적용가능 국가: 혁신추격국, 혁신선도국",
    ),
    Gate(
        "composite",
        "public_investment_will",
        MEDIUM_UPPER,
        None,
        "government-led full value chain: needs high government investment will",
        "정부 주도 전주기 모델: 높은 정부 투자 의지 필요",
        "seeds/000 Table 3 개요, 복합형: 정부주도하에 해외 클러스터와 유사한 형태를 만들고",
    ),
)
