"""Thousands of stored sessions: set-up within bounds, one sensor per key, each expiry on time."""

from __future__ import annotations

from datetime import timedelta
import time

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Context, HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.home_agent.const import DOMAIN, EVENT_SESSION_EXPIRED

from .helpers import async_advance, sessions_of, setup_entry
from .storage_files import v1_record, write_v1

TIMEOUT = timedelta(hours=1)
SESSIONS = 3000
# Generous: about 2 s on a busy development machine; minutes would be a regression.
SETUP_BOUND_SECONDS = 60


def _active_sensors(hass: HomeAssistant) -> int:
    """Return how many session sensors show an active session."""
    return sum(1 for state in hass.states.async_all("sensor") if state.state == "active")


async def test_thousands_of_sessions_restore_with_sensors_and_expire_each_on_time(
    hass: HomeAssistant, config_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """3,000 stored sessions, one a second: each gets its sensor and ends at its own second.

    One is cleared first: its end is never announced as an expiry.
    """
    now = dt_util.utcnow()
    # Session n was last active n seconds ago, so it expires at now + 3600 s - n.
    write_v1(
        hass,
        config_entry.entry_id,
        [
            v1_record(
                f"conversation-{n}",
                f"device:device-{n}",
                (now - timedelta(seconds=n)).isoformat(),
                [["what time is it", "Ten past nine."]],
            )
            for n in range(SESSIONS)
        ],
    )
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)

    started = time.monotonic()
    await setup_entry(hass, config_entry)
    assert time.monotonic() - started < SETUP_BOUND_SECONDS
    assert len(sessions_of(config_entry)) == SESSIONS
    assert _active_sensors(hass) == SESSIONS
    await hass.services.async_call(
        DOMAIN,
        "clear_conversation",
        {"conversation_id": "conversation-2500"},
        blocking=True,
        context=Context(),
        return_response=True,
    )

    # Up to the expiry of session 2000: sessions 2999 down to 2000 end, no other.
    await async_advance(hass, freezer, TIMEOUT - timedelta(seconds=2000))
    assert sorted(int(e.data["conversation_id"].split("-")[1]) for e in expired) == [
        n for n in range(2000, SESSIONS) if n != 2500
    ]
    # Half a second before session 1999's end it is still there; at its end it is gone.
    await async_advance(hass, freezer, timedelta(seconds=0.5))
    assert len(expired) == 999
    await async_advance(hass, freezer, timedelta(seconds=0.5))
    assert expired[-1].data["conversation_id"] == "conversation-1999"
    assert len(expired) == 1000
    assert _active_sensors(hass) == 1999

    await async_advance(hass, freezer, timedelta(seconds=2000))
    ids = [e.data["conversation_id"] for e in expired]
    assert len(ids) == len(set(ids)) == SESSIONS - 1  # each session's end announced once
    assert sessions_of(config_entry) == []
    assert _active_sensors(hass) == 0
