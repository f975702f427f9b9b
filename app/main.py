"""The FastAPI application."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from app.config import Settings, get_settings
from app.db import make_engine
from app.dependencies import track_writes
from app.errors import PROBLEM_JSON, ServiceError, ServiceUnavailable, install_handlers
from app.middleware import BodyLimit, HeadAsGet, ProblemCORS
from app.observability import RequestContext, configure_logging
from app.routers import classifier, compare, countries, match, meta, reports, weights
from app.security import TokenBucket, check_route_key
from app.services import reference, weight_profiles
from app.services.api_keys import KeyRing
from app.services.classifier_runtime import active_classifier, classifier_for_matching
from app.services.writer import AssessmentWriter

log = logging.getLogger("clustermatch")

DESCRIPTION = """
ClusterMatch ranks KHIDI's four biomedical-cluster export models — **production** (생산중심형),
**hospital** (병원중심형), **research** (연구중심형) and **composite** (복합형) — for a target country,
explains each ranking criterion by criterion, and keeps every assessment.

ClusterMatch는 대상 국가의 프로필(혁신 단계, R&D 수준, 정부 투자 의지 등)에 맞춰 4가지 바이오메디컬
클러스터 해외진출 모델의 순위를 매기고 근거를 설명합니다.

Errors are `application/problem+json` with `errors[].loc` naming the field. With API keys configured,
send `X-API-Key` (scope `read` for matching and look-ups, `admin` for weight profiles and training).
"""

TAGS = [
    {"name": "matching", "description": "Rank the four models for a profile / 모델 매칭"},
    {"name": "countries", "description": "Reference data for 218 economies / 참조 국가 데이터"},
    {"name": "cluster models", "description": "The four export models / 4가지 수출 모델"},
    {"name": "weight profiles", "description": "Versioned weights, AHP elicitation / 가중치 프로필"},
    {"name": "classifier", "description": "Trained classifier registry / 분류기"},
    {"name": "reports", "description": "Printable reports, charts, exports / 보고서"},
    {"name": "operations", "description": "Health, readiness, metrics"},
]
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"
STATIC_DOCS = "/static-docs"  # Swagger UI's files, served by the service itself
GC_YOUNG_THRESHOLD = 5000  # allocations between young collections (Python's default: 700)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.writer.reopen()
    try:
        app.state.keyring.refresh()
        if not app.state.keyring.any_keys():
            log.warning(
                "no API keys configured: every endpoint is open (create one with `python -m app.cli keys create`)"
            )
    except OperationalError:
        log.error("database unreachable at start-up; requests answer 503 until it is back")
    _warm_caches(app)
    # Everything loaded so far (libraries, the app, reference data once derived) lives as long as
    # the process. Freezing it keeps it out of the garbage collector's full passes, which would
    # otherwise walk ~200,000 objects (~100 ms, a pause every request in flight would wait out).
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    # Matches in flight hold a few thousand objects between them, so with the default threshold (700)
    # a young collection ran every nine matches or so, walked what was still in flight (~110 us) and
    # promoted it to be walked again. Measured in-process, 10,800 matches 8 at a time after warm-up:
    # 1,246 young and 113 middle collections (146-163 ms in all, ~14 us a match) with the default;
    # 2 young ones (2.5 ms) with this threshold. Nearly everything a match allocates is freed by
    # reference counting, so collections stay rare rather than growing.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    yield
    app.state.writer.close()  # commits what is still queued
    app.state.engine.dispose()


def _warm_caches(app: FastAPI) -> None:
    """Derive the reference profiles and load the weights and classifier before the first request."""
    try:
        with app.state.sessionmaker() as session:
            reference.reference_table(session)
            weight_profiles.resolve(session, name="default", version=None, overrides=None)
            classifier_for_matching(session, settings=app.state.settings)
    except (SQLAlchemyError, ServiceError) as exc:  # not migrated or loaded yet: the first request will
        log.info("caches not warmed at start-up: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="ClusterMatch",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    engine = make_engine(
        settings.database_url,
        statement_timeout=settings.db_statement_timeout_seconds,
        wal_autocheckpoint=0,  # SQLite: the assessment writer's Checkpointer copies the log instead
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    track_writes(app.state.sessionmaker)
    # SQLite has one writer at a time and a busy handler that sleeps with growing back-off. Requests
    # that write through their session (weight profiles, outcomes, training) queue on this lock
    # instead, within the process (read-only ones commit without it: see app.dependencies);
    # assessments go through the writer thread, which queues on a file lock across processes.
    # PostgreSQL takes concurrent commits as they come.
    app.state.write_lock = threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
    app.state.writer = AssessmentWriter(engine, wait_seconds=settings.db_write_wait_seconds)
    app.state.keyring = KeyRing(app.state.sessionmaker)
    app.state.rate_limiter = (
        TokenBucket(settings.rate_limit_per_minute) if settings.rate_limit_per_minute > 0 else None
    )

    install_handlers(app, check_key=check_route_key)
    app.include_router(meta.router)
    for module in (match, compare, countries, weights, classifier, reports):
        # Each router asks for a read key itself (admin on some routes), not here: a route's own
        # dependencies are what app.security.check_route_key runs before answering a malformed body.
        app.include_router(module.router)
    _operations(app)
    _errors_documented_as_problems(app)

    app.add_middleware(HeadAsGet, native=(f"{STATIC_DOCS}/",))  # innermost: logs and metrics still see HEAD
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        routes=app.router.routes,  # the same list: routes added later are seen too
    )
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORS,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-api-key", "x-request-id"],
        )
    app.add_middleware(RequestContext)
    return app


def _errors_documented_as_problems(app: FastAPI) -> None:
    """Document every 4xx and 5xx answer as application/problem+json only, which is all the service
    sends for them. FastAPI would also list the route's own media type (JSON, CSV, Markdown) with the
    error schema, and none under problem+json."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # cached by FastAPI as app.openapi_schema: edited in place, once
        for item in schema["paths"].values():
            for operation in item.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content")
                    if str(code).startswith(("4", "5")) and content:
                        described = [c["schema"] for c in content.values() if "schema" in c]
                        response["content"] = {PROBLEM_JSON: {"schema": described[0]} if described else {}}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(app: FastAPI) -> None:
    """Swagger UI served from the service itself, readiness and metrics."""
    app.mount(STATIC_DOCS, StaticFiles(directory=SWAGGER_STATIC), name="static-docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="ClusterMatch API",
            swagger_js_url=f"{STATIC_DOCS}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_DOCS}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_DOCS}/favicon.png",
        )

    @app.get("/readyz", tags=["operations"], summary="Readiness: database and classifier")
    def readyz() -> dict[str, Any]:
        """200 when the database answers and the active classifier (if any) loads; 503 otherwise."""
        with app.state.sessionmaker() as session:
            session.execute(text("SELECT 1"))
            try:
                loaded = active_classifier(session, settings=app.state.settings)
            except Exception as exc:  # a broken artefact must show up here, not as a 500
                raise ServiceUnavailable(f"active classifier cannot be loaded: {exc}") from exc
        return {"status": "ready", "database": "ok", "classifier": loaded.version if loaded else None}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


app = create_app()
