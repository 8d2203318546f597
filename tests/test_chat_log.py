"""Turns inside Home Assistant's chat log: what was done is remembered, local turns join.

Voice turns run through the real assist pipeline; the clock moves 11 minutes between
turns where the point is that Home Assistant's own chat session (5 idle minutes) has
lapsed and only Home Agent's transcript still knows what happened.
"""

from __future__ import annotations

from datetime import timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import conversation
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_LLM_HASS_API,
    DOMAIN,
    TOOL_RESULT_MAX_CHARS,
)
from custom_components.home_agent.exchanges import CUT_MARKER, compact_result

from .fake_openai import FakeOpenAI
from .helpers import (
    AGENT_ENTITY_ID,
    async_advance,
    async_restarted,
    make_device,
    openai_agent_data,
    setup_entry,
)
from .pipeline_runs import (
    BED_LIGHT,
    async_setup_assist_pipeline,
    async_tool_name,
    async_voice,
    async_voice_with_lights,
)

LAPSE = timedelta(minutes=11)


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent pointed at the fake server, with the Assist API."""
    return openai_agent_data(fake_openai.base_url)


async def _script_turn_on(hass: HomeAssistant, fake: FakeOpenAI) -> str:
    """Script the model's call of HassTurnOn for the bed light; return the tool's name."""
    turn_on = await async_tool_name(hass, "HassTurnOn")
    fake.tool_call(turn_on, {"name": "Bed Light"}, call_id="call_on")
    return turn_on


async def _lapse(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let Home Assistant's chat sessions lapse (Home Agent's session stays)."""
    await async_advance(hass, freezer, LAPSE)


