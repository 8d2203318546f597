"""(b) Storage writes and bytes written for 1,000 turns spread over a simulated minute."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

from homeassistant.core import HomeAssistant
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.const import SAVE_DELAY, SessionScope
from custom_components.home_agent.tracker import SessionTracker

from .harness import Clock, Writes, advance, counting_writes, home_assistant, simulated_clock
from .naive import ConversationSessionManager, async_naive_turn, async_no_answer
from .turns import EXCHANGE

TURNS = 1000
DEVICES = 100
MINUTE = 60.0
START = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def writes_allowed() -> int:
    """Return the most writes a minute of turns may cause: one per save delay, plus the last."""
    return int(MINUTE // SAVE_DELAY) + 1


async def async_home_agent() -> Writes:
    """Count Home Agent's writes for 1,000 turns from 100 devices, until all is on disk."""
    with simulated_clock(START) as clock, counting_writes() as writes:
        async with home_assistant() as hass:
            await _async_home_agent_turns(hass, clock)
    return writes


async def _async_home_agent_turns(hass: HomeAssistant, clock: Clock) -> None:
    """Send the turns to a tracker a simulated 60 ms apart, then let the last save happen."""
    tracker = SessionTracker(
        hass,
        "bench_writes",
        timeout=timedelta(hours=1),
        scope=SessionScope.DEVICE,
        max_turns=10,
    )
    await tracker.async_start()
    for n in range(TURNS):
        session = tracker.async_resolve(ulid_now(), device_id=f"device-{n % DEVICES}")
        tracker.async_record_turn(session, EXCHANGE)
        await advance(hass, clock, MINUTE / TURNS)
    # The last burst of changes is written one save delay later; that write counts too.
    await advance(hass, clock, SAVE_DELAY + 1)
    assert not tracker.store.save_pending
    assert len(tracker.sessions) == DEVICES
    await tracker.async_shutdown()


async def async_naive() -> Writes:
    """Count the naive design's writes for the same turns."""
    with simulated_clock(START) as clock, counting_writes() as writes:
        async with home_assistant() as hass:
            await _async_naive_turns(hass, clock)
    return writes


async def _async_naive_turns(hass: HomeAssistant, clock: Clock) -> None:
    """Send the turns to the naive manager a simulated 60 ms apart."""
    manager = ConversationSessionManager(hass)
    for n in range(TURNS):
        await async_naive_turn(manager, async_no_answer, device_id=f"device-{n % DEVICES}")
        await advance(hass, clock, MINUTE / TURNS)
    await advance(hass, clock, SAVE_DELAY + 1)
    assert len(manager.sessions) == DEVICES
