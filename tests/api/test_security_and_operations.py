"""API keys and scopes, rate limits, request ids, security headers, metrics and readiness."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app.db import make_engine
from app.errors import ServiceUnavailable
from app.main import create_app
from app.services import api_keys
from app.services.api_keys import KeyRing
from models import ApiKey, Assessment
from tests.conftest import make_settings
from tests.factories import match_body
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def keyed(database_url, model_dir):
    """An app with a read key and an admin key (rate limit 5 a minute); keys removed afterwards."""
    app = create_app(make_settings(database_url, model_dir, rate_limit_per_minute=5))
    with app.state.sessionmaker() as s, s.begin():
        read_key, _ = api_keys.create(s, name="portal", scopes=["read"])
        admin_key, _ = api_keys.create(s, name="ops", scopes=["admin"])
        revoked_key, row = api_keys.create(s, name="old", scopes=["read"])
        api_keys.revoke(s, prefix=row.prefix)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, read_key, admin_key, revoked_key
    with app.state.sessionmaker() as s, s.begin():
        s.query(ApiKey).delete()
    app.state.engine.dispose()


def test_missing_key_is_401(keyed):
    c, *_ = keyed
    response = c.post("/v1/match", json=match_body())
    assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert response.json()["errors"] == [{"loc": ["header", "X-API-Key"], "msg": "missing X-API-Key header"}]


@pytest.mark.parametrize("which", ["unknown", "revoked"])
def test_unknown_or_revoked_key_is_401(keyed, which):
    c, read_key, _, revoked = keyed
    key = revoked if which == "revoked" else read_key[:-4] + "abcd"
    response = c.get("/v1/cluster-models", headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert response.json()["errors"] == [
        {"loc": ["header", "X-API-Key"], "msg": "invalid or revoked API key"}
    ]


@pytest.mark.parametrize(
    ("body", "kind"), [(b'{"profile": ', "syntax"), (b"\xff\xfe{}", "not UTF-8")], ids=["syntax", "not UTF-8"]
)
def test_a_malformed_body_is_answered_only_after_the_key_is_checked(keyed, body, kind):
    """A body that is not JSON is refused while it is read, before the route's dependencies run;
    the key is still checked first, so a caller without a valid key learns only that."""
    c, read_key, _, revoked = keyed
    post = {"content": body, "headers": {"Content-Type": "application/json"}}
    assert c.post("/v1/match", **post).status_code == 401
    response = c.post("/v1/match", content=body, headers={**post["headers"], "X-API-Key": revoked})
    assert response.status_code == 401 and response.headers["www-authenticate"]
    assert response.json()["errors"] == [
        {"loc": ["header", "X-API-Key"], "msg": "invalid or revoked API key"}
    ]
    wrong_scope = c.post(
        "/v1/weight-profiles", content=body, headers={**post["headers"], "X-API-Key": read_key}
    )
    assert wrong_scope.status_code == 403
    valid = c.post("/v1/match", content=body, headers={**post["headers"], "X-API-Key": read_key})
    assert valid.status_code == 400 and valid.json()["title"] == "Malformed JSON", (kind, valid.text)


def test_every_route_with_a_body_checks_the_key_before_reading_it(keyed):
    """Every operation that takes a JSON body answers a malformed one with 401 when no key is given:
    its key check runs first (one whose router added the check elsewhere would answer 400)."""
    c, *_ = keyed
    operations = [
        (method, path)
        for path, item in c.app.openapi()["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert len(operations) >= 6, operations
    for method, path in operations:
        url = path.replace("{assessment_id}", "x").replace("{version}", "x").replace("{name}", "x")
        response = c.request(method, url, content=b"{", headers={"Content-Type": "application/json"})
        assert response.status_code == 401, (method, path, response.text)


def test_read_key_matches_but_cannot_train(keyed):
    c, read_key, *_ = keyed
    assert c.post("/v1/match", json=match_body(), headers={"X-API-Key": read_key}).status_code == 201
    response = c.post("/v1/classifier/train", json={}, headers={"X-API-Key": read_key})
    assert response.status_code == 403 and "admin" in response.json()["detail"]


def test_health_stays_open_with_keys(keyed):
    c, *_ = keyed
    assert c.get("/healthz").status_code == 200


def test_burst_past_the_rate_limit_is_429_with_retry_after(keyed):
    c, _, admin_key, _ = keyed
    statuses = [c.get("/v1/cluster-models", headers={"X-API-Key": admin_key}).status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    limited = c.get("/v1/cluster-models", headers={"X-API-Key": admin_key})
    assert int(limited.headers["retry-after"]) >= 1


def test_stored_key_is_only_a_hash(session):
    key, row = api_keys.create(session, name="t", scopes=["read"])
    assert key not in row.key_hash and len(row.key_hash) == 64
    session.rollback()


def test_request_id_is_echoed_or_generated_and_security_headers_set(client):
    echoed = client.get("/healthz", headers={"X-Request-ID": "portal-42"})
    assert echoed.headers["x-request-id"] == "portal-42"
    generated = client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.headers["x-content-type-options"] == "nosniff"
    assert generated.headers["x-frame-options"] == "DENY"


def metric(text: str, sample: str) -> float:
    """The value of one sample (name and labels, as exposed) in Prometheus text; 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_and_matches(client):
    # The counters are the process's, shared with every earlier test: each must go up by this match.
    requests = 'clustermatch_requests_total{method="POST",route="/v1/match",status="201"}'
    latency = 'clustermatch_request_duration_seconds_count{method="POST",route="/v1/match"}'
    before = client.get("/metrics").text
    response = client.post("/v1/match", json=match_body())
    assert response.status_code == 201
    model = response.json()["recommended_model"]
    matches = f'clustermatch_matches_total{{method="rules",model="{model}"}}'  # labels in name order
    after = client.get("/metrics").text
    for sample in (requests, latency, matches):
        assert metric(after, sample) == metric(before, sample) + 1, sample


