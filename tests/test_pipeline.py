"""Voice turns through Home Assistant's real assist pipeline, answered by the `openai` backend.

Every run sends `device_id` and no conversation id, as a satellite does once Home
Assistant's own chat session has lapsed: the pipeline hands the agent a fresh id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    CLIENT_ID,
    MockConfigEntry,
    MockUser,
)
from pytest_homeassistant_custom_component.typing import MockHAClientWebSocket, WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_HISTORY_MAX_TURNS,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
)

from .fake_openai import FakeOpenAI
from .helpers import (
    AGENT_ENTITY_ID,
    async_advance,
    async_restarted,
    make_device,
    openai_agent_data,
    said_in,
    setup_entry,
)
from .pipeline_runs import (
    BED_LIGHT,
    Voice,
    async_create_pipeline,
    async_run_text,
    async_setup_assist_pipeline,
    async_setup_demo_lights,
    async_tool_name,
    async_voice,
)

TIMEOUT = timedelta(seconds=3600)


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent pointed at the fake server, with the Assist API."""
    return openai_agent_data(fake_openai.base_url)


@pytest.fixture
async def voice(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> Voice:
    """Return the voice pipeline of the agent under test."""
    return await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)


async def test_follow_up_on_one_device_carries_the_first_exchange(
    hass: HomeAssistant, voice: Voice, fake_openai: FakeOpenAI
) -> None:
    """Two wake words on one satellite: one conversation, the second request has the first."""
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.reply("The kitchen lights are on.")
    fake_openai.reply("Which lights do you mean?")

    first = await voice.say("turn on the kitchen lights", kitchen)
    second = await voice.say("and the others too", kitchen)

    assert first.handed_id != second.handed_id  # the pipeline forgot...
    assert first.conversation_id == second.conversation_id  # ...Home Agent did not
    assert first.speech == "The kitchen lights are on."
    assert second.speech == "Which lights do you mean?"
    assert second.events[-2]["data"]["intent_output"]["continue_conversation"] is True
    assert fake_openai.chat_requests[0].dialogue == [("user", "turn on the kitchen lights")]
    assert fake_openai.chat_requests[1].dialogue == [
        ("user", "turn on the kitchen lights"),
        ("assistant", "The kitchen lights are on."),
        ("user", "and the others too"),
    ]


async def test_another_device_has_its_own_context(
    hass: HomeAssistant, voice: Voice, fake_openai: FakeOpenAI
) -> None:
    """A second satellite neither sees nor joins the first one's conversation."""
    kitchen = make_device(hass, "Kitchen satellite")
    bedroom = make_device(hass, "Bedroom satellite")

    in_kitchen = await voice.say("set a timer for the pasta", kitchen)
    in_bedroom = await voice.say("what did I just ask", bedroom)
    back_in_kitchen = await voice.say("how long is left", kitchen)

    assert in_bedroom.conversation_id != in_kitchen.conversation_id
    assert back_in_kitchen.conversation_id == in_kitchen.conversation_id
    assert fake_openai.chat_requests[1].dialogue == [("user", "what did I just ask")]
    assert fake_openai.chat_requests[2].dialogue == [
        ("user", "set a timer for the pasta"),
        ("assistant", in_kitchen.speech),
        ("user", "how long is left"),
    ]


async def test_after_the_timeout_the_context_starts_fresh(
    hass: HomeAssistant, voice: Voice, fake_openai: FakeOpenAI, freezer: FrozenDateTimeFactory
) -> None:
    """An idle session ends; the next wake word gets a new conversation and no history."""
    kitchen = make_device(hass, "Kitchen satellite")
    before = await voice.say("remember the code word banana", kitchen)

    await async_advance(hass, freezer, TIMEOUT + timedelta(seconds=1))
    after = await voice.say("what was the code word", kitchen)

    assert after.conversation_id != before.conversation_id
    assert fake_openai.chat_requests[-1].dialogue == [("user", "what was the code word")]


