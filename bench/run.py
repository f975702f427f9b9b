"""Throughput and latency of the HTTP service, in one run (`make bench`).

Prepares a temp SQLite database, starts `python -m app.cli serve --workers 2` on 127.0.0.1, drives
bounded load with wrk (1 thread, 16 connections, DURATION s a run; a Python thread driver when wrk is
not installed) and prints requests/s, p50 and p99 for each endpoint (medians of BENCH_ROUNDS rounds,
3 by default, each measuring every endpoint in turn), the median of sequential 1,000-item batch
requests, and the ratios against their targets (each the median of the ratios within a round). POST /v1/match is measured twice: with
one profile repeated (what a memo cache answers) and with a different random profile on every request
(what the scoring costs); batch items are distinct random profiles too. Figures are only comparable as
ratios measured in the same run on the same machine.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DURATION = 10  # seconds a load run
WARMUP = 2  # seconds before each measured run
CONNECTIONS = 16
WORKERS = 2
BATCH_ITEMS = 1000
BATCH_RUNS = 7
# wrk opens its 16 keep-alive connections at once, and the worker that wakes first may accept them all;
# a run whose load landed that way measures one worker, so it is run again, up to ATTEMPTS runs.
ATTEMPTS = 3
# Every endpoint is measured in each of ROUNDS rounds (endpoints in turn, so a machine that drifts
# faster or slower moves them alike), and the median of its rounds is reported.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PROFILE = {"innovation_stage": "chaser", "rd_level": "medium", "government_investment_will": "medium"}
RULES = {"profile": PROFILE, "method": "rules"}
HYBRID = {"profile": PROFILE, "method": "hybrid"}
STAGES = ["leader", "chaser", "developing"]
SEED = 1234
# Each load run and batch run draws from a fresh block of CONNECTIONS seeds (thread i of the Python
# driver uses seed + i), so no run replays the profiles of its warm-up or of an earlier run.
SEEDS = itertools.count(SEED, CONNECTIONS)


@dataclass(frozen=True)
class Distinct:
    """A request body spec: a different random profile on every request, scored by `method`."""

    method: str


Body = dict[str, object] | Distinct | None


def random_profile(rng: random.Random) -> dict[str, object]:
    """One random profile; WRK_DISTINCT_LUA draws the same kind in Lua."""
    return {
        "innovation_stage": rng.choice(STAGES),
        "rd_intensity_pct": round(4 * rng.random(), 4),
        "government_investment_will": round(rng.random(), 4),
        "healthcare_capacity": round(rng.random(), 4),
        "research_capacity": round(rng.random(), 4),
    }


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors
    error_kinds: str  # what the errors were, as the driver reports them ("non-2xx 2, timeout 1")
    worker_cpu_s: list[float]
    attempt: int  # which run this is: a run whose load landed on one worker is run again
    each_rps: list[float] = field(default_factory=list)  # req/s of each round (in a median of rounds)

    @property
    def skewed(self) -> bool:
        """Whether one worker did less than half the other's work. The supervisor also has a helper
        child with ~0 CPU, so the WORKERS busiest are compared."""
        busiest = sorted(self.worker_cpu_s)[-WORKERS:]
        return len(busiest) >= 2 and min(busiest) < 0.5 * max(busiest)


def median_of(rounds: list[Result]) -> Result:
    """One endpoint's rounds as one result: the median of each figure, every error, and the CPU and
    run number of the round with the median req/s."""
    middle = sorted(rounds, key=lambda r: r.rps)[len(rounds) // 2]
    return Result(
        name=middle.name,
        rps=statistics.median(r.rps for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        error_kinds="; ".join(r.error_kinds for r in rounds if r.error_kinds),
        worker_cpu_s=middle.worker_cpu_s,
        attempt=middle.attempt,
        each_rps=[r.rps for r in rounds],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


# ---------------------------------------------------------------- server


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._sink = log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(WORKERS),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers can be stopped with it
        )

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if (
                    httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200
                    and len(self.workers()) >= WORKERS
                ):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"server not healthy after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        """Pids of the uvicorn worker processes (children of the supervisor we started)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def cpu_seconds(self) -> dict[int, float]:
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[pid] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group of the process started above
                self.proc.wait(timeout=5)
        self._sink.close()


# ---------------------------------------------------------------- load drivers

