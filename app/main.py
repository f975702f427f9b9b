"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from app.config import Settings, get_settings
from app.db import make_engine
from app.errors import install_handlers
from app.middleware import BodyLimit
from app.routers import classifier, compare, countries, match, meta, reports, weights

DESCRIPTION = """
ClusterMatch ranks KHIDI's four biomedical-cluster export models — **production** (생산중심형),
**hospital** (병원중심형), **research** (연구중심형) and **composite** (복합형) — for a target country,
explains each ranking criterion by criterion, and keeps every assessment.

ClusterMatch는 대상 국가의 프로필(혁신 단계, R&D 수준, 정부 투자 의지 등)에 맞춰 4가지 바이오메디컬
클러스터 해외진출 모델의 순위를 매기고 근거를 설명합니다.

Errors are `application/problem+json` with `errors[].loc` naming the field.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="ClusterMatch", version="1.0.0", description=DESCRIPTION)
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    install_handlers(app)
    app.include_router(meta.router)
    app.include_router(match.router)
    app.include_router(compare.router)
    app.include_router(countries.router)
    app.include_router(weights.router)
    app.include_router(classifier.router)
    app.include_router(reports.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


app = create_app()