async def test_a_tool_call_turns_a_demo_light_on(
    hass: HomeAssistant, voice: Voice, fake_openai: FakeOpenAI
) -> None:
    """The model calls HassTurnOn through the Assist API; the light really turns on."""
    await async_setup_demo_lights(hass)
    assert hass.states.get(BED_LIGHT).state == STATE_OFF
    kitchen = make_device(hass, "Kitchen satellite")
    turn_on = await async_tool_name(hass, "HassTurnOn")
    fake_openai.tool_call(turn_on, {"name": "Bed Light"}, call_id="call_bed")
    fake_openai.reply("The bed light is on.")

    run = await voice.say("turn on the bed light", kitchen)

    assert hass.states.get(BED_LIGHT).state == STATE_ON
    assert run.speech == "The bed light is on."
    offered = {tool["function"]["name"] for tool in fake_openai.chat_requests[0].body["tools"]}
    assert turn_on in offered
    tool_message = fake_openai.chat_requests[1].messages[-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_bed"
    assert "error" not in tool_message["content"].lower()
    assert "Bed Light" in tool_message["content"]
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert said_in(entry, run.conversation_id) == [
        ("turn on the bed light", "The bed light is on.")
    ]


@pytest.mark.parametrize(
    "agent_options",
    [{CONF_SESSION_TIMEOUT: 3600, CONF_SESSION_SCOPE: "device", CONF_HISTORY_MAX_TURNS: 2}],
)
async def test_transcript_is_bounded_by_history_max_turns(
    hass: HomeAssistant, voice: Voice, fake_openai: FakeOpenAI
) -> None:
    """Only the last history_max_turns exchanges are sent to the model."""
    kitchen = make_device(hass, "Kitchen satellite")
    runs = [await voice.say(f"sentence {n}", kitchen) for n in range(1, 5)]

    assert len({run.conversation_id for run in runs}) == 1
    assert fake_openai.chat_requests[-1].dialogue == [
        ("user", "sentence 2"),
        ("assistant", runs[1].speech),
        ("user", "sentence 3"),
        ("assistant", runs[2].speech),
        ("user", "sentence 4"),
    ]


async def test_restart_between_two_turns_keeps_the_context(
    hass: HomeAssistant,
    voice: Voice,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    hass_ws_client: WebSocketGenerator,
    hass_storage: dict[str, Any],
) -> None:
    """A turn, Home Assistant restarts, the next wake word still has the conversation."""
    kitchen = make_device(hass, "Kitchen satellite")
    before = await voice.say("my parking spot is C7", kitchen)
    await _close(hass, voice.client)
    async with async_restarted(hass, setup_integration) as (hass2, entry):
        await setup_entry(hass2, entry)
        await async_setup_assist_pipeline(hass2)
        client = await hass_ws_client(hass2, await _access_token(hass2))
        pipeline_id = await async_create_pipeline(client, AGENT_ENTITY_ID)

        after = await async_run_text(client, pipeline_id, "where did I park", device_id=kitchen)

        assert after.conversation_id == before.conversation_id
        assert fake_openai.chat_requests[-1].dialogue == [
            ("user", "my parking spot is C7"),
            ("assistant", before.speech),
            ("user", "where did I park"),
        ]
        await _close(hass2, client)


async def _access_token(hass: HomeAssistant) -> str:
    """Return an administrator's access token for a second Home Assistant."""
    admins = await hass.auth.async_get_group(GROUP_ID_ADMIN)
    assert admins is not None
    user = MockUser(groups=[admins]).add_to_hass(hass)
    refresh_token = await hass.auth.async_create_refresh_token(user, CLIENT_ID)
    return hass.auth.async_create_access_token(refresh_token)


async def _close(hass: HomeAssistant, client: MockHAClientWebSocket) -> None:
    """Close a websocket and let Home Assistant finish its side before it stops."""
    await client.close()
    await client.client.close()
    await hass.async_block_till_done()
