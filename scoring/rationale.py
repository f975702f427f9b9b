"""Short rationales in English and Korean, written from an evaluation's own numbers."""

from __future__ import annotations

from collections.abc import Sequence

from scoring.cluster_models import BY_ID
from scoring.criteria import CRITERIA, CRITERION_INFO
from scoring.engine import GateResult

_LABEL_EN = [CRITERION_INFO[c].label_en for c in CRITERIA]
_LABEL_KO = [CRITERION_INFO[c].label_ko for c in CRITERIA]
# "its largest contributions come from ..." for each list of criteria met so far (at most a few
# hundred orderings of up to three of seven), English and Korean.
_STRONGEST: dict[tuple[int, ...], tuple[str, str]] = {}


def _strongest_text(strongest: Sequence[int]) -> tuple[str, str]:
    key = tuple(strongest)
    text = _STRONGEST.get(key)
    if text is None:
        text = _STRONGEST[key] = (
            f"; its largest contributions come from {' and '.join(_LABEL_EN[j] for j in key)}",
            f", 주요 기여 항목은 {', '.join(_LABEL_KO[j] for j in key)}",
        )
    return text


def rationale(
    model: str,
    rank: int,
    score: float,
    strongest: Sequence[int],
    gates: Sequence[GateResult],
    missing_inputs: Sequence[str],
) -> tuple[str, str]:
    """(English, Korean) one-paragraph rationale for one model's place in the ranking: its rank and
    score, the criteria (indices, `Explained.strongest`) of its largest contributions, the gates it
    failed among `gates`, and the profile's criteria without an input."""
    info = BY_ID[model]
    shown = f"{score:.2f}"
    en = f"{info.name_en} ranks {rank} of 4 (score {shown})"
    ko = f"{info.name_ko}: 4개 모델 중 {rank}위 (점수 {shown})"
    if strongest:
        strongest_en, strongest_ko = _strongest_text(strongest)
        en += strongest_en
        ko += strongest_ko
    failed = [g for g in gates if not g.passed]
    if failed:
        en += "; gate failed: " + "; ".join([g.reason for g in failed])
        ko += ", 충족하지 못한 필수 조건: " + "; ".join([g.reason_ko for g in failed])
    en += "."
    ko += "."
    if missing_inputs:
        listed = ", ".join(missing_inputs)
        en += f" Not assessed for lack of input: {listed}."
        ko += f" 입력이 없어 평가하지 못한 항목: {listed}."
    return en, ko