async def test_tool_calls_are_remembered_after_the_chat_session_lapsed(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """'Switch on the light over the counter' … 11 minutes … 'turn it off again' knows 'it'."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)
    turn_on = await _script_turn_on(hass, fake_openai)
    fake_openai.reply("Done, the bed light is on.")
    fake_openai.reply("It is off again.")

    first = await voice.say("switch on the light over the counter", kitchen)
    assert hass.states.get(BED_LIGHT).state == STATE_ON
    await _lapse(hass, freezer)
    second = await voice.say("turn it off again", kitchen)

    assert second.handed_id != first.handed_id
    assert second.conversation_id == first.conversation_id
    messages = fake_openai.chat_requests[-1].messages
    assistant_call = next(m for m in messages if m.get("tool_calls"))
    call = assistant_call["tool_calls"][0]
    assert call["id"] == "call_on"
    assert call["function"]["name"] == turn_on
    assert json.loads(call["function"]["arguments"]) == {"name": "Bed Light"}
    result = messages[messages.index(assistant_call) + 1]
    assert result["role"] == "tool"
    assert result["tool_call_id"] == "call_on"
    assert "Bed Light" in result["content"]
    # In order: the request, what was done, the reply, then the new request.
    roles = [m["role"] for m in messages[1:]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]


async def test_tool_calls_survive_a_restart(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The tool round of an exchange is on disk and sent again after a restart."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)
    turn_on = await _script_turn_on(hass, fake_openai)
    fake_openai.reply("The bed light is on.")
    await voice.say("turn on the bed light", kitchen)
    await voice.client.close()
    await hass.async_block_till_done()

    async with async_restarted(hass, setup_integration) as (hass2, entry):
        await setup_entry(hass2, entry)
        await async_setup_assist_pipeline(hass2)
        result = await conversation.async_converse(
            hass2,
            "turn it off",
            None,
            Context(),
            agent_id=AGENT_ENTITY_ID,
            device_id=kitchen,
        )
        assert result.response.speech["plain"]["speech"]
        messages = fake_openai.chat_requests[-1].messages
        assert [m["role"] for m in messages[1:]] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "user",
        ]
        assert messages[2]["tool_calls"][0]["function"]["name"] == turn_on


async def test_a_long_tool_result_is_kept_compact() -> None:
    """A tool result over the bound is cut, visibly; a short one is kept whole."""
    short = {"speech": "ok"}
    long = {"data": "x" * (TOOL_RESULT_MAX_CHARS * 3)}

    assert json.loads(compact_result(short)) == short
    cut = compact_result(long)
    assert len(cut) == TOOL_RESULT_MAX_CHARS
    assert cut.endswith(CUT_MARKER)


async def test_turns_home_assistant_answered_itself_join_the_session(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A command handled locally after Home Agent's turn is part of the conversation later."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, prefer_local_intents=True)
    fake_openai.reply("Hello.")
    fake_openai.reply("You asked me to turn on the bed light.")

    first = await voice.say("hello there", kitchen)
    # The satellite passes Home Assistant's id back within its 5 minutes.
    local = await voice.say("turn on the bed light", kitchen, first.handed_id)
    assert hass.states.get(BED_LIGHT).state == STATE_ON
    assert len(fake_openai.chat_requests) == 1  # Home Assistant answered it itself
    await _lapse(hass, freezer)
    after = await voice.say("what did I just ask you to do", kitchen)

    assert after.conversation_id == first.conversation_id
    assert fake_openai.chat_requests[-1].dialogue == [
        ("user", "hello there"),
        ("assistant", "Hello."),
        ("user", "turn on the bed light"),
        ("assistant", local.speech),
        ("user", "what did I just ask you to do"),
    ]


async def test_a_local_turn_before_home_agents_turn_is_recorded_once(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A local turn followed by Home Agent's turn in the same chat session: once, in order."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, prefer_local_intents=True)
    fake_openai.reply("Hi!")
    fake_openai.reply("Sure.")
    fake_openai.reply("You turned on the bed light, then asked for a song.")

    first = await voice.say("hi", kitchen)
    await voice.say("turn on the bed light", kitchen, first.handed_id)
    await voice.say("sing a song", kitchen, first.handed_id)
    await _lapse(hass, freezer)
    await voice.say("what happened so far", kitchen)

    said = [text for role, text in fake_openai.chat_requests[-1].dialogue if role == "user"]
    assert said == ["hi", "turn on the bed light", "sing a song", "what happened so far"]
    assert hass.states.get(BED_LIGHT).state == STATE_ON


async def test_the_pipeline_shows_home_agents_tool_calls(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The run's events (the Assist debug view) carry the tool call and its result."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)
    turn_on = await _script_turn_on(hass, fake_openai)
    fake_openai.reply("The bed light is on.")

    run = await voice.say("turn on the bed light", kitchen)

    calls = [call for delta in run.deltas for call in delta.get("tool_calls") or []]
    assert [call["tool_name"] for call in calls] == [turn_on]
    assert calls[0]["tool_args"] == {"name": "Bed Light"}
    text = "".join(delta.get("content") or "" for delta in run.deltas)
    assert text == "The bed light is on."


async def test_a_failed_turn_is_answered_with_the_session_id_and_forgotten(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """An error mid-turn: the apology is spoken, the session stays, nothing is remembered."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.reply("Noted.")
    fake_openai.status(500)
    fake_openai.reply("I remember only the first thing.")

    first = await voice.say("remember the milk", kitchen)
    failed = await voice.say("and the eggs", kitchen)
    third = await voice.say("what should I buy", kitchen)

    assert failed.response["response_type"] == "error"
    assert failed.conversation_id == first.conversation_id == third.conversation_id
    assert fake_openai.chat_requests[-1].dialogue == [
        ("user", "remember the milk"),
        ("assistant", "Noted."),
        ("user", "what should I buy"),
    ]


@pytest.mark.parametrize(
    ("apis", "control"),
    [([llm.LLM_API_ASSIST], True), ([], False)],
    ids=["assist-api", "chat-only"],
)
async def test_control_is_offered_only_when_the_agent_can_act(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    apis: list[str],
    control: bool,
) -> None:
    """Without an LLM API the agent cannot act, so Home Assistant keeps answering locally."""
    hass.config_entries.async_update_entry(
        config_entry, data={**config_entry.data, CONF_LLM_HASS_API: apis}
    )
    await setup_entry(hass, config_entry)
    await conversation.async_converse(hass, "hello", None, Context(), agent_id=AGENT_ENTITY_ID)

    state = hass.states.get(AGENT_ENTITY_ID)
    assert state is not None
    features = state.attributes.get("supported_features", 0)
    assert bool(features & conversation.ConversationEntityFeature.CONTROL) is control


async def test_streaming_is_declared_where_home_assistant_has_it(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """From Home Assistant 2025.6 the agent says it streams (the pipeline speaks early)."""
    info = conversation.async_get_agent_info(hass, AGENT_ENTITY_ID)
    assert info is not None
    if not hasattr(info, "supports_streaming"):
        pytest.skip("this Home Assistant release has no streaming flag")
    assert info.supports_streaming is True


async def test_a_rejected_key_during_a_turn_starts_reauthentication(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """A 401 mid-session: the turn apologises and Home Assistant asks for a new key."""
    fake_openai.status(401)

    result = await conversation.async_converse(
        hass, "hello", None, Context(), agent_id=AGENT_ENTITY_ID
    )
    await hass.async_block_till_done()

    assert result.response.response_type.value == "error"
    assert "API key" in result.response.speech["plain"]["speech"]
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]


async def test_a_second_wake_word_after_a_lapse_keeps_state_off_on(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The remembered tool call lets the model turn the same light off by 'it'."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)
    turn_on = await async_tool_name(hass, "HassTurnOn")
    turn_off = await async_tool_name(hass, "HassTurnOff")
    fake_openai.tool_call(turn_on, {"name": "Bed Light"}, call_id="call_on")
    fake_openai.reply("On.")
    fake_openai.tool_call(turn_off, {"name": "Bed Light"}, call_id="call_off")
    fake_openai.reply("Off again.")

    await voice.say("switch on the light over the counter", kitchen)
    await _lapse(hass, freezer)
    run = await voice.say("turn it off again", kitchen)

    assert run.speech == "Off again."
    assert hass.states.get(BED_LIGHT).state == STATE_OFF
