"""Scoring rounds: matches that reach their scoring in one event-loop turn share one analysis."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from sqlalchemy import event

from app.services import classifier_runtime, matching, reference, weight_profiles
from app.services.rounds import Rounds
from scoring.criteria import DEFAULT_WEIGHTS


class Recorder:
    """An analysis that doubles numbers and remembers each call; a negative number is refused."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], str]] = []

    def __call__(self, profiles: list[int], context: str) -> list[int]:
        self.calls.append((list(profiles), context))
        if any(p < 0 for p in profiles):
            raise ValueError(f"negative profile in {profiles}")
        return [2 * p for p in profiles]


def test_calls_in_one_turn_share_one_analysis_and_each_gets_its_own_row():
    recorder = Recorder()
    rounds = Rounds(recorder)

    async def main() -> list[tuple[list[int], int]]:
        return await asyncio.gather(*(rounds.analyse("k", "ctx", p) for p in (3, 4, 5)))

    results = asyncio.run(main())
    assert recorder.calls == [([3, 4, 5], "ctx")]
    assert [result[i] for result, i in results] == [6, 8, 10]


def test_groups_with_other_keys_are_analysed_apart_and_later_turns_open_new_rounds():
    recorder = Recorder()
    rounds = Rounds(recorder)

    async def main() -> None:
        first = [
            rounds.analyse("a", "ctx-a", 1),
            rounds.analyse("b", "ctx-b", 2),
            rounds.analyse("a", "ctx-a", 3),
        ]
        await asyncio.gather(*first)
        await rounds.analyse("a", "ctx-a", 4)

    asyncio.run(main())
    assert recorder.calls == [([1, 3], "ctx-a"), ([2], "ctx-b"), ([4], "ctx-a")]


def test_a_profile_that_fails_fails_only_its_own_request():
    recorder = Recorder()
    rounds = Rounds(recorder)

    async def main() -> list[object]:
        waits = [rounds.analyse("k", "ctx", p) for p in (1, -1, 2)]
        return await asyncio.gather(*waits, return_exceptions=True)

    good, bad, other = asyncio.run(main())
    assert isinstance(bad, ValueError)
    assert good[0][good[1]] == 2 and other[0][other[1]] == 4  # type: ignore[index]
    assert recorder.calls[0][0] == [1, -1, 2]  # tried together first, then one by one
    assert [profiles for profiles, _ in recorder.calls[1:]] == [[1], [-1], [2]]


def test_a_request_cancelled_while_it_waits_does_not_stop_the_others():
    recorder = Recorder()
    rounds = Rounds(recorder)

    async def main() -> tuple[int, int]:
        gone = rounds.analyse("k", "ctx", 1)
        kept = rounds.analyse("k", "ctx", 2)
        gone.cancel()
        result, i = await kept
        return result[i], len(recorder.calls)

    assert asyncio.run(main()) == (4, 1)


def random_profile(rng: random.Random) -> dict[str, object]:
    return {
        "innovation_stage": rng.choice(["leader", "chaser", "developing"]),
        "rd_intensity_pct": round(4 * rng.random(), 4),
        "government_investment_will": round(rng.random(), 4),
        "healthcare_capacity": round(rng.random(), 4),
        "research_capacity": round(rng.random(), 4),
    }


def _answer(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("assessment_id", "created_at")}


