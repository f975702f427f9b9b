"""The four export models KHIDI defined (seeds/000 §II-4, Tables 2 and 3)."""

from __future__ import annotations

from dataclasses import dataclass

from scoring.profile import Stage


@dataclass(frozen=True, slots=True)
class ClusterModel:
    id: str
    name_ko: str
    name_en: str
    led_by: str  # "public" or "private" (Table 2/3 row 주도)
    fits_stages: tuple[Stage, ...]  # Table 2/3 row 적용가능 국가
    summary: str
    summary_ko: str
    reference_clusters: tuple[str, ...]  # Table 2/3 row 국내외 사례, and §II-4 first bullet
    roles: tuple[str, ...]  # Table 2/3 row 기능역할: who does what
    source: str


PRODUCTION = ClusterModel(
    id="production",
    name_ko="생산중심형",
    name_en="Production-centred",
    led_by="public",
    fits_stages=(Stage.DEVELOPING,),
    summary=(
        "Manufacturing-park cluster for one product line (vaccines, pharmaceuticals, devices): "
        "build plants, acquire production technology through partnerships, aim at self-sufficient "
        "production; for less-developed countries (e.g. Southeast Asia)."
    ),
    summary_ko="생산기반 구축을 목표로 생산공장을 만들고 기술제휴를 통해 생산 자립화에 주력하는 저개발 국가를 위한 모델",
    reference_clusters=(
        "Andong vaccine cluster",
        "Hwaseong Hyangnam pharmaceutical park",
        "Wonju medical-device techno valley",
        "Songdo bio complex",
    ),
    roles=(
        "Firms: single-product manufacturing, jobs, reinvestment, technology partnerships",
        "Support agency: land, financing, attracting firms, project discovery, strategy; runs the cluster",
    ),
    source="seeds/000 §II-4 Table 2 (생산중심형); Songdo listed as 산업단지형 in §II-4 first bullet",
)

HOSPITAL = ClusterModel(
    id="hospital",
    name_ko="병원중심형",
    name_en="Hospital-centred",
    led_by="private",
    fits_stages=(Stage.DEVELOPING, Stage.CHASER),
    summary=(
        "Hospital-led cluster built on translational and clinical research: ideas from the "
        "clinic, products developed for hospital demand; the hospital supplies land or "
        "buildings and supports resident firms (e.g. Kazakhstan)."
    ),
    summary_ko="병원 주도 융복합 의료산업화 클러스터로, 병원 수요 기반의 기술·제품을 개발하는 병원 중심의 중개연구가 핵심",
    reference_clusters=("Bundang Healthcare Innovation Park", "Texas Medical Center"),
    roles=(
        "Firms: genomics, tissue/organ regeneration, cell therapy; pharma, bio and device development",
        "Hospital: secures land or buildings, builds the cluster, supports resident firms "
        "(patents, approvals, investor introductions)",
        "Support agency: pre-clinical centre, incubator; the physical platform for new products",
    ),
    source="seeds/000 §II-4 Table 2 (병원중심형); Texas Medical Center as hospital-led in §I-3",
)

RESEARCH = ClusterModel(
    id="research",
    name_ko="연구중심형",
    name_en="Research-centred",
    led_by="private",
    fits_stages=(Stage.DEVELOPING, Stage.CHASER),
    summary=(
        "Cluster grown around the basic-science strength of universities and institutes; "
        "firms and support agencies gather around them (e.g. Kazakhstan)."
    ),
    summary_ko="대학 및 연구소의 기초과학 역량을 바탕으로 관련 기업과 지원기관이 자생적으로 밀집하여 형성",
    reference_clusters=("Daejeon bio complex", "San Diego bio cluster"),
    roles=(
        "Firms: develop and produce with universities and institutes",
        "Universities/institutes: talent, basic research, source technology, joint research",
        "Support agency: policy, industrial R&D, people and networks, start-ups, investment",
    ),
    source="seeds/000 §II-4 Table 3 (연구중심형); San Diego as university/institute-led in §I-3",
)

COMPOSITE = ClusterModel(
    id="composite",
    name_ko="복합형(완성형)",
    name_en="Composite (full package)",
    led_by="public",
    fits_stages=(Stage.CHASER, Stage.LEADER),
    summary=(
        "Government-led full-value-chain cluster with a dedicated support agency for every "
        "stage (R&D, prototype, pre-clinical, clinical, approval, production, sales); matures "
        "over time toward the advanced foreign clusters (e.g. UAE)."
    ),
    summary_ko="가치사슬 전체를 지원하는 지원기관을 신설하여 전주기 서비스를 제공하는 정부주도 풀패키지형 클러스터",
    reference_clusters=(
        "Osong high-tech medical complex",
        "Daegu-Gyeongbuk high-tech medical complex",
        "Boston biotech cluster",
        "Singapore Biopolis",
    ),
    roles=(
        "Firms: single-product manufacturing, jobs",
        "Universities/institutes: talent, basic research, source technology",
        "Hospital: clinical trials",
        "Support agency: R&D, prototypes, pre-clinical, clinical, approval, production and sales",
    ),
    source="seeds/000 §II-4 Table 3 (복합형(완성형))",
)

CLUSTER_MODELS: tuple[ClusterModel, ...] = (PRODUCTION, HOSPITAL, RESEARCH, COMPOSITE)
MODEL_IDS: tuple[str, ...] = tuple(m.id for m in CLUSTER_MODELS)
BY_ID: dict[str, ClusterModel] = {m.id: m for m in CLUSTER_MODELS}
