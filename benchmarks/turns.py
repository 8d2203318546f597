"""(a) Session overhead per turn: resolve, activity, timer re-arm, event, save scheduling."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import gc
import random
import time

from homeassistant.core import HomeAssistant
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.const import SessionScope
from custom_components.home_agent.session import Exchange
from custom_components.home_agent.tracker import SessionTracker

from .harness import Spread
from .naive import ConversationSessionManager, async_naive_turn, async_no_answer

EXCHANGE = Exchange("turn on the living room lights", "The living room lights are on.")
WARM_UP = 200


def _devices(sessions: int, turns: int) -> list[str]:
    """Return the device each turn comes from: any active session, at random."""
    pick = random.Random(sessions).randrange
    return [f"device-{pick(sessions)}" for _ in range(turns)]


async def async_home_agent(hass: HomeAssistant, sessions: int, turns: int) -> Spread:
    """Time one turn's session work in Home Agent's tracker with `sessions` active.

    Each turn arrives with a conversation id the tracker has never seen (a satellite
    after Home Assistant's own 5-minute session lapsed), so it is resolved by its
    device key (rule 2), then recorded: both re-arm the expiry timer and schedule a save.

    The tracker is built here, as a set-up entry builds it, rather than taken from an
    entry: the row is the tracker alone. An entry's key sensors write their state on each
    change (that is row d's), about ten times the tracker's own work per turn.
    """
    tracker = SessionTracker(
        hass,
        f"bench_turns_{sessions}",
        timeout=timedelta(hours=1),
        scope=SessionScope.DEVICE,
        max_turns=10,
    )
    await tracker.async_start()
    for n in range(sessions):
        tracker.async_record_turn(tracker.async_resolve(None, device_id=f"device-{n}"), EXCHANGE)
    devices = _devices(sessions, WARM_UP + turns)
    ids = [ulid_now() for _ in devices]
    await asyncio.sleep(0)
    gc.collect()
    timings: list[int] = []
    for conversation_id, device_id in zip(ids, devices, strict=True):
        start = time.perf_counter_ns()
        session = tracker.async_resolve(conversation_id, device_id=device_id)
        tracker.async_record_turn(session, EXCHANGE)
        timings.append(time.perf_counter_ns() - start)
        # Turns arrive in separate loop iterations; let the loop run between them.
        await asyncio.sleep(0)
    assert len(tracker.sessions) == sessions
    await tracker.async_shutdown()
    return Spread.of(timings[WARM_UP:])


async def async_naive(hass: HomeAssistant, sessions: int, turns: int, budget: float) -> Spread:
    """Time one turn's session work in the naive design (it waits for its save each turn)."""
    manager = ConversationSessionManager(hass)
    for n in range(sessions):
        manager.sessions[f"device-{n}"] = {
            "conversation_id": ulid_now(),
            "last_activity": time.time(),
            "user_id": None,
            "device_id": f"device-{n}",
        }
    await manager.async_save()
    devices = _devices(sessions, WARM_UP // 10 + turns)
    gc.collect()
    timings: list[int] = []
    deadline = time.monotonic() + budget
    for device_id in devices:
        start = time.perf_counter_ns()
        await async_naive_turn(manager, async_no_answer, device_id=device_id)
        timings.append(time.perf_counter_ns() - start)
        if time.monotonic() > deadline and len(timings) >= WARM_UP // 10 + 100:
            break
    assert len(manager.sessions) == sessions
    return Spread.of(timings[WARM_UP // 10 :])
