"""Scoring rounds: single matches that arrive together are analysed in one array pass.

The rules' analysis of one profile is almost all fixed numpy overhead: about 0.5 ms alone, and
little more for eight profiles in one call (`scoring.robustness.analyse` works on rows). Under load
an event loop reads several requests in one turn, and each match route reaches its scoring before
the loop turns again. So a match asks a `Rounds` for its analysis: the first to ask in a loop turn
opens a round and schedules its close (`loop.call_soon`, which runs after everything already
scheduled), later ones join it, and the close analyses each group of profiles that share weights
and settings in one call. A lone request waits one loop turn and costs what it did.

A round may also wait a little for the matches it expects (`wait` seconds at most, a few
milliseconds; the way inference servers batch requests). Matches that arrive together under load
do not all arrive in one turn: their answers went out one after another, and the first to come back
would open a round alone while the others are still on their way, and from then on the two groups
take turns, each paying the fixed cost. So a round expects as many matches as the last round on
its loop had, or as are in flight on it now (`in_flight`), whichever is more, and closes as soon as
that many have joined, or when `wait` has passed with fewer. With one match in flight and a last
round of one, it expects one and closes at the end of its turn as before: a request on a quiet
service is never kept waiting. When fewer come than expected, the round closes after `wait` with
what it has, and the next round expects that many. (The matching service counts a match as in
flight until it is answered, its commit included, though a match waiting for its commit can join
no round: under load it is about to send the next request. So a match that comes alone while another
is committing waits out `wait`; see `app.services.matching.match`.)

An analysis of many rows gives each row exactly what it gives that row alone
(tests/scoring/test_analysis.py), so how requests were grouped never shows in an answer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Profile = TypeVar("Profile")
Context = TypeVar("Context")
Result = TypeVar("Result")


@dataclass
class _Group(Generic[Profile, Context, Result]):
    context: Context
    profiles: list[Profile] = field(default_factory=list)
    waiting: list[asyncio.Future[tuple[Result, int]]] = field(default_factory=list)


@dataclass
class _Round(Generic[Profile, Context, Result]):
    expected: int  # close as soon as this many profiles have joined
    groups: dict[Hashable, _Group[Profile, Context, Result]] = field(default_factory=dict)
    size: int = 0  # profiles joined, over every group
    timer: asyncio.TimerHandle | None = None  # the close at the end of the wait, while waiting


@dataclass
class _Loop:
    """What a `Rounds` knows of one event loop."""

    open: _Round[Any, Any, Any] | None = None
    in_flight: int = 0  # matches inside `in_flight()`
    last_size: int = 1  # profiles in the last round closed


class Rounds(Generic[Profile, Context, Result]):
    """Coalesces `analyse(profiles, context)` calls made in one event-loop turn (or, when a round
    waits, during its wait), per group key.

    Each caller gets `(result, i)`: the shared result and its own row in it. If the shared call
    raises, each profile is analysed alone, so one bad profile fails only its own request.
    """

    def __init__(self, analyse: Callable[[list[Profile], Context], Result]) -> None:
        self._analyse = analyse
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()

    def _state(self, loop: asyncio.AbstractEventLoop) -> _Loop:
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _Loop()
        return state

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Count a match on this event loop from when it needs an analysis to its answer: a round
        waiting for matches expects at least as many as are in flight."""
        state = self._state(asyncio.get_running_loop())
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    def analyse(
        self, key: Hashable, context: Context, profile: Profile, *, wait: float = 0.0
    ) -> asyncio.Future[tuple[Result, int]]:
        """Join this loop's open round (opening it if need be); await the returned future for the result.

        `key` must be equal for exactly the calls that may share one `context`. `wait` (seconds) is
        how long a round opened by this call may wait for the matches it expects (module docstring).
        """
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        current = state.open
        if current is None:
            current = state.open = _Round(expected=max(state.in_flight, state.last_size))
            if wait > 0 and current.expected > 1:
                current.timer = loop.call_later(wait, self._close, loop, current)
            else:
                loop.call_soon(self._close, loop, current)
        group = current.groups.get(key)
        if group is None:
            group = current.groups[key] = _Group(context)
        waiting: asyncio.Future[tuple[Result, int]] = loop.create_future()
        group.profiles.append(profile)
        group.waiting.append(waiting)
        current.size += 1
        if current.timer is not None and current.size >= current.expected:
            current.timer.cancel()
            current.timer = None
            loop.call_soon(self._close, loop, current)
        return waiting

    def _close(self, loop: asyncio.AbstractEventLoop, closing: _Round[Profile, Context, Result]) -> None:
        state = self._state(loop)
        if state.open is closing:
            state.open = None
        state.last_size = closing.size
        for group in closing.groups.values():
            self._run(group)

    def _run(self, group: _Group[Profile, Context, Result]) -> None:
        try:
            result = self._analyse(group.profiles, group.context)
        except Exception as exc:
            if len(group.profiles) == 1:
                if not group.waiting[0].done():  # done: its request was cancelled meanwhile
                    group.waiting[0].set_exception(exc)
                return
            for profile, waiting in zip(group.profiles, group.waiting, strict=True):
                self._run(_Group(group.context, [profile], [waiting]))
            return
        for i, waiting in enumerate(group.waiting):
            if not waiting.done():
                waiting.set_result((result, i))
