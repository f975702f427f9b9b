"""Health and the model catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.routers.common import READ
from app.schemas import ClusterModelOut, Health
from app.security import READ_SCOPE
from scoring.cluster_models import CLUSTER_MODELS

router = APIRouter()


@router.get("/healthz", response_model=Health, tags=["operations"], summary="Liveness")
def healthz() -> Any:
    """200 once the process can serve matches."""
    return {"status": "ok"}


@router.get(
    "/v1/cluster-models",
    response_model=list[ClusterModelOut],
    tags=["cluster models"],
    dependencies=READ_SCOPE,
    responses=READ,
    summary="The four export models / 4가지 해외진출 모델",
)
def list_cluster_models() -> Any:
    """Production, hospital, research and composite as KHIDI defined them (seeds/000 Tables 2-3):
    who leads, which country stages they suit, reference clusters and who does what."""
    return [
        {
            "id": m.id,
            "name_ko": m.name_ko,
            "name_en": m.name_en,
            "led_by": m.led_by,
            "fits_stages": list(m.fits_stages),
            "summary": m.summary,
            "summary_ko": m.summary_ko,
            "reference_clusters": list(m.reference_clusters),
            "roles": list(m.roles),
            "source": m.source,
        }
        for m in CLUSTER_MODELS
    ]
