"""The memory actions, called by real users and automations: the contract, the permission rule."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import icon, translation
from homeassistant.helpers.service import async_get_all_descriptions
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent import notebook as notebook_module
from custom_components.home_agent.const import DOMAIN

from ..helpers import setup_entry
from .household import (
    MEMORY_EVENTS,
    act,
    async_people,
    async_saved,
    listed,
    remember,
    stored,
)

COFFEE = "Bob takes his coffee black."
HEATER = "The guest room heater must never go above 20 degrees."
CARLA = "Carla visits on 14 June."


def all_events(hass: HomeAssistant) -> dict[str, list[Any]]:
    """Capture every memory event."""
    return {name: async_capture_events(hass, name) for name in MEMORY_EVENTS}


async def test_the_actions_answer_as_the_contract_says(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Remember → memory_id; list_memories → every field; forget → forgotten; events, no text."""
    people = await async_people(hass, Ada=None)
    events = all_events(hass)

    coffee = await remember(hass, COFFEE)
    carla = await remember(hass, CARLA, person=people["Ada"])
    memories = (await act(hass, "list_memories"))["memories"]
    forgotten = await act(hass, "forget", memory_id=coffee)

    assert [set(memory) for memory in memories] == [
        {"memory_id", "text", "person", "origin", "created_at", "updated_at"}
    ] * 2
    assert [(m["memory_id"], m["text"], m["person"], m["origin"]) for m in memories] == [
        (coffee, COFFEE, None, "action"),
        (carla, CARLA, "person.ada", "action"),
    ]
    assert memories[0]["created_at"] == memories[0]["updated_at"]
    assert forgotten == {"forgotten": 1}
    assert await listed(hass) == [CARLA]
    added = [e.data for e in events["home_agent_memory_added"]]
    assert added == [
        {"memory_id": coffee, "person": None, "origin": "action"},
        {"memory_id": carla, "person": "person.ada", "origin": "action"},
    ]
    assert [e.data for e in events["home_agent_memory_forgotten"]] == [
        {"memory_id": coffee, "person": None, "origin": "action"}
    ]
    # The same text again is the same note: nothing piles up.
    assert await remember(hass, f"  {CARLA.upper()} ", person=people["Ada"]) == carla
    assert len(events["home_agent_memory_added"]) == 2
    await async_saved(hass, freezer)
    assert COFFEE.encode() not in stored(hass)
    assert CARLA.encode() in stored(hass)


