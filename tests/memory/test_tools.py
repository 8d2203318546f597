"""The model's memory tools (the "Home Agent memory" LLM API), through real pipeline runs."""

from __future__ import annotations

import json
from types import SimpleNamespace

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.compat import llm_context
from custom_components.home_agent.const import CONF_MEMORY_PROMPT_TOKENS, MEMORY_API_ID
from custom_components.home_agent.notes_api import RESULT_MAX_TOKENS
from custom_components.home_agent.notes_prompt import note_tokens

from ..fake_openai import FakeOpenAI
from ..helpers import AGENT_ENTITY_ID, make_device
from ..pipeline_runs import Satellite
from .household import (
    MEMORY_OPTIONS,
    act,
    assert_nothing_kept,
    async_people,
    async_saved,
    async_voices_of_ada_and_bob,
    listed,
    prompt_notes,
    remember,
    stored,
    tool_results,
    voice_satellite,
)

COFFEE = "Bob takes his coffee black."
MILK = "Bob takes his coffee with milk."
NUTS = "Dan is allergic to nuts."


async def test_the_model_remembers_and_says_what_it_noted(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A note from a conversation: stored, announced, confirmed aloud, in the next session."""
    added = async_capture_events(hass, "home_agent_memory_added")
    fake_openai.tool_call("MemoryRemember", {"text": f" {COFFEE}\n"})
    fake_openai.reply("Noted: Bob takes his coffee black.")

    run = await voice_satellite(hass, "Kitchen").say("remember that Bob takes his coffee black")

    (result,) = tool_results(fake_openai)
    assert result["stored"] == COFFEE
    assert result["private"] is False
    assert note_tokens(json.dumps(result)) <= RESULT_MAX_TOKENS
    assert run.speech == "Noted: Bob takes his coffee black."
    memories = (await act(hass, "list_memories"))["memories"]
    assert [(m["text"], m["origin"], m["person"]) for m in memories] == [
        (COFFEE, "conversation", None)
    ]
    assert [e.data for e in added] == [
        {"memory_id": result["memory_id"], "person": None, "origin": "conversation"}
    ]
    await Satellite(hass, AGENT_ENTITY_ID, make_device(hass, "Bedroom")).say("hello")
    assert prompt_notes(fake_openai.chat_requests[-1].system_prompt) == [COFFEE]


@pytest.mark.parametrize("agent_options", [{**MEMORY_OPTIONS, CONF_MEMORY_PROMPT_TOKENS: 60}])
async def test_recall_finds_notes_beyond_the_budget(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """The prompt has room for a few notes; recall searches all of them, in few tokens."""
    await remember(hass, NUTS)
    for number in range(30):
        await remember(hass, f"Shelf {number} wants water.")
    fake_openai.tool_call("MemoryRecall", {"query": "Dan allergy nuts"})
    fake_openai.reply("Dan is allergic to nuts.")

    await voice_satellite(hass, "Kitchen").say("can Dan eat peanuts")

    assert NUTS not in fake_openai.chat_requests[0].system_prompt
    (result,) = tool_results(fake_openai)
    assert result["notes"][0]["text"] == NUTS
    content = next(
        m["content"] for m in fake_openai.chat_requests[-1].messages if m["role"] == "tool"
    )
    assert note_tokens(content) <= RESULT_MAX_TOKENS


async def test_a_private_note_is_the_speakers_own(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
) -> None:
    """Ada's private note: hers; Bob's recall never finds it; a satellite cannot write one."""
    people = await async_people(hass, Ada=hass_admin_user, Bob=hass_read_only_user)
    ada, bob = await async_voices_of_ada_and_bob(hass, hass_ws_client, hass_read_only_access_token)
    party = "Ada plans a surprise party for Bob on 3 May."
    fake_openai.tool_call("MemoryRemember", {"text": party, "private": True})
    fake_openai.reply("Noted, just for you.")
    await ada.say("remember, just for me: the surprise party for Bob is on 3 May", None)
    assert await listed(hass, person=people["Ada"]) == [party]

    fake_openai.tool_call("MemoryRecall", {"query": "surprise party Bob"})
    fake_openai.reply("I know of no party.")
    await bob.say("is there a party for me", None)
    assert tool_results(fake_openai) == [{"notes": []}]

    fake_openai.tool_call("MemoryRemember", {"text": "The kitchen tap drips.", "private": True})
    fake_openai.reply("I can only keep that for the whole household.")
    await voice_satellite(hass, "Kitchen").say("remember privately that the tap drips")
    (refusal,) = tool_results(fake_openai)
    assert refusal["error"] == "NoteRefused"
    assert "signed-in person" in refusal["error_text"]
    assert await listed(hass) == [party]


async def test_the_model_never_keeps_a_code(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Told to remember an alarm code: refused, the model is told why, nothing is written."""
    fake_openai.tool_call("MemoryRemember", {"text": "The alarm code is 4711."})
    fake_openai.reply("I don't keep codes.")

    await voice_satellite(hass, "Kitchen").say("remember the alarm code is 4711")

    (refusal,) = tool_results(fake_openai)
    assert refusal["error"] == "NoteRefused"
    assert "passwords" in refusal["error_text"]
    await assert_nothing_kept(hass, freezer, b"4711")


async def test_the_model_updates_a_note_and_forgets_it(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An update supersedes (the old text hidden, kept); forgetting takes both off disk."""
    coffee = await remember(hass, COFFEE)
    updated = async_capture_events(hass, "home_agent_memory_updated")
    forgotten = async_capture_events(hass, "home_agent_memory_forgotten")
    fake_openai.tool_call("MemoryRemember", {"text": MILK, "replaces": coffee})
    fake_openai.reply("Noted: with milk now.")
    await voice_satellite(hass, "Kitchen").say("Bob takes milk in his coffee now")
    milk = tool_results(fake_openai)[0]["memory_id"]

    assert await listed(hass) == [MILK]
    assert [e.data for e in updated] == [
        {"memory_id": milk, "person": None, "origin": "conversation"}
    ]
    await async_saved(hass, freezer)
    assert COFFEE.encode() in stored(hass)  # kept for its history
    fake_openai.tool_call("MemoryRecall", {"query": "Bob coffee"})
    fake_openai.reply("With milk.")
    await Satellite(hass, AGENT_ENTITY_ID, make_device(hass, "Hall")).say(
        "how does Bob take coffee"
    )
    assert [n["text"] for n in tool_results(fake_openai)[0]["notes"]] == [MILK]
    assert prompt_notes(fake_openai.chat_requests[-1].system_prompt) == [MILK]

    fake_openai.tool_call("MemoryForget", {"memory_id": milk})
    fake_openai.reply("Forgotten.")
    await voice_satellite(hass, "Kitchen").say("forget how Bob takes his coffee")

    assert tool_results(fake_openai)[-1] == {"forgotten": 2}
    assert {e.data["memory_id"] for e in forgotten} == {coffee, milk}
    await assert_nothing_kept(hass, freezer, b"coffee")


async def test_other_llm_agents_use_the_same_notes(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """The LLM API "Home Agent memory": its prompt has the speaker's notes, its tools work."""
    people = await async_people(hass, Ada=hass_admin_user, Bob=hass_read_only_user)
    await remember(hass, COFFEE)
    await remember(hass, "Ada's passport expires in 2027.", person=people["Ada"])
    apis = {api.id: api.name for api in llm.async_get_apis(hass)}
    assert apis[MEMORY_API_ID] == "Home Agent memory"

    def turn(user: MockUser) -> llm.LLMContext:
        text = SimpleNamespace(
            text="", context=Context(user_id=user.id), language="en", device_id=None, agent_id=None
        )
        return llm_context("ollama", text)

    bobs = await llm.async_get_api(hass, MEMORY_API_ID, turn(hass_read_only_user))
    adas = await llm.async_get_api(hass, MEMORY_API_ID, turn(hass_admin_user))

    assert COFFEE in bobs.api_prompt
    assert "passport" not in bobs.api_prompt
    assert "passport" in adas.api_prompt
    assert {tool.name for tool in bobs.tools} == {"MemoryRemember", "MemoryRecall", "MemoryForget"}
    result = await bobs.async_call_tool(
        llm.ToolInput(tool_name="MemoryRemember", tool_args={"text": "Bob runs on Sundays."})
    )
    data = getattr(result, "data", result)
    assert data["stored"] == "Bob runs on Sundays."
    assert await listed(hass, hass_read_only_user) == [COFFEE, "Bob runs on Sundays."]


async def test_without_memory_the_api_offers_nothing(hass: HomeAssistant) -> None:
    """No agent with memory on: other agents that chose the API get no tools, no notes."""
    from ..helpers import setup_entry  # noqa: PLC0415

    entry = MockConfigEntry(domain="home_agent", data={"backend": "agent"}, options={})
    entry.add_to_hass(hass)
    await setup_entry(hass, entry)
    turn = SimpleNamespace(text="", context=Context(), language="en", device_id=None, agent_id=None)

    api = await llm.async_get_api(hass, MEMORY_API_ID, llm_context("ollama", turn))

    assert api.tools == []
    assert api.api_prompt == ""
