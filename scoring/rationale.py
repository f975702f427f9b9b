"""Short rationales in English and Korean, written from an evaluation's own numbers."""

from __future__ import annotations

from operator import attrgetter

from scoring.cluster_models import BY_ID
from scoring.criteria import CRITERION_INFO
from scoring.engine import Evaluation, ModelScore


def _strongest(score: ModelScore, n: int = 2) -> list[str]:
    # reverse=True keeps equal contributions in criterion order (Python's sort stays stable)
    ranked = sorted(
        [c for c in score.contributions if c.fit is not None and c.weight > 0],
        key=attrgetter("contribution"),
        reverse=True,
    )
    return [c.criterion for c in ranked[:n]]


def rationale(evaluation: Evaluation, score: ModelScore) -> tuple[str, str]:
    """(English, Korean) one-paragraph rationale for one model's place in the ranking (`score`, one of
    `evaluation.ranking`)."""
    info = BY_ID[score.model]
    strong = _strongest(score)
    en_strong = " and ".join(CRITERION_INFO[c].label_en for c in strong)
    ko_strong = ", ".join(CRITERION_INFO[c].label_ko for c in strong)
    failed = [g for g in score.gates if not g.passed]

    en = f"{info.name_en} ranks {score.rank} of 4 (score {score.score:.2f})"
    ko = f"{info.name_ko}: 4개 모델 중 {score.rank}위 (점수 {score.score:.2f})"
    if strong:
        en += f"; its largest contributions come from {en_strong}"
        ko += f", 주요 기여 항목은 {ko_strong}"
    if failed:
        en += "; gate failed: " + "; ".join(g.reason for g in failed)
        ko += ", 충족하지 못한 필수 조건: " + "; ".join(g.reason_ko for g in failed)
    en += "."
    ko += "."
    if evaluation.missing_inputs:
        en += f" Not assessed for lack of input: {', '.join(evaluation.missing_inputs)}."
        ko += f" 입력이 없어 평가하지 못한 항목: {', '.join(evaluation.missing_inputs)}."
    return en, ko