async def test_a_user_manages_the_households_notes_and_their_own_only(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Bob adds, lists and forgets household notes and his own; Ada's are out of his reach."""
    people = await async_people(hass, Ada=hass_admin_user, Bob=hass_read_only_user)
    bob = hass_read_only_user
    adas = await remember(hass, CARLA, hass_admin_user, person=people["Ada"])
    household = await remember(hass, HEATER, bob)
    own = await remember(hass, COFFEE, bob, person=people["Bob"])

    assert await listed(hass, bob) == [HEATER, COFFEE]
    assert await listed(hass, bob, person=people["Bob"]) == [COFFEE]
    assert await listed(hass, hass_admin_user) == [CARLA, HEATER, COFFEE]
    await async_saved(hass, freezer)
    before = stored(hass)
    events = all_events(hass)

    refused = [
        ("remember", {"text": "Ada likes tea.", "person": people["Ada"]}),
        ("list_memories", {"person": people["Ada"]}),
        ("forget", {"person": people["Ada"]}),
        ("forget", {}),
        ("forget", {"memory_id": adas}),
    ]
    for service, data in refused:
        with pytest.raises(ServiceValidationError) as err:
            await act(hass, service, bob, **data)
        assert err.value.translation_domain == DOMAIN
        expected = "memory_unknown_id" if "memory_id" in data else "memory_not_allowed"
        assert err.value.translation_key == expected, service

    await async_saved(hass, freezer)
    assert stored(hass) == before
    assert not any(events.values())
    assert await listed(hass, hass_admin_user) == [CARLA, HEATER, COFFEE]
    assert await act(hass, "forget", bob, memory_id=household) == {"forgotten": 1}
    assert await act(hass, "forget", bob, person=people["Bob"]) == {"forgotten": 1}
    assert await listed(hass, hass_admin_user) == [CARLA]
    assert own not in json.dumps(await act(hass, "list_memories"))


async def test_a_user_without_a_person_has_the_households_notes_only(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_read_only_user: MockUser
) -> None:
    """No person is theirs: a person's notes are refused, the household's are not."""
    people = await async_people(hass, Ada=None)
    await remember(hass, CARLA, person=people["Ada"])

    assert await listed(hass, hass_read_only_user) == []
    await remember(hass, HEATER, hass_read_only_user)
    assert await listed(hass, hass_read_only_user) == [HEATER]
    with pytest.raises(ServiceValidationError, match="Only an administrator"):
        await remember(hass, COFFEE, hass_read_only_user, person=people["Ada"])


@pytest.mark.parametrize(
    ("service", "data", "key"),
    [
        ("remember", {"text": "   "}, "memory_text_empty"),
        ("remember", {"text": "x" * 201}, "memory_text_too_long"),
        ("remember", {"text": COFFEE, "person": "person.nobody"}, "memory_unknown_person"),
        ("remember", {"text": COFFEE, "person": "light.kitchen"}, "memory_unknown_person"),
        ("list_memories", {"person": "person.nobody"}, "memory_unknown_person"),
        ("forget", {"person": "person.nobody"}, "memory_unknown_person"),
        ("forget", {"memory_id": "0123456789"}, "memory_unknown_id"),
    ],
)
async def test_bad_input_is_a_translated_error_that_changes_nothing(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    service: str,
    data: dict[str, Any],
    key: str,
) -> None:
    """Empty or too long text, an unknown person or id: refused, with a message."""
    hass.states.async_set("light.kitchen", "on")  # an entity, but no person
    await remember(hass, COFFEE)
    await async_saved(hass, freezer)
    before = stored(hass)

    with pytest.raises(ServiceValidationError) as err:
        await act(hass, service, **data)

    assert err.value.translation_key == key
    assert str(err.value)  # translated, not the key
    assert str(err.value) != key
    await async_saved(hass, freezer)
    assert stored(hass) == before
    assert await listed(hass) == [COFFEE]


async def test_without_an_agent_with_memory_the_actions_say_so(
    hass: HomeAssistant, config_entry: MockConfigEntry, agent_options: dict[str, Any]
) -> None:
    """Memory is off by default: the actions exist and explain why they cannot act."""
    hass.config_entries.async_update_entry(config_entry, options={})
    await setup_entry(hass, config_entry)

    for service, data in (("remember", {"text": COFFEE}), ("list_memories", {})):
        with pytest.raises(ServiceValidationError) as err:
            await act(hass, service, **data)
        assert err.value.translation_key == "memory_off"
    assert hass.states.get("sensor.home_agent_memories") is None


async def test_an_automation_forgets_everything(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """With no field, every note goes, the people's too, and leaves the disk."""
    people = await async_people(hass, Ada=None)
    for text in (COFFEE, HEATER):
        await remember(hass, text)
    await remember(hass, CARLA, person=people["Ada"])

    assert await act(hass, "forget") == {"forgotten": 3}

    assert await listed(hass) == []
    await async_saved(hass, freezer)
    for text in (COFFEE, HEATER, CARLA):
        assert text.encode() not in stored(hass)


async def test_a_scope_holds_500_notes(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The 501st household note is refused; a person's notes still have room."""
    people = await async_people(hass, Ada=None)
    for number in range(500):
        await remember(hass, f"Note number {number}.")

    with pytest.raises(ServiceValidationError) as err:
        await remember(hass, "One note too many.")
    assert err.value.translation_key == "memory_full"
    await remember(hass, "Ada's note still fits.", person=people["Ada"])
    assert len(await listed(hass)) == 501


async def test_the_notebook_holds_2000_notes_earlier_versions_go_first(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Full, the oldest earlier version makes room; with none a new note is refused."""
    notebook = setup_integration.runtime_data.notes.notebook
    milk, nuts = "Bob takes his coffee with milk.", "Dan is allergic to nuts."
    with patch.object(notebook_module, "MAX_NOTES", 4):
        coffee = await remember(hass, COFFEE)
        heater = await remember(hass, HEATER)
        await remember(hass, CARLA)
        origin = notebook.notes[coffee].origin
        notebook.async_add(milk, None, origin, rule=False, replaces=notebook.notes[coffee])
        assert coffee in notebook.notes  # kept as the earlier version
        await remember(hass, nuts)
        assert coffee not in notebook.notes  # it made room
        with pytest.raises(ServiceValidationError) as err:
            await remember(hass, "Eve is vegan.")
        assert err.value.translation_key == "memory_full"
        # An update still works: with no room, the note it replaces is not kept.
        warmer = "The guest room heater must never go above 21 degrees."
        notebook.async_add(warmer, None, origin, rule=True, replaces=notebook.notes[heater])

    assert await listed(hass) == [CARLA, milk, nuts, warmer]
    assert len(notebook.notes) == 4


async def test_the_actions_are_described_translated_and_have_icons(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Fields with selectors, names and descriptions in English, an icon each."""
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    strings = await translation.async_get_translations(hass, "en", "services", [DOMAIN])
    icons = (await icon.async_get_icons(hass, "services", [DOMAIN]))[DOMAIN]
    for service, fields in (
        ("remember", {"text", "person"}),
        ("forget", {"memory_id", "person"}),
        ("list_memories", {"person"}),
    ):
        assert set(descriptions[service]["fields"]) == fields
        prefix = f"component.{DOMAIN}.services.{service}"
        assert strings[f"{prefix}.name"]
        for name in fields:
            assert strings[f"{prefix}.fields.{name}.description"]
        assert icons[service]["service"].startswith("mdi:")
    assert descriptions["remember"]["fields"]["text"]["required"] is True


async def test_list_memories_needs_a_response(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
) -> None:
    """Called from the frontend by a user: the household's notes come back; no response, no call."""
    await remember(hass, HEATER)
    client = await hass_ws_client(hass, hass_read_only_access_token)

    for return_response in (True, False):
        await client.send_json_auto_id(
            {
                "type": "call_service",
                "domain": DOMAIN,
                "service": "list_memories",
                "service_data": {},
                "return_response": return_response,
            }
        )
        message = await client.receive_json()
        if return_response:
            assert message["success"], message
            assert [m["text"] for m in message["result"]["response"]["memories"]] == [HEATER]
        else:
            assert not message["success"]
