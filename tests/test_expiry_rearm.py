"""Expiry stays exact while turns keep the armed timer instead of re-arming it each time."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.home_agent.const import EVENT_SESSION_EXPIRED

from .helpers import async_advance, converse, make_device, sessions_of

TIMEOUT = timedelta(seconds=3600)


async def test_session_outlives_the_expiry_its_first_turn_set(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Passing the first turn's expiry ends nothing; the last turn's expiry ends it, once."""
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    await async_advance(hass, freezer, timedelta(minutes=50))
    await converse(hass, device_id=make_device(hass, "dev-a"))
    last_turn = dt_util.utcnow()

    await async_advance(hass, freezer, timedelta(minutes=10))  # the first turn's expiry
    await async_advance(hass, freezer, TIMEOUT - timedelta(minutes=10, seconds=1))
    assert expired == []

    await async_advance(hass, freezer, timedelta(seconds=1))
    assert len(expired) == 1
    assert expired[0].data["conversation_id"] == first.conversation_id
    assert expired[0].data["expires_at"] == (last_turn + TIMEOUT).isoformat()
    await async_advance(hass, freezer, TIMEOUT * 2)
    assert len(expired) == 1
    assert sessions_of(setup_integration) == []


async def test_clock_stepped_back_still_ends_the_session_on_time(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """After the clock is stepped back, a turn's new (earlier) expiry is the one that counts."""
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    freezer.move_to(dt_util.utcnow() - timedelta(minutes=30))
    await converse(hass, device_id=make_device(hass, "dev-a"))

    await async_advance(hass, freezer, TIMEOUT - timedelta(seconds=1))
    assert expired == []
    await async_advance(hass, freezer, timedelta(seconds=1))
    assert [event.data["conversation_id"] for event in expired] == [first.conversation_id]
    assert sessions_of(setup_integration) == []