WRK_LUA = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{body}
"""
# The body of a Distinct run: a new random profile for every request, like random_profile().
WRK_DISTINCT_LUA = """
math.randomseed({seed})
local stages = {{{stages}}}
local template = {template}
request = function()
  local body = string.format(template, stages[math.random(#stages)], 4 * math.random(),
    math.random(), math.random(), math.random())
  return wrk.format(nil, nil, nil, body)
end
"""


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not m:
        return float("nan")
    number, unit = float(m.group(1)), m.group(2)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    url: str, method: str, body: Body, duration: int, seed: int, workdir: Path
) -> tuple[float, float, float, int, str]:
    script = workdir / f"wrk-{method.lower()}.lua"
    if isinstance(body, Distinct):
        template = (
            '{"profile": {"innovation_stage": "%s", "rd_intensity_pct": %.4f, '
            '"government_investment_will": %.4f, "healthcare_capacity": %.4f, "research_capacity": %.4f}, '
            f'"method": {json.dumps(body.method)}}}'
        )
        body_lua = WRK_DISTINCT_LUA.format(
            seed=seed, stages=", ".join(map(json.dumps, STAGES)), template=json.dumps(template)
        )
    else:
        body_lua = f"wrk.body = {json.dumps(json.dumps(body))}" if body is not None else ""
    script.write_text(WRK_LUA.format(method=method, body=body_lua))
    proc = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    )
    out = proc.stdout
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {out}\n{proc.stderr}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    kinds: dict[str, int] = {}
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        kinds["non-2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        # wrk's timeout is 2 s: a "timeout" is a request that took longer
        kinds.update(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    errors = sum(kinds.values())
    return rps, p50, p99, errors, ", ".join(f"{kind} {n}" for kind, n in kinds.items() if n)


def run_threads(
    url: str, method: str, body: Body, duration: int, seed: int
) -> tuple[float, float, float, int, str]:
    """Closed-loop driver: CONNECTIONS threads, each with one keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS
    deadline = time.monotonic() + duration

    def loop(i: int) -> None:
        rng = random.Random(seed + i)
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                payload = (
                    {"profile": random_profile(rng), "method": body.method}
                    if isinstance(body, Distinct)
                    else body
                )
                t0 = time.perf_counter()
                try:
                    r = client.request(method, url, json=payload)
                    ok = 200 <= r.status_code < 400
                except httpx.TransportError:
                    ok = False
                latencies[i].append((time.perf_counter() - t0) * 1000)
                errors[i] += not ok

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(CONNECTIONS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    flat = sorted(x for lat in latencies for x in lat)
    n = len(flat)
    failed = sum(errors)
    return (
        n / elapsed,
        flat[n // 2],
        flat[min(n - 1, int(n * 0.99))],
        failed,
        f"failed {failed}" if failed else "",
    )


def measure(server: Server, name: str, path: str, method: str, body: Body, workdir: Path) -> Result:
    url = server.base + path
    use_wrk = shutil.which("wrk") is not None
    driver = (
        (lambda d: run_wrk(url, method, body, d, next(SEEDS), workdir))
        if use_wrk
        else (lambda d: run_threads(url, method, body, d, next(SEEDS)))
    )
    driver(WARMUP)
    for attempt in range(1, ATTEMPTS + 1):
        before = server.cpu_seconds()
        rps, p50, p99, errors, kinds = driver(DURATION)
        after = server.cpu_seconds()
        cpu = [round(after.get(pid, 0.0) - before.get(pid, 0.0), 1) for pid in sorted(after)]
        result = Result(name, rps, p50, p99, errors, kinds, cpu, attempt)
        if not result.skewed:
            break
    return result


def measure_batch(server: Server) -> tuple[float, list[float], int]:
    rng = random.Random(next(SEEDS))

    def draw(n: int) -> list[dict[str, object]]:
        # fresh items for every request: a later run does not resend the profiles of an earlier one
        return [{"profile": random_profile(rng), "method": "rules"} for _ in range(n)]

    timings: list[float] = []
    failures = 0
    with httpx.Client(base_url=server.base, timeout=120) as client:
        client.post("/v1/match/batch", json={"items": draw(10)})  # warm-up
        for _ in range(BATCH_RUNS):
            items = draw(BATCH_ITEMS)
            t0 = time.perf_counter()
            r = client.post("/v1/match/batch", json={"items": items})
            timings.append((time.perf_counter() - t0) * 1000)
            if (
                r.status_code != 200
                or len(r.json().get("results", [])) != BATCH_ITEMS
                or any("assessment_id" not in x for x in r.json()["results"])
            ):
                failures += 1
    return statistics.median(timings), timings, failures


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    driver = "wrk 1 thread" if shutil.which("wrk") else "Python threads (wrk not installed)"
    print(f"# ClusterMatch bench, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {machine()}")
    print(
        f"server: `python -m app.cli serve --workers {WORKERS}` on 127.0.0.1, "
        f"{'database ' + os.environ['BENCH_DATABASE_URL'] if os.environ.get('BENCH_DATABASE_URL') else 'temp SQLite database'}; "
        f"load: {driver}, {CONNECTIONS} connections, {DURATION} s a run after {WARMUP} s warm-up, "
        f"{ROUNDS} rounds of every endpoint in turn (medians reported)"
    )
    with tempfile.TemporaryDirectory(prefix="clustermatch-bench-") as tmp:
        workdir = Path(tmp)
        env = {
            **os.environ,
            # BENCH_DATABASE_URL runs the same bench against another (empty) database, e.g. PostgreSQL.
            "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{workdir}/bench.db",
            "MODEL_DIR": str(workdir / "models"),
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        }
        prep = subprocess.run(
            [sys.executable, "-m", "app.cli", "prepare"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if prep.returncode != 0:
            print(prep.stdout, prep.stderr, file=sys.stderr)
            return 1
        server = Server(env, workdir / "server.log")
        try:
            server.wait_healthy()
            runs = [
                ("GET /healthz", "/healthz", "GET", None),
                ("POST /v1/match rules, repeated profile", "/v1/match", "POST", RULES),
                ("POST /v1/match rules, distinct profiles", "/v1/match", "POST", Distinct("rules")),
                ("POST /v1/match hybrid, repeated profile", "/v1/match", "POST", HYBRID),
                ("POST /v1/match hybrid, distinct profiles", "/v1/match", "POST", Distinct("hybrid")),
                ("GET /v1/countries/KAZ/match", "/v1/countries/KAZ/match", "GET", None),
            ]
            rounds: dict[str, list[Result]] = {name: [] for name, *_ in runs}
            for _ in range(ROUNDS):
                for name, path, method, body in runs:
                    rounds[name].append(measure(server, name, path, method, body, workdir))
            results = {name: median_of(measured) for name, measured in rounds.items()}
            batch_median, batch_all, batch_failures = measure_batch(server)
        finally:
            server.stop()

    print()
    print(
        "| endpoint | req/s | p50 ms | p99 ms | errors | req/s each round | "
        "CPU s per server child process | run |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | --- | ---: |")
    for r in results.values():
        cpu = " / ".join(f"{c:.1f}" for c in r.worker_cpu_s)
        each = " / ".join(f"{x:,.0f}" for x in r.each_rps)
        print(
            f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | {each} | {cpu} "
            f"| {r.attempt} |"
        )
    print(
        f"| POST /v1/match/batch, {BATCH_ITEMS} distinct items (rules), {BATCH_RUNS} sequential | "
        f"median {batch_median:.0f} ms | | | {batch_failures} | "
        f"runs: {', '.join(f'{t:.0f}' for t in batch_all)} ms | | |"
    )

    def share(numerator: str, denominator: str) -> tuple[float, str]:
        """The median over the rounds of a ratio measured within each round, and each round's."""
        each = [a.rps / b.rps for a, b in zip(rounds[numerator], rounds[denominator], strict=True)]
        return statistics.median(each), " / ".join(f"{x:.0%}" for x in each)

    kinds = ("repeated profile", "distinct profiles")
    print()
    print("| target | measured (median of rounds) | each round | verdict |")
    print("| --- | --- | --- | --- |")
    for kind in kinds:
        ratio, each = share(f"POST /v1/match rules, {kind}", "GET /healthz")
        print(f"| rules ({kind}) >= 35% of healthz req/s | {ratio:.0%} | {each} | {verdict(ratio >= 0.35)} |")
    for kind in kinds:
        measured = rounds[f"POST /v1/match rules, {kind}"]
        p99 = statistics.median(r.p99_ms for r in measured)
        each = " / ".join(f"{r.p99_ms:.1f}" for r in measured)
        print(
            f"| rules ({kind}) p99 <= 25 ms at {CONNECTIONS} connections | {p99:.1f} ms | {each} ms "
            f"| {verdict(p99 <= 25)} |"
        )
    for kind in kinds:
        ratio, each = share(f"POST /v1/match hybrid, {kind}", f"POST /v1/match rules, {kind}")
        print(
            f"| hybrid ({kind}) >= 80% of rules ({kind}) req/s | {ratio:.0%} | {each} | {verdict(ratio >= 0.80)} |"
        )
    print(
        f"| {BATCH_ITEMS}-item batch < 300 ms (median) | {batch_median:.0f} ms | | "
        f"{verdict(batch_median < 300 and not batch_failures)} |"
    )
    errors = sum(r.errors for r in results.values()) + batch_failures
    if errors:
        print(f"\nwarning: {errors} failed requests during the runs; the figures above include them")
        for r in results.values():
            if r.errors:
                print(f"  {r.name}: {r.error_kinds}")
    print(
        f"\nrun: which of up to {ATTEMPTS} runs is shown; a run where one worker did less than half the "
        "other's work (all keep-alive connections on one worker) is run again"
    )
    skewed = [r.name for measured in rounds.values() for r in measured if r.skewed]
    if skewed:
        print(
            f"note: still uneven after {ATTEMPTS} runs, in a round each: {', '.join(skewed)}; those rounds "
            "compare one worker with two"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
