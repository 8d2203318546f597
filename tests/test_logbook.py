"""Logbook lines for session events, described from events fired by real sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.recorder import Recorder
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent import logbook
from custom_components.home_agent.const import (
    CONF_SESSION_SCOPE,
    DOMAIN,
    EVENT_SESSION_CLEARED,
    EVENT_SESSION_EXPIRED,
    EVENT_SESSION_STARTED,
)

from .helpers import AGENT_ENTITY_ID, converse, make_device, setup_entry

KITCHEN = "sensor.home_agent_kitchen_satellite_conversation"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Recorder, enable_custom_integrations: None
) -> None:
    """Record events, as the logbook needs (the recorder must start before Home Assistant)."""


def describers(hass: HomeAssistant) -> dict[str, Callable[[Event], dict[str, Any]]]:
    """Collect what the logbook would call for each of our event types."""
    collected: dict[str, Callable[[Event], dict[str, Any]]] = {}

    def collect(domain: str, event_type: str, describe: Callable[[Event], Any]) -> None:
        assert domain == DOMAIN
        collected[event_type] = describe

    logbook.async_describe_events(hass, collect)
    return collected


def capture_all(hass: HomeAssistant) -> list[Event]:
    """Capture the three session events in the order they are fired."""
    fired: list[Event] = []

    @callback
    def capture(event: Event) -> None:
        fired.append(event)

    for event_type in (EVENT_SESSION_STARTED, EVENT_SESSION_EXPIRED, EVENT_SESSION_CLEARED):
        hass.bus.async_listen(event_type, capture)
    return fired


async def test_describes_a_devices_conversation_from_start_to_end(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Started, expired, cleared: by the device's name, on the device's session sensor."""
    describe = describers(hass)
    assert set(describe) == {EVENT_SESSION_STARTED, EVENT_SESSION_EXPIRED, EVENT_SESSION_CLEARED}
    fired = capture_all(hass)
    kitchen = make_device(hass, "Kitchen satellite")

    await converse(hass, device_id=kitchen)
    freezer.tick(timedelta(hours=1))
    async_fire_time_changed(hass)
    await converse(hass, device_id=kitchen)
    await hass.services.async_call(
        DOMAIN, "clear_conversation", {"device_id": kitchen}, blocking=True
    )
    await hass.async_block_till_done()

    assert [describe[event.event_type](event) for event in fired] == [
        {"name": "Kitchen satellite", "message": "conversation started", "entity_id": KITCHEN},
        {"name": "Kitchen satellite", "message": "conversation expired", "entity_id": KITCHEN},
        {"name": "Kitchen satellite", "message": "conversation started", "entity_id": KITCHEN},
        {"name": "Kitchen satellite", "message": "conversation cleared", "entity_id": KITCHEN},
    ]


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "device_user"}])
async def test_names_the_person_at_the_device(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Scope `device_user`: the line names both the device and the person."""
    describe = describers(hass)
    started = async_capture_events(hass, EVENT_SESSION_STARTED)
    dana = MockUser(name="Dana").add_to_hass(hass)

    await converse(hass, device_id=make_device(hass, "Kitchen satellite"), user_id=dana.id)
    await hass.async_block_till_done()

    assert describe[EVENT_SESSION_STARTED](started[0]) == {
        "name": "Kitchen satellite (Dana)",
        "message": "conversation started",
        "entity_id": "sensor.home_agent_kitchen_satellite_conversation_with_dana",
    }


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "none"}])
async def test_without_a_session_sensor_the_line_goes_to_the_agent(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Scope `none` has no per-key sensor: the device still names it, the agent holds it."""
    describe = describers(hass)
    started = async_capture_events(hass, EVENT_SESSION_STARTED)

    await converse(hass, device_id=make_device(hass, "Kitchen satellite"))
    await converse(hass)
    await hass.async_block_till_done()

    assert [describe[EVENT_SESSION_STARTED](event) for event in started] == [
        {
            "name": "Kitchen satellite",
            "message": "conversation started",
            "entity_id": AGENT_ENTITY_ID,
        },
        {"name": "Home Agent", "message": "conversation started", "entity_id": AGENT_ENTITY_ID},
    ]


async def test_the_logbook_shows_the_lines(
    hass: HomeAssistant, config_entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """Through Home Assistant's own logbook: what the Logbook page lists."""
    # The logbook needs the frontend, which the newest test lane does not install.
    pytest.importorskip("hass_frontend")
    assert await async_setup_component(hass, "logbook", {})
    await setup_entry(hass, config_entry)
    since = dt_util.utcnow() - timedelta(seconds=1)
    kitchen = make_device(hass, "Kitchen satellite")

    await converse(hass, device_id=kitchen)
    await hass.services.async_call(
        DOMAIN, "clear_conversation", {"device_id": kitchen}, blocking=True
    )
    await async_wait_recording_done(hass)
    client = await hass_client()
    response = await client.get(f"/api/logbook/{since.isoformat()}")

    assert response.status == 200
    lines = [
        {key: entry.get(key) for key in ("name", "message", "entity_id", "context_service")}
        for entry in await response.json()
        if entry.get("domain") == DOMAIN
    ]
    assert lines == [
        {
            "name": "Kitchen satellite",
            "message": "conversation started",
            "entity_id": KITCHEN,
            "context_service": None,
        },
        {
            "name": "Kitchen satellite",
            "message": "conversation cleared",
            "entity_id": KITCHEN,
            "context_service": "clear_conversation",
        },
    ]
