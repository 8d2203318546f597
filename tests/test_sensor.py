"""Session sensors as a dashboard shows them: counts, per-key state, names, restarts."""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import (
    device_registry as dr,
    entity_registry as er,
    icon,
    translation,
)
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    mock_restore_cache,
)

from custom_components.home_agent.const import CONF_SESSION_SCOPE, DOMAIN

from .helpers import (
    SUMMARY_KEYS,
    async_advance,
    converse,
    make_device,
    session_of,
    setup_entry,
    start_session,
)
from .storage_files import v1_record, write_v1

COUNT = "sensor.home_agent_active_conversations"
KITCHEN = "sensor.home_agent_kitchen_satellite_conversation"
SESSION_ATTRIBUTES = {"turns", "started_at", "last_activity", "expires_at"}
TIMEOUT = timedelta(hours=1)
# Understood by the built-in agent, so the turn is remembered in the transcript.
SAID = "what is the date today"


def details(entity_id: str, hass: HomeAssistant) -> dict[str, Any]:
    """Return the session details a key's sensor shows."""
    state = hass.states.get(entity_id)
    assert state is not None
    return {name: state.attributes.get(name) for name in SESSION_ATTRIBUTES}


async def test_count_sensor_lists_sessions_without_what_was_said(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The count is the number of active sessions; each has a summary, no transcript or id."""
    assert hass.states.get(COUNT).state == "0"
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text=SAID, device_id=kitchen)
    await converse(hass, text=SAID, device_id=kitchen)
    await converse(hass, text=SAID, device_id=make_device(hass, "Bedroom satellite"))
    await hass.async_block_till_done()

    state = hass.states.get(COUNT)
    assert state.state == "2"
    assert state.attributes["state_class"] == "measurement"
    assert state.attributes["friendly_name"] == "Home Agent Active conversations"
    sessions = state.attributes["sessions"]
    listed = (SUMMARY_KEYS - {"conversation_id", "user_id", "session_key"}) | {"belongs_to"}
    assert [set(summary) for summary in sessions] == [listed, listed]
    kitchen_summary = next(s for s in sessions if s["device_id"] == kitchen)
    assert first.conversation_id not in json.dumps(state.attributes)
    assert kitchen_summary["turns"] == 2
    assert kitchen_summary["belongs_to"] == "Kitchen satellite"
    assert session_of(setup_integration, first.conversation_id).transcript
    assert "date" not in json.dumps(state.attributes)
    assert "date" not in json.dumps(hass.states.get(KITCHEN).attributes)


async def test_session_sensor_appears_with_the_first_session_of_a_device(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Named after the device, on the agent's device, active with the session's details."""
    kitchen = make_device(hass, "Kitchen satellite")
    assert hass.states.get(KITCHEN) is None

    result = await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    state = hass.states.get(KITCHEN)
    assert state.state == "active"
    assert state.attributes["friendly_name"] == "Home Agent Kitchen satellite conversation"
    assert state.attributes["device_class"] == "enum"
    assert state.attributes["options"] == ["active", "idle"]
    session = session_of(setup_integration, result.conversation_id)
    assert details(KITCHEN, hass) == {
        "turns": 1,
        "started_at": session.started_at.isoformat(),
        "last_activity": session.last_activity.isoformat(),
        "expires_at": session.expires_at.isoformat(),
    }
    registry_entry = entity_registry.async_get(KITCHEN)
    assert registry_entry.unique_id == f"{setup_integration.entry_id}_device:{kitchen}"
    assert registry_entry.translation_key == "session"
    agent_device = device_registry.async_get(registry_entry.device_id)
    assert agent_device.identifiers == {(DOMAIN, setup_integration.entry_id)}
    assert entity_registry.async_get(COUNT).device_id == agent_device.id

    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()
    assert details(KITCHEN, hass)["turns"] == 2
    assert len(conversation_sensors(hass)) == 2


async def test_session_sensor_uses_the_name_the_user_gave_the_device(
    hass: HomeAssistant, setup_integration: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """A device renamed in Home Assistant names its sensor by the new name."""
    kitchen = make_device(hass, "ESP32 voice 3a9f1c")
    device_registry.async_update_device(kitchen, name_by_user="Kitchen satellite")

    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    assert hass.states.get(KITCHEN).state == "active"


async def test_session_sensor_goes_idle_on_expiry_and_keeps_the_last_details(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Idle after the timeout, still showing the ended session; active again on the next turn."""
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()
    before = details(KITCHEN, hass)

    await async_advance(hass, freezer, TIMEOUT)

    assert hass.states.get(KITCHEN).state == "idle"
    assert details(KITCHEN, hass) == before
    assert hass.states.get(COUNT).state == "0"
    assert hass.states.get(COUNT).attributes["sessions"] == []

    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN).state == "active"
    assert details(KITCHEN, hass)["turns"] == 1
    assert details(KITCHEN, hass)["started_at"] == dt_util.utcnow().isoformat()


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "user"}])
async def test_person_session_sensor_is_named_after_the_person(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    """Scope `user`: the person's name, or the account's name when there is no person."""
    assert await async_setup_component(
        hass, "person", {"person": [{"id": "anna", "name": "Anna", "user_id": hass_admin_user.id}]}
    )
    bob = MockUser(name="Bob").add_to_hass(hass)

    await converse(hass, user_id=hass_admin_user.id, device_id=make_device(hass, "Kitchen"))
    await converse(hass, user_id=bob.id)
    await hass.async_block_till_done()

    anna = hass.states.get("sensor.home_agent_anna_conversation")
    assert anna.state == "active"
    assert anna.attributes["friendly_name"] == "Home Agent Anna conversation"
    assert hass.states.get("sensor.home_agent_bob_conversation").state == "active"


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "device_user"}])
async def test_device_and_person_session_sensor_names_both(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Scope `device_user`: one sensor per person at each device."""
    carla = MockUser(name="Carla").add_to_hass(hass)
    kitchen = make_device(hass, "Kitchen satellite")

    await converse(hass, user_id=carla.id, device_id=kitchen)
    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    both = hass.states.get("sensor.home_agent_kitchen_satellite_conversation_with_carla")
    assert both.state == "active"
    assert (
        both.attributes["friendly_name"] == "Home Agent Kitchen satellite conversation with Carla"
    )
    assert hass.states.get(KITCHEN).state == "active"


async def test_satellite_session_sensor_is_named_after_the_satellite(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A satellite without a device (only an entity) names its sensor by the entity."""
    hass.states.async_set("assist_satellite.porch", "idle", {"friendly_name": "Porch speaker"})

    start_session(setup_integration, satellite_id="assist_satellite.porch")
    await hass.async_block_till_done()

    assert hass.states.get("sensor.home_agent_porch_speaker_conversation").state == "active"


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "none"}])
async def test_scope_none_sessions_are_only_counted(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Every interaction starts fresh, so no device keeps a session sensor."""
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    assert conversation_sensors(hass) == [COUNT]
    assert hass.states.get(COUNT).state == "2"


async def test_session_sensors_survive_a_reload(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """After a reload an idle key keeps its sensor and last details; an active one stays active."""
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    await async_advance(hass, freezer, TIMEOUT)
    await converse(hass, device_id=make_device(hass, "Bedroom satellite"))
    await hass.async_block_till_done()
    kitchen_before = details(KITCHEN, hass)
    bedroom_before = details("sensor.home_agent_bedroom_satellite_conversation", hass)

    assert await hass.config_entries.async_reload(setup_integration.entry_id)
    await hass.async_block_till_done()

    assert hass.states.get(KITCHEN).state == "idle"
    assert details(KITCHEN, hass) == kitchen_before
    bedroom = "sensor.home_agent_bedroom_satellite_conversation"
    assert hass.states.get(bedroom).state == "active"
    assert details(bedroom, hass) == bedroom_before
    assert hass.states.get(COUNT).state == "1"


async def test_session_sensors_come_back_after_a_restart(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
) -> None:
    """A fresh start: sensors from the registry, idle ones with their saved details."""
    kitchen = make_device(hass, "Kitchen satellite")
    bedroom = make_device(hass, "Bedroom satellite")
    for device_id, object_id in ((kitchen, "kitchen"), (bedroom, "bedroom")):
        entity_registry.async_get_or_create(
            "sensor",
            DOMAIN,
            f"{config_entry.entry_id}_device:{device_id}",
            config_entry=config_entry,
            suggested_object_id=f"home_agent_{object_id}_satellite_conversation",
        )
    saved = {
        "turns": 4,
        "started_at": "2025-05-01T10:00:00+00:00",
        "last_activity": "2025-05-01T10:05:00+00:00",
        "expires_at": "2025-05-01T11:05:00+00:00",
    }
    mock_restore_cache(hass, [State(KITCHEN, "active", saved)])
    now = dt_util.utcnow().isoformat()
    write_v1(
        hass,
        config_entry.entry_id,
        [v1_record("01JBEDROOMSESSION000000000", f"device:{bedroom}", now, [["a", "b"]] * 2)],
    )

    await setup_entry(hass, config_entry)

    assert hass.states.get(KITCHEN).state == "idle"
    assert details(KITCHEN, hass) == saved
    assert hass.states.get(KITCHEN).attributes["friendly_name"] == (
        "Home Agent Kitchen satellite conversation"
    )
    bedroom_state = hass.states.get("sensor.home_agent_bedroom_satellite_conversation")
    assert bedroom_state.state == "active"
    assert bedroom_state.attributes["turns"] == 2
    assert hass.states.get(COUNT).state == "1"


async def test_a_burst_of_expiries_updates_the_count_once(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Fifty sessions ending in the same second: one count change, fifty idle sensors."""
    for n in range(50):
        start_session(setup_integration, device_id=make_device(hass, f"Satellite {n}"))
    await hass.async_block_till_done()
    assert hass.states.get(COUNT).state == "50"
    count_changes: list[str] = []
    hass.bus.async_listen(
        EVENT_STATE_CHANGED,
        lambda event: (
            count_changes.append(event.data["new_state"].state)
            if event.data["entity_id"] == COUNT
            else None
        ),
    )

    await async_advance(hass, freezer, TIMEOUT)

    assert count_changes == ["0"]
    states = [hass.states.get(f"sensor.home_agent_satellite_{n}_conversation") for n in range(50)]
    assert {state.state for state in states} == {"idle"}


async def test_states_names_and_icons_are_translated(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The frontend finds the state names and the icons for each state."""
    translations = await translation.async_get_translations(hass, "en", "entity", [DOMAIN])
    icons = await icon.async_get_icons(hass, "entity", [DOMAIN])

    prefix = f"component.{DOMAIN}.entity.sensor"
    for key in ("session", "device_user_session"):
        assert translations[f"{prefix}.{key}.state.active"] == "Active"
        assert translations[f"{prefix}.{key}.state.idle"] == "Idle"
        assert icons[DOMAIN]["sensor"][key]["state"]["idle"] == "mdi:account-voice-off"
    assert translations[f"{prefix}.active_sessions.name"] == "Active conversations"
    assert icons[DOMAIN]["sensor"]["active_sessions"]["default"] == "mdi:forum"


def conversation_sensors(hass: HomeAssistant) -> list[str]:
    """Return the agent's conversation sensors (not the metrics of its last turn)."""
    return [
        entity_id
        for entity_id in hass.states.async_entity_ids("sensor")
        if entity_id.endswith(("_conversation", "_conversations"))
    ]


async def test_session_sensors_stop_at_their_cap_and_the_count_goes_on(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the most sensors an agent shows, a new satellite gets none; it is still counted."""
    monkeypatch.setattr("custom_components.home_agent.sensor.MAX_KEY_SENSORS", 2)
    for name in ("Kitchen satellite", "Bedroom satellite", "Porch satellite", "Attic satellite"):
        await converse(hass, device_id=make_device(hass, name))
    await hass.async_block_till_done()

    assert hass.states.get(KITCHEN) is not None
    assert hass.states.get("sensor.home_agent_bedroom_satellite_conversation") is not None
    assert hass.states.get("sensor.home_agent_porch_satellite_conversation") is None
    assert hass.states.get("sensor.home_agent_attic_satellite_conversation") is None
    assert hass.states.get(COUNT).state == "4"
    assert caplog.text.count("shows session sensors for 2 satellites") == 1