@pytest.mark.parametrize("method", ["rules", "hybrid"])
def test_concurrent_matches_are_analysed_together_and_answer_as_alone(client, monkeypatch, method):
    """Twelve matches sent at once through the app: they share analysis passes, and each answer is
    the one the same request gets alone (stored byte for byte)."""
    sizes: list[int] = []
    analyse = matching.ROUNDS._analyse

    def counting(profiles, context):  # type: ignore[no-untyped-def]
        sizes.append(len(profiles))
        return analyse(profiles, context)

    monkeypatch.setattr(matching.ROUNDS, "_analyse", counting)
    # The look-ups stay in memory for the whole test, however slow the machine (see below).
    monkeypatch.setattr(reference, "VERSION_TTL", 600.0)
    monkeypatch.setattr(weight_profiles, "LATEST_TTL", 600.0)
    monkeypatch.setattr(classifier_runtime, "POINTER_TTL", 600.0)
    rng = random.Random(7)
    bodies = [{"profile": random_profile(rng), "method": method} for _ in range(12)]
    # Weighted on the manufacturing base alone: two can be scored and share a round (the same
    # weights); the one without it cannot, and is refused before it reaches a round.
    only_manufacturing = {c: 0.0 for c in DEFAULT_WEIGHTS} | {"manufacturing_base": 1.0}
    for value in (0.3, None, 0.8):
        profile = random_profile(rng) | ({"manufacturing_base": value} if value is not None else {})
        bodies.append({"profile": profile, "method": method, "weights": only_manufacturing})
    bodies.append({"profile": {"innovation_stage": "chaser"}, "method": method})  # refused before scoring

    async def send_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(*(c.post("/v1/match", json=b) for b in bodies))

    # The look-ups are re-read every 2 s, and a request that finds one expired makes its queries in a
    # worker thread first (reaching its round later): one request first, so that all of them find
    # everything in memory.
    assert (
        client.post("/v1/match", json={"profile": random_profile(rng), "method": method}).status_code == 201
    )
    matching.MEMO.clear()
    together = asyncio.run(send_all())
    assert max(sizes) > 1, sizes  # some requests really shared an analysis
    assert 2 in sizes and sum(sizes) == 1 + 12 + 2, sizes  # the two scorable weighted ones together
    assert together[-1].status_code == 422
    assert together[-1].json()["errors"][0]["loc"][-1] == "rd_level"
    assert [r.status_code for r in together[-4:-1]] == [201, 422, 201]
    assert together[-3].json()["errors"][0]["loc"] == ["body", "profile"]

    matching.MEMO.clear()
    for body, response in zip(bodies[:-1], together, strict=False):
        alone = client.post("/v1/match", json=body)
        assert alone.status_code == response.status_code
        if response.status_code != 201:
            assert alone.json() == response.json()
            continue
        assert _answer(alone.json()) == _answer(response.json())
        stored = client.get(f"/v1/assessments/{response.json()['assessment_id']}")
        assert stored.content == response.content


@pytest.mark.parametrize("method", ["rules", "hybrid"])
def test_a_match_whose_look_ups_expired_queries_in_a_thread_and_is_analysed_in_a_round(
    client, monkeypatch, method
):
    """With every look-up cache expired (TTL 0), the queries run in a worker thread, never on the
    event loop, and the analysis still runs in a round on the loop, not in the thread."""
    for module, name in [
        (reference, "VERSION_TTL"),
        (weight_profiles, "LATEST_TTL"),
        (classifier_runtime, "POINTER_TTL"),
    ]:
        monkeypatch.setattr(module, name, 0.0)
    matching.MEMO.clear()
    statements: list[str] = []
    analyses: list[str] = []

    def where() -> str:
        try:
            asyncio.get_running_loop()
            return "event loop"
        except RuntimeError:
            return "thread"

    def record_statement(*_args):  # type: ignore[no-untyped-def]
        statements.append(where())

    analyse = matching.ROUNDS._analyse

    def record_analysis(profiles, context):  # type: ignore[no-untyped-def]
        analyses.append(where())
        return analyse(profiles, context)

    engine = client.app.state.engine
    event.listen(engine, "before_cursor_execute", record_statement)
    monkeypatch.setattr(matching.ROUNDS, "_analyse", record_analysis)
    try:
        for _ in range(2):
            body = {"profile": random_profile(random.Random(len(analyses))), "method": method}
            response = client.post("/v1/match", json=body)
            assert response.status_code == 201, response.text
    finally:
        event.remove(engine, "before_cursor_execute", record_statement)
    assert analyses == ["event loop", "event loop"]
    assert statements and set(statements) == {"thread"}  # the look-ups, and the writer's insert


@pytest.mark.parametrize("method", ["rules", "hybrid"])
def test_when_the_look_ups_expire_one_request_queries_and_the_others_wait_for_it(client, monkeypatch, method):
    """Eight matches in flight when every look-up cache has expired: one makes the queries (in a
    worker thread), the others wait for it and then look up in memory; all answer 201."""
    ttl = 0.5
    for module, name in [
        (reference, "VERSION_TTL"),
        (weight_profiles, "LATEST_TTL"),
        (classifier_runtime, "POINTER_TTL"),
    ]:
        monkeypatch.setattr(module, name, ttl)
    rng = random.Random(11)
    assert (
        client.post("/v1/match", json={"profile": random_profile(rng), "method": method}).status_code == 201
    )
    look_ups: list[str] = []
    look_up = matching._look_up

    def recording(*args):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
            look_ups.append("event loop")
        except RuntimeError:
            look_ups.append("thread")
        return look_up(*args)

    monkeypatch.setattr(matching, "_look_up", recording)
    bodies = [{"profile": random_profile(rng), "method": method} for _ in range(8)]

    async def send_all() -> list[httpx.Response]:
        await asyncio.sleep(ttl + 0.1)  # every cache has expired
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(*(c.post("/v1/match", json=b) for b in bodies))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [201] * 8
    assert look_ups.count("thread") == 1, look_ups
    assert look_ups.count("event loop") == 7


