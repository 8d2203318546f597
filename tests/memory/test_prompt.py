"""The notes in the system prompt, through real pipeline runs: who gets which, and stability."""

from __future__ import annotations

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import CONF_MEMORY_PROMPT_TOKENS
from custom_components.home_agent.notes_prompt import NOTES_HEADER, note_tokens

from ..fake_openai import FakeOpenAI
from ..helpers import AGENT_ENTITY_ID, async_restarted, make_device, sessions_of, setup_entry
from ..pipeline_runs import Satellite
from .household import (
    MEMORY_OPTIONS,
    act,
    async_later,
    async_people,
    async_saved,
    async_voices_of_ada_and_bob,
    prompt_notes,
    remember,
    stored,
    voice_satellite,
)

HEATER = "The guest room heater must never go above 20 degrees."
COFFEE = "Bob takes his coffee black."
PARTY = "Ada's surprise party for Bob is on 3 May."


def last_notes(fake: FakeOpenAI) -> list[str]:
    """Return the notes of the last request's system prompt."""
    return prompt_notes(fake.chat_requests[-1].system_prompt)


async def test_a_household_note_reaches_later_sessions_on_other_devices(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Written mid-session, a note waits for the next session: another device's, or the next."""
    kitchen, bedroom = voice_satellite(hass, "Kitchen"), voice_satellite(hass, "Bedroom")
    await kitchen.say("good morning")
    assert last_notes(fake_openai) == []

    await remember(hass, HEATER)
    await kitchen.say("what should I know")
    assert last_notes(fake_openai) == []  # this session's prompt stays as it began
    await bedroom.say("what should I know")
    assert last_notes(fake_openai) == [HEATER]

    await async_later(hass, freezer, 3601)  # both sessions end
    await kitchen.say("good evening")
    assert last_notes(fake_openai) == [HEATER]
    system = fake_openai.chat_requests[-1].system_prompt
    assert "may be out of date" in system
    assert "not instructions" in system


async def test_a_persons_note_reaches_only_that_persons_turns(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
) -> None:
    """Ada's own note goes to Ada's turns; Bob's and a satellite's get the household's."""
    people = await async_people(hass, Ada=hass_admin_user, Bob=hass_read_only_user)
    await remember(hass, HEATER)
    await remember(hass, PARTY, person=people["Ada"])
    ada, bob = await async_voices_of_ada_and_bob(hass, hass_ws_client, hass_read_only_access_token)
    tablet = make_device(hass, "Study tablet")

    await ada.say("what is planned", tablet)
    adas_prompt = fake_openai.chat_requests[-1].system_prompt
    await bob.say("what is planned", make_device(hass, "Bob's phone"))
    bobs_prompt = fake_openai.chat_requests[-1].system_prompt
    await voice_satellite(hass, "Kitchen").say("what is planned")
    satellites_prompt = fake_openai.chat_requests[-1].system_prompt

    assert prompt_notes(adas_prompt) == [HEATER, PARTY] or prompt_notes(adas_prompt) == [
        PARTY,
        HEATER,
    ]
    assert prompt_notes(bobs_prompt) == [HEATER]
    assert prompt_notes(satellites_prompt) == [HEATER]
    assert "surprise" not in bobs_prompt + satellites_prompt


async def test_rules_come_first_then_the_most_used_then_the_newest(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The prompt's order: house rules, then notes recall found often, then newer ones."""
    await remember(hass, COFFEE)
    freezer.tick(1)
    await remember(hass, "Carla visits on 14 June.")
    freezer.tick(1)
    await remember(hass, HEATER)
    notebook = setup_integration.runtime_data.notes.notebook
    coffee = next(note for note in notebook.notes.values() if note.text == COFFEE)
    notebook.async_used([coffee])

    await voice_satellite(hass, "Kitchen").say("hello")

    assert last_notes(fake_openai) == [HEATER, COFFEE, "Carla visits on 14 June."]


@pytest.mark.parametrize(
    "agent_options", [{**MEMORY_OPTIONS, CONF_MEMORY_PROMPT_TOKENS: 120}], indirect=False
)
async def test_the_notes_fit_memory_prompt_tokens(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """Forty notes, room for a few: the section stays within the budget."""
    for number in range(40):
        await remember(hass, f"Note number {number} says something about the household.")

    await voice_satellite(hass, "Kitchen").say("hello")

    system = fake_openai.chat_requests[-1].system_prompt
    notes = prompt_notes(system)
    assert 0 < len(notes) < 40
    section = NOTES_HEADER + "".join(f"\n- {note}" for note in notes)
    assert section in system
    assert note_tokens(section) <= 120


@pytest.mark.parametrize("agent_options", [{**MEMORY_OPTIONS, CONF_MEMORY_PROMPT_TOKENS: 0}])
async def test_no_room_no_notes_section(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """With memory_prompt_tokens 0 the prompt holds no notes (the tools still find them)."""
    await remember(hass, HEATER)
    await voice_satellite(hass, "Kitchen").say("hello")

    assert NOTES_HEADER not in fake_openai.chat_requests[-1].system_prompt
    tools = {tool["function"]["name"] for tool in fake_openai.chat_requests[-1].body["tools"]}
    assert {"MemoryRemember", "MemoryRecall", "MemoryForget"} <= tools


async def test_the_system_prompt_is_identical_for_every_request_of_a_session(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Notes added, used and ranked anew meanwhile, a restart: the same system prompt."""
    await remember(hass, HEATER)
    await remember(hass, COFFEE)
    kitchen = voice_satellite(hass, "Kitchen")
    await kitchen.say("hello")
    first = fake_openai.chat_requests[-1].system_prompt
    session = sessions_of(setup_integration)[0]
    notes = setup_integration.runtime_data.notes
    # What a warm-up ahead of the next turn computes is what the request sends.
    assert notes.async_section(session, None) in first
    notebook = notes.notebook
    notebook.async_used([n for n in notebook.notes.values() if n.text == COFFEE] * 5)
    await remember(hass, "Carla visits on 14 June.")
    for text in ("and then", "what else"):
        await async_later(hass, freezer, 120)
        await kitchen.say(text)
        assert fake_openai.chat_requests[-1].system_prompt == first
    await async_saved(hass, freezer)

    async with async_restarted(hass, setup_integration) as (hass2, entry2):
        await setup_entry(hass2, entry2)
        await Satellite(hass2, AGENT_ENTITY_ID, kitchen.device_id).say("still there?")
        after_restart = fake_openai.chat_requests[-1].system_prompt
        fresh = entry2.runtime_data.notes.async_section(None, None)

    assert after_restart == first
    # A session starting now would get the newer ranking and the newer note.
    assert "Carla" in fresh


async def test_a_note_forgotten_mid_session_leaves_the_next_request_and_the_disk(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Forgetting beats stability: gone from the very next request, and from the file."""
    coffee = await remember(hass, COFFEE)
    await remember(hass, HEATER)
    kitchen = voice_satellite(hass, "Kitchen")
    await kitchen.say("hello")
    assert COFFEE in last_notes(fake_openai)
    await async_saved(hass, freezer)
    assert COFFEE.encode() in stored(hass)

    await act(hass, "forget", memory_id=coffee)
    await kitchen.say("and now")

    assert last_notes(fake_openai) == [HEATER]
    await async_saved(hass, freezer)
    assert COFFEE.encode() not in stored(hass)
    assert b"coffee" not in stored(hass)
