"""(b) Storage writes and bytes written for 1,000 turns spread over a simulated minute."""

from __future__ import annotations

import datetime as dt

from homeassistant.core import HomeAssistant
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.const import SAVE_DELAY
from custom_components.home_agent.data import HomeAgentConfigEntry

from .harness import (
    Clock,
    Writes,
    advance,
    async_agent_entry,
    counting_writes,
    home_assistant,
    simulated_clock,
)
from .naive import STORAGE_KEY, ConversationSessionManager, async_naive_turn, async_no_answer
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
    """Send the turns to a set-up agent a simulated 60 ms apart; let the last save happen.

    Each is a turn's session work (resolved, recorded) without asking a model: the files
    hold the same exchange each time.
    """
    entry: HomeAgentConfigEntry = await async_agent_entry(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    tracker = entry.runtime_data.tracker
    for n in range(TURNS):
        session = tracker.async_resolve(ulid_now(), device_id=f"device-{n % DEVICES}")
        tracker.async_record_turn(session, EXCHANGE)
        await advance(hass, clock, MINUTE / TURNS)
    # The last burst of changes is written one save delay later; that write counts too.
    await advance(hass, clock, SAVE_DELAY + 1)
    assert not tracker.store.save_pending
    assert len(tracker.sessions) == DEVICES
    assert await hass.config_entries.async_unload(entry.entry_id)


async def async_naive() -> Writes:
    """Count the naive design's writes for the same turns."""
    with simulated_clock(START) as clock, counting_writes(STORAGE_KEY) as writes:
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
