"""The active classifier as the matching service sees it: verified, loaded once, cached."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sklearn
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import ServiceError
from models import ModelVersion
from scoring import classifier as clf
from scoring.profile import CountryProfile


class ArtefactRefused(ServiceError):
    """An artefact that failed verification; it is never loaded."""

    status = 422
    title = "Artefact refused"


@dataclass(frozen=True, slots=True)
class ActiveClassifier:
    version: str
    predictor: clf.FastPredictor

    def explain(self, profile: CountryProfile) -> tuple[dict[str, float], list[tuple[str, float]]]:
        """Class probabilities per model and the per-feature contributions to the top one."""
        return self.predictor.explain(profile)


_loaded: dict[str, ActiveClassifier] = {}
_pointers: dict[str, tuple[float, str | None]] = {}  # database URL -> (checked at, active version)
_lock = threading.Lock()
POINTER_TTL = 2.0  # seconds; an activation reaches every replica within this


def load(row: ModelVersion, *, settings: Settings) -> ActiveClassifier:
    """Load and verify one version's artefact (sha256 and scikit-learn version); cached per version."""
    cached = _loaded.get(row.version)
    if cached is not None:
        return cached
    try:
        model = clf.load_artefact(
            Path(settings.model_dir) / row.artefact_path, row.artefact_sha256, sklearn.__version__
        )
    except clf.ArtefactError as exc:
        raise ArtefactRefused(f"classifier version {row.version} refused: {exc}") from exc
    loaded = ActiveClassifier(row.version, model.predictor())
    _loaded[row.version] = loaded
    return loaded


_refused: dict[str, tuple[float, str]] = {}  # version -> (when, why): not re-hashed on every request
REFUSAL_TTL = 30.0  # seconds before a refused artefact is tried again (it may have been restored)


def in_memory(settings: Settings) -> bool:
    """Whether `active_classifier` would answer now without a query."""
    checked_at, version = _pointers.get(settings.database_url, (-1e9, None))
    return time.monotonic() - checked_at < POINTER_TTL and (version is None or version in _loaded)


def active_classifier(session: Session, *, settings: Settings) -> ActiveClassifier | None:
    """The active classifier version, or None while none has been trained; ArtefactRefused if broken."""
    checked_at, version = _pointers.get(settings.database_url, (-1e9, None))
    if time.monotonic() - checked_at < POINTER_TTL and (version is None or version in _loaded):
        return _loaded.get(version) if version else None
    with _lock:
        row = session.scalar(select(ModelVersion).where(ModelVersion.is_active))
        if row is not None and row.version in _refused:
            when, why = _refused[row.version]
            if time.monotonic() - when < REFUSAL_TTL:
                raise ArtefactRefused(why)
        try:
            loaded = load(row, settings=settings) if row is not None else None
        except ArtefactRefused as exc:
            _refused[row.version] = (time.monotonic(), exc.detail)  # type: ignore[union-attr]
            raise
        _pointers[settings.database_url] = (time.monotonic(), row.version if row else None)
        return loaded


def classifier_for_matching(
    session: Session, *, settings: Settings
) -> tuple[ActiveClassifier | None, str | None]:
    """(classifier, None), or (None, why) when none is active or its artefact is refused.

    A broken artefact must not take matching down: matches fall back to the rules and say so,
    and /readyz reports the refusal.
    """
    try:
        loaded = active_classifier(session, settings=settings)
    except ArtefactRefused:
        return None, "the active classifier's artefact failed verification (see /readyz)"
    return loaded, None if loaded is not None else "no classifier version is active"


def forget_pointer() -> None:
    """Re-read the active version on the next request (after an activation in this process)."""
    _pointers.clear()
    _refused.clear()
