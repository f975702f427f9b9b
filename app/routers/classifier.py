"""Classifier registry endpoints and the consultant feedback loop."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from app.dependencies import SessionDep, SettingsDep
from app.errors import NotFound
from app.routers.common import READ, WRITE, problems
from app.schemas import NO_NUL
from app.security import ADMIN_SCOPE, READ_SCOPE
from app.services import registry
from app.services.classifier_runtime import forget_pointer
from scoring import classifier as clf

# Every route asks for a key with the read scope at least (see app/security.py).
router = APIRouter(prefix="/v1", tags=["classifier"], dependencies=READ_SCOPE)


class MarkdownResponse(PlainTextResponse):
    media_type = "text/markdown"


VersionPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)]


class ModelVersionOut(BaseModel):
    version: str
    created_at: datetime
    active: bool
    estimator: str
    params: dict[str, Any]
    training_data_hash: str
    library_versions: dict[str, Any]
    features: list[str]
    metrics: dict[str, Any]
    artefact_sha256: str


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activate: bool | None = Field(
        None, description="true: activate; false: never; null: activate only if it beats the active one"
    )


class TrainResult(BaseModel):
    version: str
    active: bool
    decision: str
    comparison: dict[str, Any] | None
    metrics: dict[str, Any]
    training_seconds: float | None


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chosen_model: Literal["production", "hospital", "research", "composite"]
    decided_by: str = Field(min_length=1, max_length=128, pattern=NO_NUL, examples=["KHIDI consulting team"])
    reason: str = Field(
        min_length=1, max_length=2000, pattern=NO_NUL, examples=["Ministry chose the hospital-led model"]
    )


class OutcomeOut(BaseModel):
    id: int
    assessment_id: str
    chosen_model: str
    decided_by: str
    reason: str
    created_at: datetime


def _out(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "created_at": row.created_at,
        "active": row.is_active,
        "estimator": row.estimator,
        "params": row.params,
        "training_data_hash": row.training_data_hash,
        "library_versions": row.library_versions,
        "features": row.features,
        "metrics": row.metrics,
        "artefact_sha256": row.artefact_sha256,
    }


@router.get(
    "/classifier",
    response_model=ModelVersionOut,
    responses={**READ, **problems(404)},
    summary="Active classifier / 활성 분류기",
)
def get_active(session: SessionDep) -> Any:
    """The active version: training date, data hash, estimator, and cross-validated metrics next to
    the rule engine and a majority-class baseline scored on the same folds."""
    row = registry.get_active(session)
    if row is None:
        raise NotFound("no classifier version is active; POST /v1/classifier/train")
    return _out(row)


@router.get(
    "/classifier/versions",
    response_model=list[ModelVersionOut],
    responses=READ,
    summary="All classifier versions",
)
def list_versions(session: SessionDep) -> Any:
    """Every trained version, newest first; versions are immutable, `active` is a movable pointer."""
    return [_out(r) for r in registry.get_all(session)]


@router.get(
    "/classifier/card",
    responses={**READ, **problems(404)},
    response_class=MarkdownResponse,
    summary="Model card (Markdown) / 모델 카드",
)
def model_card(session: SessionDep, settings: SettingsDep) -> Any:
    """Data, labels and their basis, metrics with their spread across folds, and known limits."""
    from app.services.classifier_runtime import active_classifier

    row = registry.get_active(session)
    if row is None or active_classifier(session, settings=settings) is None:
        raise NotFound("no classifier version is active")
    model = clf.load_artefact(
        settings.model_dir / row.artefact_path, row.artefact_sha256, row.library_versions["sklearn"]
    )
    text = (
        f"Version: `{row.version}` (active since training on {row.created_at:%Y-%m-%d})\n\n"
        + clf.model_card_markdown(model)
    )
    return MarkdownResponse(text)


@router.post(
    "/classifier/train",
    response_model=TrainResult,
    status_code=201,
    dependencies=ADMIN_SCOPE,
    responses=WRITE,
    summary="Train a new version (admin) / 새 분류기 학습",
)
def train(session: SessionDep, settings: SettingsDep, body: TrainRequest | None = None) -> Any:
    """Train on the shipped cases plus recorded outcomes. The new version becomes active only if
    asked or if it beats the active one on the same cross-validation folds."""
    result = registry.train(session, settings=settings, activate_new=(body or TrainRequest()).activate)
    forget_pointer()
    return result


@router.post(
    "/classifier/versions/{version}/activate",
    response_model=ModelVersionOut,
    dependencies=ADMIN_SCOPE,
    responses={**WRITE, **problems(404, 409)},
    summary="Activate a version (admin)",
)
def activate(version: VersionPath, session: SessionDep, settings: SettingsDep) -> Any:
    """Point `active` at this version after verifying its artefact loads."""
    from app.services.classifier_runtime import load

    row = registry.get(session, version=version)
    load(row, settings=settings)  # refuse a missing or tampered artefact before it goes live
    row = registry.activate(session, version=version)
    forget_pointer()
    return _out(row)


@router.post(
    "/assessments/{assessment_id}/outcome",
    response_model=OutcomeOut,
    status_code=201,
    dependencies=ADMIN_SCOPE,
    responses={**WRITE, **problems(404)},
    tags=["matching"],
    summary="Record the model finally chosen / 최종 선택 모델 기록",
)
def record_outcome(
    assessment_id: Annotated[str, Path(min_length=1, max_length=64, pattern=NO_NUL)],
    body: OutcomeIn,
    session: SessionDep,
) -> Any:
    """What the consultant or government finally chose, by whom and why (admin: outcomes become
    training labels). Outcomes join the labelled cases of the next training with `label_basis` =
    `outcome`."""
    row = registry.record_outcome(
        session,
        assessment_id=assessment_id,
        chosen_model=body.chosen_model,
        decided_by=body.decided_by,
        reason=body.reason,
    )
    return {
        "id": row.id,
        "assessment_id": row.assessment_id,
        "chosen_model": row.chosen_model,
        "decided_by": row.decided_by,
        "reason": row.reason,
        "created_at": row.created_at,
    }
