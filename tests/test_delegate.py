"""Backend `agent` through the real assist pipeline: the built-in agent, and an LLM agent."""

from __future__ import annotations

from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MODEL,
)

from .fake_openai import FakeOpenAI
from .helpers import AGENT_ENTITY_ID, async_add_agent, make_device, said_in, session_of
from .pipeline_runs import BED_LIGHT, async_voice, async_voice_with_lights

LLM_AGENT_ID = "conversation.llm_agent"


async def test_built_in_agent_switches_a_light_in_one_session(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """Assist turns the light on, then off; both wake words belong to one conversation."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)

    on = await voice.say("turn on the bed light", kitchen)
    assert hass.states.get(BED_LIGHT).state == STATE_ON
    off = await voice.say("turn off the bed light", kitchen)
    assert hass.states.get(BED_LIGHT).state == STATE_OFF

    assert on.response["response_type"] == "action_done"
    assert off.response["response_type"] == "action_done"
    assert on.handed_id != off.handed_id
    assert on.conversation_id == off.conversation_id
    session = session_of(setup_integration, on.conversation_id)
    assert session is not None
    assert [exchange.user for exchange in session.transcript] == [
        "turn on the bed light",
        "turn off the bed light",
    ]
    assert [exchange.assistant for exchange in session.transcript] == [on.speech, off.speech]


@pytest.fixture
async def llm_agent(hass: HomeAssistant, fake_openai: FakeOpenAI) -> MockConfigEntry:
    """Set up an `openai` Home Agent (conversation.llm_agent) on the fake server."""
    entry = await async_add_agent(
        hass,
        {
            CONF_BACKEND: "openai",
            CONF_BASE_URL: fake_openai.base_url,
            CONF_MODEL: "fake-model",
            CONF_LLM_HASS_API: [],
        },
        title="LLM agent",
    )
    assert hass.states.get(LLM_AGENT_ID) is not None
    return entry


@pytest.fixture
async def delegating_agent(hass: HomeAssistant, llm_agent: MockConfigEntry) -> MockConfigEntry:
    """Set up the agent under test (conversation.home_agent), delegating to the LLM agent."""
    return await async_add_agent(hass, {CONF_BACKEND: "agent", CONF_AGENT_ID: LLM_AGENT_ID})


async def test_an_llm_agent_as_delegate_hears_each_earlier_turn_once(
    hass: HomeAssistant,
    delegating_agent: MockConfigEntry,
    fake_openai: FakeOpenAI,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The delegate remembers the first turn itself: no copy of it in its instructions."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.reply("Noted, your locker is 42.")
    fake_openai.reply("It is 42.")

    first = await voice.say("my locker number is 42", kitchen)
    second = await voice.say("what is my locker number", kitchen)

    assert first.speech == "Noted, your locker is 42."
    assert second.speech == "It is 42."
    assert second.conversation_id == first.conversation_id
    request = fake_openai.chat_requests[1]
    assert request.system_prompt == fake_openai.chat_requests[0].system_prompt
    told = [text for _role, text in request.dialogue]
    assert told.count("my locker number is 42") == 1
    assert "my locker number is 42" not in request.system_prompt


async def test_a_failing_delegate_is_not_remembered(
    hass: HomeAssistant,
    delegating_agent: MockConfigEntry,
    fake_openai: FakeOpenAI,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The delegate's apology is spoken; the session keeps only the answered turns."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.reply("Hello!")
    fake_openai.status(429)

    first = await voice.say("hello", kitchen)
    failed = await voice.say("tell me a joke", kitchen)

    assert failed.response["response_type"] == "error"
    assert "too many requests" in failed.speech
    assert failed.conversation_id == first.conversation_id
    assert said_in(delegating_agent, first.conversation_id) == [("hello", "Hello!")]