def test_a_round_expects_as_many_as_the_last_one_and_closes_when_they_have_joined():
    """After a round of three, the next waits for three (not for its whole wait); one that sees
    fewer closes after the wait with what it has, and the round after it expects that many."""
    recorder = Recorder()
    rounds = Rounds(recorder)
    wait = 5.0  # long enough that a round closing by its timer would show in the timings below

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(rounds.analyse("k", "ctx", p, wait=wait) for p in (1, 2, 3)))
        taken = []
        start = loop.time()
        first = rounds.analyse("k", "ctx", 4, wait=wait)  # expects three: waits for more
        await asyncio.sleep(0.05)
        assert not first.done()
        rest = [rounds.analyse("k", "ctx", p, wait=wait) for p in (5, 6)]  # the third closes it
        await asyncio.gather(first, *rest)
        taken.append(loop.time() - start)
        start = loop.time()
        lone = rounds.analyse("k", "ctx", 7, wait=0.2)  # expects three, sees one: closes after 0.2 s
        await lone
        taken.append(loop.time() - start)
        start = loop.time()
        await rounds.analyse("k", "ctx", 8, wait=wait)  # the last round had one: no wait
        taken.append(loop.time() - start)
        return taken

    together, lone, after = asyncio.run(main())
    assert [profiles for profiles, _ in recorder.calls] == [[1, 2, 3], [4, 5, 6], [7], [8]]
    assert together < 1.0  # closed by the third to join, not by the 5 s timer
    assert 0.2 <= lone < 1.0
    assert after < 0.1


def test_a_round_expects_the_matches_in_flight_and_a_quiet_loop_never_waits():
    recorder = Recorder()
    rounds = Rounds(recorder)

    async def in_flight(profile: int, delay: float, wait: float) -> tuple[list[int], int]:
        with rounds.in_flight():
            await asyncio.sleep(delay)
            return await rounds.analyse("k", "ctx", profile, wait=wait)

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        taken = []
        start = loop.time()
        # Three in flight: the first to ask waits for the other two, which ask 0.05 and 0.1 s later.
        await asyncio.gather(in_flight(1, 0.0, 5.0), in_flight(2, 0.05, 5.0), in_flight(3, 0.1, 5.0))
        taken.append(loop.time() - start)
        await in_flight(4, 0.0, 0.1)  # expects three (the last round), sees one: closes after 0.1 s
        start = loop.time()
        await in_flight(5, 0.0, 5.0)  # the last round had one, and only this one is in flight
        taken.append(loop.time() - start)
        return taken

    together, alone = asyncio.run(asyncio.wait_for(main(), timeout=20))
    assert [profiles for profiles, _ in recorder.calls] == [[1, 2, 3], [4], [5]]
    assert 0.1 <= together < 1.0  # waited for the third, not for the 5 s timer
    assert alone < 0.1


def test_a_match_that_comes_while_another_commits_waits_out_the_round_wait_and_no_more(client, monkeypatch):
    """The match waiting for its commit is counted as in flight (under load it is about to send its
    next request), so a match that comes meanwhile expects two and, alone, closes after the wait."""
    monkeypatch.setattr(client.app.state.settings, "match_round_wait_ms", 100.0)
    writer = client.app.state.writer
    write = writer.write
    committing, release = asyncio.Event(), asyncio.Event()

    async def held_first_write(rows):  # type: ignore[no-untyped-def]
        if not committing.is_set():
            committing.set()
            await release.wait()
        return await write(rows)

    monkeypatch.setattr(writer, "write", held_first_write)
    expected: list[int] = []
    analyse = matching.ROUNDS.analyse

    def recording(key, context, profile, *, wait=0.0):  # type: ignore[no-untyped-def]
        waiting = analyse(key, context, profile, wait=wait)
        expected.append(matching.ROUNDS._state(asyncio.get_running_loop()).open.expected)  # type: ignore[union-attr]
        return waiting

    monkeypatch.setattr(matching.ROUNDS, "analyse", recording)
    rng = random.Random(5)
    first, second = ({"profile": random_profile(rng), "method": "rules"} for _ in range(2))

    async def main() -> tuple[int, int, float]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            held = asyncio.create_task(c.post("/v1/match", json=first))
            await asyncio.wait_for(committing.wait(), 10)  # the first is analysed, its commit held
            loop = asyncio.get_running_loop()
            start = loop.time()
            answered = await c.post("/v1/match", json=second)
            taken = loop.time() - start
            release.set()
            return (await held).status_code, answered.status_code, taken

    held_status, status, taken = asyncio.run(main())
    assert (held_status, status) == (201, 201)
    assert expected == [1, 2]  # the second's round expected the first, which was committing
    assert 0.09 <= taken < 1.0  # so it waited out the round's 100 ms, and no longer
