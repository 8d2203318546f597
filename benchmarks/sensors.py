"""(g) Session sensors at scale: set-up of an agent whose stored sessions have thousands of keys.

Each key (a satellite, device or person) has its own session sensor. The time is from
`async_setup` of the config entry until every sensor is in the state machine; a second
set-up (a reload) also finds each key's sensor in the entity registry. The largest
event-loop block is taken during each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
import time

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.session import Session

from .harness import async_agent_entry, async_store_sessions
from .restore import FullCollections, Ticker

# The second is the most session sensors an agent shows (sensor.MAX_KEY_SENSORS).
KEYS = (1_000, 5_000)


@dataclass(frozen=True, slots=True)
class SensorSetup:
    """How long the first set-up and a reload took until every key's sensor existed."""

    first_seconds: float
    reload_seconds: float
    # The longest the event loop was blocked during each.
    first_block_milliseconds: float
    reload_block_milliseconds: float
    # The same once the interpreter's full garbage collections are taken out.
    first_own_block_milliseconds: float
    reload_own_block_milliseconds: float


async def _async_seed(hass: HomeAssistant, entry_id: str, keys: int) -> None:
    """Store one active session (no transcript) per key, as Home Agent writes them."""
    now = dt_util.utcnow()
    sessions = [
        Session(
            conversation_id=ulid_now(),
            session_key=f"device:device-{n}",
            device_id=f"device-{n}",
            satellite_id=None,
            user_id=None,
            started_at=now,
            last_activity=now,
            expires_at=now + timedelta(hours=1),
            max_turns=10,
        )
        for n in range(keys)
    ]
    await async_store_sessions(hass, entry_id, sessions)


async def async_home_agent(hass: HomeAssistant, keys: int) -> SensorSetup:
    """Set up an agent with `keys` stored sessions; reload it; time both."""
    entry = await async_agent_entry(hass)
    await _async_seed(hass, entry.entry_id, keys)
    before = len(hass.states.async_entity_ids("sensor"))
    with Ticker() as setup_ticker, FullCollections() as setup_collections:
        await asyncio.sleep(0.005)
        start = time.perf_counter()
        assert await hass.config_entries.async_setup(entry.entry_id)
        # The count sensor and the turn metrics come with the keys' sensors.
        await hass.async_block_till_done()
        total = len(hass.states.async_entity_ids("sensor"))
        assert total - before >= keys, (total, before, keys)
        first = time.perf_counter() - start
    with Ticker() as reload_ticker, FullCollections() as reload_collections:
        await asyncio.sleep(0.005)
        start = time.perf_counter()
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        assert len(hass.states.async_entity_ids("sensor")) == total
        reload = time.perf_counter() - start
    return SensorSetup(
        first,
        reload,
        setup_ticker.max_gap * 1000,
        reload_ticker.max_gap * 1000,
        setup_ticker.max_gap_outside(setup_collections.spans) * 1000,
        reload_ticker.max_gap_outside(reload_collections.spans) * 1000,
    )
