"""(c) Start-up restore of 10,000 sessions (load + timers re-armed), and memory per session."""

from __future__ import annotations

import asyncio
from collections import deque
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
    DOMAIN,
    STORAGE_MINOR_VERSION,
    STORAGE_VERSION,
    SessionScope,
)
from custom_components.home_agent.session import Session
from custom_components.home_agent.tracker import SessionTracker

from .naive import STORAGE_KEY, ConversationSessionManager
from .turns import EXCHANGE

SESSIONS = 10_000
# Transcript lengths measured: none (the tracker's own work) and full at the default
# history_max_turns (the most a default agent stores).
EXCHANGES = (0, 10)
REPEATS = 5


@dataclass(frozen=True, slots=True)
class Restore:
    """How long a restore took (the best of the repeats) and what it keeps in memory."""

    milliseconds: float
    bytes_per_session: float


async def _async_seed_home_agent(hass: HomeAssistant, entry_id: str, exchanges: int) -> None:
    """Write 10,000 active sessions the way Home Agent stores them."""
    now = dt_util.utcnow()
    records = []
    for n in range(SESSIONS):
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
            transcript=deque([EXCHANGE] * exchanges),
        )
        records.append(session.as_storage())
    store: Store[dict[str, Any]] = Store(
        hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}", minor_version=STORAGE_MINOR_VERSION
    )
    await store.async_save({"sessions": records})


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


async def _async_measure(
    restore: Callable[[], Awaitable[Any]], release: Callable[[Any], Awaitable[None]]
) -> Restore:
    """Time `restore` REPEATS times, then trace the memory one restore keeps.

    The best time is reported: a start-up happens once, and what other processes do to
    the machine meanwhile is not the restore's cost.
    """
    timings = []
    for _ in range(REPEATS):
        gc.collect()
        start = time.perf_counter()
        restored = await restore()
        timings.append((time.perf_counter() - start) * 1000)
        await release(restored)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        restored = await restore()
        # The loop still holds the finished load (the raw file data) until it runs on.
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    await release(restored)
    return Restore(min(timings), kept / SESSIONS)


async def async_home_agent(hass: HomeAssistant, exchanges: int) -> Restore:
    """Restore Home Agent's sessions from a real file: parse, index, re-arm every timer."""
    entry_id = f"bench_restore_{exchanges}"
    await _async_seed_home_agent(hass, entry_id, exchanges)

    async def restore() -> SessionTracker:
        tracker = SessionTracker(
            hass,
            entry_id,
            timeout=timedelta(hours=1),
            scope=SessionScope.DEVICE,
            max_turns=max(exchanges, 1),
        )
        await tracker.async_start()
        assert len(tracker.sessions) == SESSIONS
        return tracker

    async def release(tracker: SessionTracker) -> None:
        await tracker.async_shutdown()

    return await _async_measure(restore, release)


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
