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


def _refusal(version: str | None) -> str | None:
    """Why `version` was refused, while that refusal holds."""
    when, why = _refused.get(version, (-1e9, "")) if version else (-1e9, "")
    return why if time.monotonic() - when < REFUSAL_TTL else None


def _known(settings: Settings) -> tuple[bool, str | None]:
    """(whether the active version read last is current and loaded or refused, that version)."""
    checked_at, version = _pointers.get(settings.database_url, (-1e9, None))
    fresh = time.monotonic() - checked_at < POINTER_TTL
    return fresh and (version is None or version in _loaded or _refusal(version) is not None), version


def in_memory(settings: Settings) -> bool:
    """Whether `active_classifier` would answer now without a query."""
    return _known(settings)[0]


def active_classifier(session: Session, *, settings: Settings) -> ActiveClassifier | None:
    """The active classifier version, or None while none has been trained; ArtefactRefused if broken.

    A refused artefact is remembered like a loaded one, so that while it stays active matches do not
    query for it again on every request (each of them in a worker thread, off the event loop)."""
    known, version = _known(settings)
    if known:
        if version is None or version in _loaded:
            return _loaded[version] if version else None
        why = _refusal(version)
        if why is not None:
            raise ArtefactRefused(why)
    with _lock:
        row = session.scalar(select(ModelVersion).where(ModelVersion.is_active))
        version = row.version if row is not None else None
        loaded, why = None, (None if version in _loaded else _refusal(version))
        if row is not None and why is None:
            try:
                loaded = load(row, settings=settings)
            except ArtefactRefused as exc:
                _refused[row.version] = (time.monotonic(), exc.detail)
                why = exc.detail
        _pointers[settings.database_url] = (time.monotonic(), version)
        if why is not None:
            raise ArtefactRefused(why)
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
