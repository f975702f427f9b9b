"""Scoring rounds: single matches that arrive together are analysed in one array pass.

The rules' analysis of one profile is almost all fixed numpy overhead: about 0.5 ms alone, and
little more for eight profiles in one call (`scoring.robustness.analyse` works on rows). Under load
an event loop reads several requests in one turn, and each match route reaches its scoring before
the loop turns again. So a match asks a `Rounds` for its analysis: the first to ask in a loop turn
opens a round and schedules its close (`loop.call_soon`, which runs after everything already
scheduled), later ones join it, and the close analyses each group of profiles that share weights
and settings in one call. A lone request waits one loop turn and costs what it did.

An analysis of many rows gives each row exactly what it gives that row alone
(tests/scoring/test_analysis.py), so how requests were grouped never shows in an answer.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Profile = TypeVar("Profile")
Context = TypeVar("Context")
Result = TypeVar("Result")


@dataclass
class _Group(Generic[Profile, Context, Result]):
    context: Context
    profiles: list[Profile] = field(default_factory=list)
    waiting: list[asyncio.Future[tuple[Result, int]]] = field(default_factory=list)


class Rounds(Generic[Profile, Context, Result]):
    """Coalesces `analyse(profiles, context)` calls made in one event-loop turn, per group key.

    Each caller gets `(result, i)`: the shared result and its own row in it. If the shared call
    raises, each profile is analysed alone, so one bad profile fails only its own request.
    """

    def __init__(self, analyse: Callable[[list[Profile], Context], Result]) -> None:
        self._analyse = analyse
        self._open: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, _Group[Profile, Context, Result]]
        ] = weakref.WeakKeyDictionary()

    def analyse(
        self, key: Hashable, context: Context, profile: Profile
    ) -> asyncio.Future[tuple[Result, int]]:
        """Join this turn's round (opening it if need be); await the returned future for the result.

        `key` must be equal for exactly the calls that may share one `context`.
        """
        loop = asyncio.get_running_loop()
        groups = self._open.get(loop)
        if groups is None:
            groups = self._open[loop] = {}
            loop.call_soon(self._close, loop)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(context)
        waiting: asyncio.Future[tuple[Result, int]] = loop.create_future()
        group.profiles.append(profile)
        group.waiting.append(waiting)
        return waiting

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        for group in self._open.pop(loop, {}).values():
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
