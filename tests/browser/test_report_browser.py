"""In headless Chromium against the real server: Swagger UI "Try it out", and the report in both languages.

Starts `python -m app.cli serve` on a free 127.0.0.1 port with a fresh SQLite database prepared by
`migrate` and `data load`, drives Chromium over the DevTools protocol, and saves screenshots to
artifacts/. Skips only when no Chromium is installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.cdp import Chromium, Page, environ_with, find_chromium, wait_http

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = find_chromium()
# Swagger UI's element id for an operation: operations-<tag>-<operationId>.
OPERATION = "#operations-matching-post_match_v1_match_post"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no chromium binary on PATH (install it: apt-get install -y chromium)"
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a free port, with its own migrated SQLite database and reference data."""
    tmp = tmp_path_factory.mktemp("browser-server")
    env = environ_with(
        DATABASE_URL=f"sqlite:///{tmp / 'clustermatch.db'}",
        MODEL_DIR=str(tmp / "models"),
        LOG_LEVEL="WARNING",
    )
    for command in (["migrate"], ["data", "load"]):
        subprocess.run(
            [sys.executable, "-m", "app.cli", *command],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
        )
    port = free_port()
    log = (tmp / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz", 90, lambda: process.poll() is None)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    assert CHROMIUM is not None
    browser = Chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    try:
        p = browser.new_page()
        for domain in ("Page", "Runtime", "Log", "Network"):
            p.call(f"{domain}.enable")
        yield p
    finally:
        browser.close()


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        result: dict = json.load(r)
        return result


def console_errors(page: Page) -> list[str]:
    errors = []
    for e in page.events_named("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded"):
        p = e["params"]
        if e["method"] == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif e["method"] == "Runtime.consoleAPICalled" and p["type"] == "error":
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
            errors.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")
    return errors


def requested_hosts(page: Page) -> set[str]:
    """Hosts of every network request the page made; inline data: and blob: URLs fetch nothing."""
    hosts = set()
    for e in page.events_named("Network.requestWillBeSent"):
        parts = urlsplit(e["params"]["request"]["url"])
        if parts.scheme not in ("data", "blob", "about"):
            hosts.add(parts.hostname or parts.scheme)
    return hosts


def test_swagger_try_it_out_runs_post_match(server: str, page: Page) -> None:
    page.events.clear()
    page.navigate(f"{server}/docs")
    for selector, what in (
        (".opblock-summary-control", "the POST /v1/match operation"),
        (".try-out__btn", "the Try it out button"),
        (".btn.execute", "the Execute button"),
    ):
        page.wait_for(f"!!document.querySelector('{OPERATION} {selector}')", 20, what)
        page.evaluate(f"document.querySelector('{OPERATION} {selector}').click()")
    status = page.wait_for(
        f"(document.querySelector('{OPERATION} .live-responses-table tr.response .response-col_status') || {{}}).textContent",
        20,
        "the response code shown after Execute",
    )
    # The shot shows the operation from its title down to the response Swagger UI received.
    box = page.evaluate(
        f"(() => {{const op = document.querySelector('{OPERATION}').getBoundingClientRect();"
        f" const res = document.querySelector('{OPERATION} .live-responses-table').getBoundingClientRect();"
        " return {x: 0, y: op.top + scrollY, width: innerWidth, height: res.bottom - op.top + 20};})()"
    )
    page.screenshot(ARTIFACTS / "swagger-try-it-out.png", clip=box)
    assert status.strip().startswith("201")
    assert console_errors(page) == []
    assert requested_hosts(page) <= {"127.0.0.1"}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_report_page_renders_charts_offline_in_both_languages(server: str, page: Page, lang: str) -> None:
    created = post_json(f"{server}/v1/match", {"country": "VNM"})
    page.events.clear()
    page.navigate(f"{server}/v1/assessments/{created['assessment_id']}/report?lang={lang}")
    page.wait_for(
        "document.querySelectorAll('svg.chart').length === 3",
        10,
        "three charts; the page shows: " + str(page.evaluate("document.body.innerText.slice(0, 300)")),
    )

    charts = page.evaluate(
        "[...document.querySelectorAll('svg.chart')].map(s => {const b = s.getBoundingClientRect();"
        " return {w: b.width, h: b.height, shapes: s.querySelectorAll('rect,path,polygon,circle,line').length,"
        " label: s.querySelector('title').textContent}})"
    )
    assert len(charts) == 3
    assert all(c["w"] > 300 and c["h"] > 200 and c["shapes"] > 20 for c in charts), charts
    assert page.evaluate("document.documentElement.lang") == lang
    heading = page.evaluate("document.querySelector('h1').textContent")
    assert "Vietnam" in heading or "Viet Nam" in heading
    assert ("평가 보고서" in heading) == (lang == "ko")
    page.screenshot(ARTIFACTS / f"report-VNM-{lang}.png")
    assert console_errors(page) == []
    assert requested_hosts(page) <= {"127.0.0.1"}