def test_readyz_checks_the_database(client):
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["database"] == "ok"


def assert_503_problem(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"


def test_a_database_that_never_answers_is_503_on_a_request(model_dir):
    app = create_app(make_settings("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", model_dir))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert_503_problem(c.post("/v1/match", json=match_body()))


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_database_down_during_requests_is_503_and_the_service_recovers(database_url, model_dir):
    """The app reaches PostgreSQL through a forwarder that the test cuts (every connection closed, new
    ones reset) and restores: what a database restart does."""
    url = make_url(database_url)
    engine = create_engine(database_url)  # directly, not through the forwarder

    def stored_ids() -> set[str]:
        with engine.connect() as conn:
            return set(conn.scalars(select(Assessment.id)))

    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    app = create_app(make_settings(url.set(port=proxy.port).render_as_string(hide_password=False), model_dir))
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            stored = c.post("/v1/match", json=match_body())
            assert stored.status_code == 201
            read_path = f"/v1/assessments/{stored.json()['assessment_id']}"
            before = stored_ids()

            proxy.cut()
            assert_503_problem(c.post("/v1/match", json=match_body(rd_level="high")))
            assert_503_problem(c.get(read_path))
            assert c.get("/readyz").status_code == 503

            proxy.restore()
            deadline = time.monotonic() + 10  # the pool checks each connection before use
            while (again := c.post("/v1/match", json=match_body(rd_level="low"))).status_code != 201:
                assert_503_problem(again)
                assert time.monotonic() < deadline, "no recovery within 10 s of the database's return"
                time.sleep(0.2)
            assert c.get(read_path).json() == stored.json()
            assert c.get("/readyz").status_code == 200
    finally:
        app.state.engine.dispose()
        proxy.close()
    # Of the matches made after the first, only the one answered 201 was stored: nothing of those
    # refused while the database was away, nor of the retries.
    try:
        assert stored_ids() - before == {again.json()["assessment_id"]}
    finally:
        engine.dispose()


def _locked(database_url: str, table: str) -> psycopg.Connection:
    """Another session holding `table`, as a long migration or a stuck transaction would; it keeps the
    lock until it rolls back, or 30 s at most should a test fail first."""
    locker = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    locker.execute("SET idle_in_transaction_session_timeout = '30s'")
    locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return locker


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_statement_stuck_on_a_lock_is_cancelled_with_503_and_the_service_recovers(database_url, model_dir):
    app = create_app(make_settings(database_url, model_dir, db_statement_timeout_seconds=0.5))
    with TestClient(app, raise_server_exceptions=False) as c, ThreadPoolExecutor(1) as pool:
        stored = c.post("/v1/match", json=match_body())
        assert stored.status_code == 201
        read_path = f"/v1/assessments/{stored.json()['assessment_id']}"
        locker = _locked(database_url, "assessments")
        try:
            # From a thread with a deadline: without the timeout these would wait for good.
            write = pool.submit(c.post, "/v1/match", json=match_body()).result(timeout=10)
            read = pool.submit(c.get, read_path).result(timeout=10)
            # More than 100 rows: several statements in one pipelined transaction (app/services/writer.py).
            batch = pool.submit(c.post, "/v1/match/batch", json={"items": [match_body()] * 150}).result(
                timeout=10
            )
        finally:
            locker.rollback()
            locker.close()
        for response in (write, read, batch):
            assert_503_problem(response)
        assert c.post("/v1/match", json=match_body()).status_code == 201
        assert c.get(read_path).status_code == 200
        after = c.post("/v1/match/batch", json={"items": [match_body()] * 150})
        assert after.status_code == 200 and len(after.json()["results"]) == 150
    app.state.engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_urls_own_connection_parameters_stand_beside_the_statement_timeout(database_url):
    url = f"{database_url}?options=-c%20search_path%3Dpg_catalog&connect_timeout=3"
    engine = make_engine(url, statement_timeout=1.5)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW search_path").scalar() == "pg_catalog"
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "1500ms"
        dsn = connection.connection.dbapi_connection.info.dsn  # what the driver was given
    assert "connect_timeout=3" in dsn
    engine.dispose()
    # options given twice, one of them a statement_timeout of the URL's own, which stands
    url = f"{database_url}?options=-c%20search_path%3Dpg_catalog&options=-c%20statement_timeout%3D2500"
    engine = make_engine(url, statement_timeout=1.5)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW search_path").scalar() == "pg_catalog"
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "2500ms"
    engine.dispose()
    engine = make_engine(database_url, statement_timeout=0)  # 0: no timeout; the default connect timeout
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        assert "connect_timeout=10" in connection.connection.dbapi_connection.info.dsn
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_while_a_reload_waits_on_the_database_checks_go_on_with_the_keys_loaded_before(database_url):
    engine = make_engine(database_url)
    ring = KeyRing(sessionmaker(bind=engine), ttl=0.3, max_stale=1.0)
    ring.refresh()
    time.sleep(0.35)  # due again
    locker = _locked(database_url, "api_keys")
    slow = threading.Thread(target=ring.refresh)
    try:
        slow.start()
        time.sleep(0.5)  # the reload now waits on the lock, longer than the ring's ttl
        assert slow.is_alive()
        started = time.monotonic()
        ring.refresh()  # does not wait for it: the keys are 0.85 s old, within ttl + max_stale
        assert time.monotonic() - started < 0.2
        time.sleep(1.0)  # 1.85 s old: past ttl + max_stale, too old to trust a revocation to
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            ring.refresh()
        assert 0.9 < time.monotonic() - started < 2.0  # waited for the reload, max_stale at most
    finally:
        locker.rollback()
        locker.close()
    slow.join(timeout=10)
    assert not slow.is_alive()
    # Loaded when the slow reload ended, not when it began: not due again at once.
    assert not ring.due()
    engine.dispose()


def test_after_a_quiet_spell_checks_wait_for_the_reload_instead_of_failing(database_url):
    """Keys last loaded long ago (no check for a while) are too old to use. A burst of checks then
    waits for the one reload under way rather than answering 503 (which it did, under load, after
    10 s of requests that check no key)."""
    engine = make_engine(database_url)
    ring = KeyRing(sessionmaker(bind=engine), ttl=0.3, max_stale=1.0)
    ring.refresh()
    ring._loaded_at = time.monotonic() - 100  # as after 100 s without a check

    @event.listens_for(engine, "before_cursor_execute")
    def _slow(*_args):  # type: ignore[no-untyped-def]
        time.sleep(0.3)

    first = threading.Thread(target=ring.refresh)
    first.start()
    time.sleep(0.1)  # the first reload is under way
    ring.refresh()  # waits for it; raised 503 at once before
    first.join(timeout=10)
    assert not ring.due()
    engine.dispose()


def test_key_checks_read_what_was_loaded_and_never_query(database_url):
    engine = make_engine(database_url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql))
    ring = KeyRing(sessionmaker(bind=engine), ttl=0.0)  # due at every moment
    ring.refresh()
    assert len(statements) == 1
    ring.any_keys()
    ring.verify("cm_abcdefgh_" + "x" * 32)
    assert len(statements) == 1
    engine.dispose()


DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


def _record_connection_attempts(engine) -> list[str]:
    """Where each connection attempt ran: on an event loop or in a thread."""
    attempts: list[str] = []

    @event.listens_for(engine, "do_connect")
    def _attempt(*_args):
        try:
            asyncio.get_running_loop()
            attempts.append("event loop")
        except RuntimeError:
            attempts.append("thread")

    return attempts


def test_a_key_ring_that_cannot_reload_tries_again_only_after_its_retry_interval():
    engine = create_engine(DEAD_DATABASE)
    attempts = _record_connection_attempts(engine)
    ring = KeyRing(sessionmaker(bind=engine), retry=60)
    with pytest.raises(OperationalError):
        ring.refresh()
    for _ in range(3):
        with pytest.raises(ServiceUnavailable):
            ring.refresh()
    assert attempts == ["thread"]  # one attempt; the later checks failed at once
    engine.dispose()


def test_with_the_database_unreachable_the_key_check_never_connects_on_the_event_loop(model_dir):
    app = create_app(make_settings(DEAD_DATABASE, model_dir))
    attempts = _record_connection_attempts(app.state.engine)
    with TestClient(app, raise_server_exceptions=False) as c:
        attempts.clear()  # start-up tries on the loop, before anything is served
        for _ in range(2):
            time.sleep(1.1)  # past the key ring's retry interval: it tries the database again
            for method, path in [
                ("POST", "/v1/match"),
                ("GET", "/v1/countries"),
                ("GET", "/v1/countries/KAZ/match"),
                ("GET", "/v1/assessments/0123456789abcdef0123456789abcdef"),
            ]:
                response = c.request(method, path, json=match_body() if method == "POST" else None)
                assert response.status_code == 503, (path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["retry-after"] == "5"
    # One attempt a retry interval, each in a worker thread; the other requests failed at once.
    assert attempts == ["thread", "thread"]


def test_revoking_every_key_does_not_reopen_the_api(database_url, model_dir):
    app = create_app(make_settings(database_url, model_dir))
    with app.state.sessionmaker() as s, s.begin():
        _, row = api_keys.create(s, name="only", scopes=["admin"])
        api_keys.revoke(s, prefix=row.prefix)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.post("/v1/match", json=match_body()).status_code == 401
    finally:
        with app.state.sessionmaker() as s, s.begin():
            s.query(ApiKey).delete()
        app.state.engine.dispose()


def test_required_keys_with_none_created_refuse_requests(database_url, model_dir):
    app = create_app(make_settings(database_url, model_dir, require_api_keys=True))
    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/v1/cluster-models").status_code == 401
    app.state.engine.dispose()


def test_recording_an_outcome_needs_admin(keyed):
    c, read_key, admin_key, _ = keyed
    created = c.post("/v1/match", json=match_body(), headers={"X-API-Key": read_key}).json()
    body = {"chosen_model": "hospital", "decided_by": "t", "reason": "t"}
    url = f"/v1/assessments/{created['assessment_id']}/outcome"
    assert c.post(url, json=body, headers={"X-API-Key": read_key}).status_code == 403
    assert c.post(url, json=body, headers={"X-API-Key": admin_key}).status_code == 201
