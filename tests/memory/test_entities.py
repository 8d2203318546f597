"""What the household's notes show outside the conversation: a count, diagnostics, events."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from homeassistant.helpers import icon, translation
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent.const import DOMAIN

from .household import act, async_people, remember

SENSOR = "sensor.home_agent_memories"
SECRETLY = "Ada hides the spare key under the blue flower pot."
COFFEE = "Bob takes his coffee black."


async def test_the_sensor_counts_the_notes_and_never_shows_them(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The count follows every change at once; attributes have counts only."""
    people = await async_people(hass, Ada=None)
    assert hass.states.get(SENSOR).state == "0"

    await remember(hass, COFFEE)
    adas = await remember(hass, SECRETLY, person=people["Ada"])
    state = hass.states.get(SENSOR)
    assert state.state == "2"
    assert state.attributes["household"] == 1
    assert state.attributes["personal"] == 1
    await act(hass, "forget", memory_id=adas)

    assert hass.states.get(SENSOR).state == "1"
    everything = json.dumps([s.as_dict() for s in hass.states.async_all()], default=str)
    assert "spare key" not in everything
    assert "coffee" not in everything
    assert "person.ada" not in json.dumps(dict(hass.states.get(SENSOR).attributes))


async def test_the_sensor_is_named_translated_and_has_an_icon(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Shown as "Memories" on the agent's device."""
    translations = await translation.async_get_translations(hass, "en", "entity", [DOMAIN])
    icons = await icon.async_get_icons(hass, "entity", [DOMAIN])

    assert translations[f"component.{DOMAIN}.entity.sensor.memories.name"] == "Memories"
    assert icons[DOMAIN]["sensor"]["memories"]["default"].startswith("mdi:")
    assert hass.states.get(SENSOR).attributes["friendly_name"] == "Home Agent Memories"


async def test_diagnostics_count_the_notes_without_a_word_of_them(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_admin_user: MockUser,
) -> None:
    """How many notes, of which kind and origin; no text, no person, no id."""
    people = await async_people(hass, Ada=hass_admin_user)
    coffee = await remember(hass, COFFEE)
    await remember(hass, SECRETLY, person=people["Ada"])
    await remember(hass, "The guest room heater must never go above 20 degrees.")

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, setup_integration)

    memory = diagnostics["memory"]
    assert memory["notes"] == 3
    assert memory["household_notes"] == 2
    assert memory["rules"] == 1
    assert memory["by_origin"] == {"action": 3}
    text = json.dumps(diagnostics)
    for secret in ("spare key", "coffee", "heater", "person.ada", coffee):
        assert secret not in text
