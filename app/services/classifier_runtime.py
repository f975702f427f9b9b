"""The active classifier as the matching service sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from scoring.profile import CountryProfile


class Explainer(Protocol):
    def explain(self, profile: CountryProfile) -> tuple[dict[str, float], list[tuple[str, float]]]: ...


@dataclass(frozen=True, slots=True)
class ActiveClassifier:
    version: str
    predictor: Explainer

    def explain(self, profile: CountryProfile) -> tuple[dict[str, float], list[tuple[str, float]]]:
        """Class probabilities per model and the per-feature contributions to the top one."""
        return self.predictor.explain(profile)


def active_classifier(session: Session) -> ActiveClassifier | None:
    """The active classifier version, or None while none has been trained."""
    return None
