"""(c) Start-up restore of 10,000 sessions (load + timers re-armed), and memory per session.

Also the largest event-loop block while restoring (a ticker task records the longest gap
between its wake-ups), the time until every transcript is attached (they are read in the
background after the timers are armed), at 10,000 and 20,000 sessions, and what the
interpreter's garbage collector has to walk: the container objects a restored session keeps,
and any full collection that fell inside a restore (it walks every object of the process,
Home Assistant's own included, and blocks the loop while it does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
import gc
import time
import tracemalloc
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.const import (
    SessionScope,
)
from custom_components.home_agent.session import Session
from custom_components.home_agent.tracker import SessionTracker

from .harness import async_store_sessions
from .naive import STORAGE_KEY, ConversationSessionManager
from .turns import EXCHANGE

SESSIONS = 10_000
# Transcript lengths measured: none (the tracker's own work) and full at the default
# history_max_turns (the most a default agent stores).
EXCHANGES = (0, 10)
# (sessions, exchanges) of the loop-block rows.
BLOCK_SIZES = ((10_000, 10), (20_000, 10), (40_000, 10))
REPEATS = 5


@dataclass(frozen=True, slots=True)
class Restore:
    """How long a restore took (the best of the repeats) and what it keeps in memory."""

    milliseconds: float
    bytes_per_session: float
    # Until every transcript is attached (best of the repeats).
    complete_milliseconds: float = 0.0
    # The longest the event loop was blocked during any restore, start to complete.
    max_block_milliseconds: float = 0.0
    # Container objects (those the garbage collector walks) kept per restored session.
    objects_per_session: float = 0.0
    # Full (oldest-generation) collections during the restores, and the longest of them.
    full_collections: int = 0
    full_collection_milliseconds: float = 0.0
    # The longest block once the full collections' time is taken out: the restore's steps.
    max_own_block_milliseconds: float = 0.0


async def _async_seed_home_agent(
    hass: HomeAssistant, entry_id: str, exchanges: int, sessions: int = SESSIONS
) -> None:
    """Write active sessions the way Home Agent stores them."""
    now = dt_util.utcnow()
    stored: list[Session] = []
    for n in range(sessions):
        last_activity = now - timedelta(seconds=n % 3000)
        session = Session(
            conversation_id=ulid_now(),
            session_key=f"device:device-{n}",
            device_id=f"device-{n}",
            satellite_id=f"assist_satellite.satellite_{n}",
            user_id=None,
            started_at=last_activity - timedelta(minutes=5),
            last_activity=last_activity,
            expires_at=last_activity + timedelta(hours=1),
            turns=exchanges,
            max_turns=10,
        )
        session.transcript.extend([EXCHANGE] * exchanges)
        stored.append(session)
    await async_store_sessions(hass, entry_id, stored)


async def _async_seed_naive(hass: HomeAssistant) -> None:
    """Write 10,000 active sessions the way the naive design stores them."""
    now = time.time()
    sessions = {
        f"device-{n}": {
            "conversation_id": ulid_now(),
            "last_activity": now - n % 3000,
            "user_id": None,
            "device_id": f"device-{n}",
        }
        for n in range(SESSIONS)
    }
    store: Store[dict[str, Any]] = Store(hass, 1, STORAGE_KEY)
    await store.async_save({"sessions": sessions})


class FullCollections:
    """Record when the interpreter ran a full garbage collection while active."""

    def __init__(self) -> None:
        """Start with none seen."""
        self.spans: list[tuple[float, float]] = []
        self._started = 0.0

    @property
    def longest(self) -> float:
        """Return the longest full collection, in seconds."""
        return max((end - start for start, end in self.spans), default=0.0)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        """Time each collection of the oldest generation."""
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.spans.append((self._started, time.perf_counter()))

    def __enter__(self) -> FullCollections:
        """Start watching."""
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        """Stop watching."""
        gc.callbacks.remove(self._callback)


class Ticker:
    """Record the gaps between wake-ups of a task that asks to run every millisecond."""

    def __init__(self) -> None:
        """Start with no gap seen."""
        # (start, end) of each wake-up that came late, and how late it was.
        self.gaps: list[tuple[float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def max_gap(self) -> float:
        """Return the longest time the loop could not run the ticker, in seconds."""
        return max((late for _, _, late in self.gaps), default=0.0)

    def max_gap_outside(self, spans: list[tuple[float, float]]) -> float:
        """Return the longest gap once the time spent in `spans` is taken out of it."""
        return max(
            (
                late
                - sum(max(0.0, min(end, s_end) - max(start, s_start)) for s_start, s_end in spans)
                for start, end, late in self.gaps
            ),
            default=0.0,
        )

    async def _run(self) -> None:
        """Wake up every millisecond and record how late each wake-up was."""
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            # The sleep itself is 1 ms; the rest is time the loop could not run us.
            if (late := now - last - 0.001) > 0.001:
                self.gaps.append((last, now, late))
            last = now

    def __enter__(self) -> Ticker:
        """Start ticking."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        """Stop ticking."""
        assert self._task is not None
        self._task.cancel()


async def _async_measure(
    restore: Callable[[], Awaitable[Any]],
    release: Callable[[Any], Awaitable[None]],
    complete: Callable[[Any], Awaitable[None]] | None = None,
    sessions: int = SESSIONS,
    check: Callable[[Any], None] | None = None,
) -> Restore:
    """Time `restore` REPEATS times, then trace the memory one restore keeps.

    The best time is reported: a start-up happens once, and what other processes do to
    the machine meanwhile is not the restore's cost. `check` looks at what was restored
    after each measured window.
    """
    timings = []
    completions = []
    max_block = own_block = 0.0
    collections = FullCollections()
    for _ in range(REPEATS):
        gc.collect()
        await asyncio.sleep(0.01)  # let the ticker settle
        with Ticker() as ticker, collections:
            await asyncio.sleep(0.005)
            start = time.perf_counter()
            restored = await restore()
            timings.append((time.perf_counter() - start) * 1000)
            if complete is not None:
                await complete(restored)
            completions.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.005)
        max_block = max(max_block, ticker.max_gap * 1000)
        own_block = max(own_block, ticker.max_gap_outside(collections.spans) * 1000)
        if check is not None:
            check(restored)
        await release(restored)
        # Dropped before the next repeat's collection: a released tracker is cyclic
        # garbage, and collecting it inside the next repeat would be counted as its block.
        del restored
    gc.collect()
    objects_before = len(gc.get_objects())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        restored = await restore()
        if complete is not None:
            await complete(restored)
        # The loop still holds the finished load (the raw file data) until it runs on.
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    objects = len(gc.get_objects()) - objects_before
    await release(restored)
    return Restore(
        min(timings),
        kept / sessions,
        min(completions),
        max_block,
        objects / sessions,
        len(collections.spans),
        collections.longest * 1000,
        own_block,
    )


async def async_home_agent(
    hass: HomeAssistant, exchanges: int, sessions: int = SESSIONS
) -> Restore:
    """Restore Home Agent's sessions from real files: parse, index, re-arm every timer.

    The tracker is built here, as a set-up entry builds it, rather than through an entry:
    the row is the restore alone. An entry's set-up also adds a session sensor per key
    (row g: seconds for 10,000 keys, and their memory), five times over.
    """
    entry_id = f"bench_restore_{exchanges}"
    await _async_seed_home_agent(hass, entry_id, exchanges, sessions)

    async def restore() -> SessionTracker:
        tracker = SessionTracker(
            hass,
            entry_id,
            timeout=timedelta(hours=1),
            scope=SessionScope.DEVICE,
            max_turns=max(exchanges, 1),
        )
        await tracker.async_start()
        assert len(tracker.sessions) == sessions
        return tracker

    async def complete(tracker: SessionTracker) -> None:
        await tracker.async_transcripts_loaded()

    def check(tracker: SessionTracker) -> None:
        # Decoded here, outside the measured window: a session decodes its transcript when
        # its first turn (or diagnostics) needs it.
        assert all(len(s.transcript) == exchanges for s in tracker.sessions)

    async def release(tracker: SessionTracker) -> None:
        await tracker.async_shutdown()

    return await _async_measure(restore, release, complete, sessions, check)


async def async_naive(hass: HomeAssistant) -> Restore:
    """Restore the naive design's sessions from a real file (it has no timers to arm)."""
    await _async_seed_naive(hass)

    async def restore() -> ConversationSessionManager:
        manager = ConversationSessionManager(hass)
        await manager.async_load()
        assert len(manager.sessions) == SESSIONS
        return manager

    async def release(_manager: ConversationSessionManager) -> None:
        return

    return await _async_measure(restore, release)
