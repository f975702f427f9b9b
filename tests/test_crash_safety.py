"""Crash safety: an assessment the API answered 201 for survives a SIGKILL of the server.

For each backend (a temp SQLite file; a fresh PostgreSQL database, skipped with the reason when the
server does not answer): prepare the database, start the real server, fire POST /v1/match from a few
threads, SIGKILL the uvicorn process mid-burst, restart it on the same database and read every
assessment that was acknowledged with 201 back: each must be 200 and equal to what was returned.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import create_pg_database, drop_pg_database, require_pg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "profile": {"innovation_stage": "chaser", "rd_level": "medium", "government_investment_will": "medium"},
    "method": "rules",
}
THREADS = 4
KILL_AFTER = 80  # acknowledged assessments before the kill
BURST_TIMEOUT = 60.0

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "prepare"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"prepare failed:\n{proc.stdout}\n{proc.stderr}"


class Server:
    """`python -m app.cli serve` with one worker: uvicorn runs in the process we start, so its pid is
    the pid that serves (no shell, no supervisor in between)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._sink = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not healthy after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def sigkill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._sink.close()


def burst_and_kill(server: Server) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Fire POST /v1/match from THREADS threads; SIGKILL the server once KILL_AFTER were acknowledged.

    Returns ({assessment_id: body returned with 201}, [transport errors seen after the kill])."""
    acknowledged: dict[str, dict[str, Any]] = {}
    unexpected: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()
    enough = threading.Event()

    def worker() -> None:
        with httpx.Client(base_url=server.base, timeout=10) as client:
            while True:
                try:
                    r = client.post("/v1/match", json=BODY)
                except httpx.TransportError as exc:
                    if killed.is_set():
                        with lock:
                            errors.append(repr(exc))
                        return
                    with lock:
                        unexpected.append(f"transport error before the kill: {exc!r}")
                    continue
                with lock:
                    if r.status_code == 201:
                        body = r.json()
                        acknowledged[body["assessment_id"]] = body
                        if len(acknowledged) >= KILL_AFTER:
                            enough.set()
                    else:
                        unexpected.append(f"{r.status_code}: {r.text[:300]}")
                        enough.set()  # stop waiting: the burst has already failed
                        return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    assert enough.wait(BURST_TIMEOUT), f"only {len(acknowledged)} acknowledged in {BURST_TIMEOUT} s"
    assert not unexpected, f"non-201 answers before the kill: {unexpected[:5]}"
    killed.set()  # before the kill, so no failure caused by it counts as an error before it
    server.sigkill()  # mid-burst: the other threads have requests in flight
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a load thread did not stop after the kill"
    assert not unexpected, f"non-201 answers during the burst: {unexpected[:5]}"
    return acknowledged, errors


def run_scenario(env: dict[str, str], tmp_path: Path) -> None:
    prepare(env)
    log = tmp_path / "server.log"
    first = Server(env, log)
    try:
        first.wait_healthy()
        acknowledged, errors = burst_and_kill(first)
    finally:
        first.stop()
    assert errors, "no request failed: the kill did not land mid-burst"

    second = Server(env, log)
    try:
        second.wait_healthy()
        missing: list[str] = []
        changed: list[str] = []
        with httpx.Client(base_url=second.base, timeout=10) as client:
            for assessment_id, body in acknowledged.items():
                r = client.get(f"/v1/assessments/{assessment_id}")
                if r.status_code != 200:
                    missing.append(f"{assessment_id}: {r.status_code} {r.text[:200]}")
                elif r.json() != body:
                    changed.append(assessment_id)
    finally:
        second.stop()
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged assessments lost: {missing[:5]}"
    assert not changed, f"{len(changed)} assessments read back differently: {changed[:5]}"


def base_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "MODEL_DIR": str(tmp_path / "models")}


def test_sqlite_acknowledged_assessments_survive_sigkill(tmp_path: Path) -> None:
    run_scenario(base_env(f"sqlite:///{tmp_path}/crash.db", tmp_path), tmp_path)


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_pg()
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.mark.postgres
def test_postgresql_acknowledged_assessments_survive_sigkill(pg_url: str, tmp_path: Path) -> None:
    run_scenario(base_env(pg_url, tmp_path), tmp_path)
