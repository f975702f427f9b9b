"""Classifier registry: train versions, store artefacts, move the active pointer, collect outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, InvalidInput, NotFound
from app.services import assessments
from models import AssessmentOutcome, ModelVersion
from scoring import classifier as clf
from scoring.cluster_models import MODEL_IDS

CASES_FILE = "reference_cases.csv"


def _outcome_cases(session: Session) -> pd.DataFrame:
    """Recorded outcomes as labelled cases, with the profile the assessment used."""
    rows = []
    for outcome in session.scalars(select(AssessmentOutcome).order_by(AssessmentOutcome.id)):
        used = assessments.get(session, assessment_id=outcome.assessment_id).response["profile_used"]
        stage = used["innovation_stage"]["value"]
        if stage is None:
            continue  # a case without a stage cannot be placed; the seed's typology rests on it
        row: dict[str, Any] = {c: "" for c in clf.CASE_COLUMNS}
        row.update(
            case_id=f"outcome_{outcome.id}",
            name=f"assessment {outcome.assessment_id}",
            kind="outcome",
            innovation_stage=stage,
            label=outcome.chosen_model,
            label_basis="outcome",
            label_argument=outcome.reason,
            source=f"outcome recorded by {outcome.decided_by} on {outcome.created_at:%Y-%m-%d}",
        )
        for api_name, column in (
            ("rd", "rd_level"),
            ("government_investment_will", "government_investment_will"),
            ("healthcare_capacity", "healthcare_capacity"),
            ("research_capacity", "research_capacity"),
            ("manufacturing_base", "manufacturing_base"),
            ("private_sector_strength", "private_sector_strength"),
        ):
            row[column] = used[api_name].get("level") or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=list(clf.CASE_COLUMNS))


def training_cases(session: Session, *, settings: Settings) -> pd.DataFrame:
    """The shipped reference cases plus every recorded outcome."""
    shipped = clf.load_cases(settings.data_dir / CASES_FILE)
    outcomes = _outcome_cases(session)
    if outcomes.empty:
        return shipped
    return clf.validate_cases(pd.concat([shipped, outcomes], ignore_index=True), source="cases + outcomes")


def get_active(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.is_active))


def get(session: Session, *, version: str) -> ModelVersion:
    row = session.get(ModelVersion, version)
    if row is None:
        raise NotFound(f"classifier version {version!r} does not exist")
    return row


def get_all(session: Session) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc())))


def activate(session: Session, *, version: str) -> ModelVersion:
    """Move the active pointer; the database's one-active index refuses a concurrent second pointer."""
    row = get(session, version=version)
    try:
        with session.begin_nested():
            session.execute(update(ModelVersion).where(ModelVersion.is_active).values(is_active=False))
            session.execute(
                update(ModelVersion).where(ModelVersion.version == version).values(is_active=True)
            )
    except IntegrityError as exc:
        raise Conflict("another activation happened at the same time; retry") from exc
    session.refresh(row)
    return row


def train(session: Session, *, settings: Settings, activate_new: bool | None = None) -> dict[str, Any]:
    """Train a version from the current cases; it becomes active if asked, if none is, or if it beats the active one."""
    cases = training_cases(session, settings=settings)
    try:
        model = clf.train_classifier(cases)
    except ValueError as exc:
        raise InvalidInput("cases", str(exc), where=None) from exc
    path, sha256 = clf.save_artefact(model, settings.model_dir)
    version = f"clf-{model.training_data_hash[:8]}-{sha256[:8]}"
    existing = session.get(ModelVersion, version)
    row = existing or ModelVersion(
        version=version,
        training_data_hash=model.training_data_hash,
        estimator=model.estimator,
        params=model.params,
        library_versions=model.library_versions,
        features=list(model.feature_names),
        metrics=model.metrics,
        artefact_path=path.name,
        artefact_sha256=sha256,
        is_active=False,
    )
    if existing is None:
        session.add(row)
        session.flush()

    active = get_active(session)
    comparison = None
    if activate_new is False:
        decision = "kept the active version (activation not requested)"
    elif active is None:
        decision = "activated: no version was active"
    elif activate_new:
        decision = "activated on request"
    elif active.version == row.version:
        decision = "identical to the active version"
    else:
        comparison = clf.compare_on_same_folds(
            cases, active=clf.EstimatorSpec(active.estimator, active.params), candidate=model.spec
        )
        decision = (
            "activated: beats the active version on the same folds"
            if comparison.beats_active()
            else "kept the active version: the new one does not beat it on the same folds"
        )
    if decision.startswith("activated"):
        activate(session, version=row.version)
    return {
        "version": row.version,
        "active": row.is_active,
        "decision": decision,
        "comparison": comparison.as_dict() if comparison else None,
        "metrics": row.metrics,
        "training_seconds": model.training_seconds,
    }


def ensure_active(session: Session, *, settings: Settings) -> str:
    """Make sure a classifier version is active (training the first one); returns a log line."""
    active = get_active(session)
    if active is not None and (Path(settings.model_dir) / active.artefact_path).exists():
        return f"classifier: version {active.version} active"
    result = train(session, settings=settings, activate_new=True)
    m = result["metrics"]
    return f"classifier: trained and activated {result['version']} ({metrics_headline(m)})"


def metrics_headline(metrics: dict[str, Any]) -> str:
    """One line of cross-validated macro-F1: classifier, rules, majority."""
    try:
        c = metrics["classifier"]["macro_f1"]["mean"]
        r = metrics["rule_engine"]["macro_f1"]["mean"]
        b = metrics["majority"]["macro_f1"]["mean"]
        return f"CV macro-F1 classifier {c:.2f}, rules {r:.2f}, majority {b:.2f}"
    except (KeyError, TypeError):
        return "metrics recorded"


def record_outcome(
    session: Session, *, assessment_id: str, chosen_model: str, decided_by: str, reason: str
) -> AssessmentOutcome:
    """Record the model finally chosen after an assessment; it joins the next training."""
    assessments.get(session, assessment_id=assessment_id)
    if chosen_model not in MODEL_IDS:
        raise InvalidInput("chosen_model", f"expected one of {list(MODEL_IDS)}")
    row = AssessmentOutcome(
        assessment_id=assessment_id, chosen_model=chosen_model, decided_by=decided_by, reason=reason
    )
    session.add(row)
    session.flush()
    return row
