"""Nothing lost, nothing stuck: turns in flight across reloads, timeouts, clears and hangs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import json
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryDisabler
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.home_agent.const import (
    CONF_SESSION_TIMEOUT,
    DOMAIN,
    EVENT_SESSION_EXPIRED,
    SERVICE_CLEAR_CONVERSATION,
)

from .delegates import GateAgent, async_setup_delegating_to
from .fake_openai import FakeOpenAI
from .helpers import async_add_agent, async_advance, converse, make_device, openai_agent_data


async def _hold_a_turn(
    hass: HomeAssistant, agent_options: dict[str, Any]
) -> tuple[GateAgent, MockConfigEntry, str, asyncio.Task[Any]]:
    """Answer a first turn, then start a second the delegate holds; return them."""
    agent = GateAgent()
    entry = await async_setup_delegating_to(hass, agent, agent_options)
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text="remember the milk", device_id=kitchen)
    turn = asyncio.create_task(converse(hass, text="and the eggs", device_id=kitchen))
    await agent.waiting.wait()
    return agent, entry, first.conversation_id, turn


async def _after(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Let `seconds` pass (the turn is still being answered)."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_reload_during_a_turn_keeps_its_exchange(
    hass: HomeAssistant, agent_options: dict[str, Any]
) -> None:
    """Options change (reload) while a turn is answered: the exchange is still remembered."""
    agent, entry, conversation_id, turn = await _hold_a_turn(hass, agent_options)

    reload = hass.async_create_task(hass.config_entries.async_reload(entry.entry_id))
    for _ in range(5):
        await asyncio.sleep(0)
    agent.gate.set()
    answered = await turn
    assert await reload
    after = await converse(hass, text="what do I need", device_id=agent.inputs[0].device_id)

    assert answered.response.speech["plain"]["speech"] == "answer 2"
    assert after.conversation_id == answered.conversation_id == conversation_id
    context = agent.inputs[-1].extra_system_prompt or ""
    assert "User: remember the milk" in context
    assert "User: and the eggs" in context


async def test_a_turn_longer_than_the_timeout_does_not_end_its_session(
    hass: HomeAssistant, agent_options: dict[str, Any], freezer: FrozenDateTimeFactory
) -> None:
    """A slow answer outlasting the idle timeout: the session lives until the turn is done."""
    agent, _entry, conversation_id, turn = await _hold_a_turn(
        hass, {**agent_options, CONF_SESSION_TIMEOUT: 60}
    )
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)

    freezer.tick(timedelta(seconds=90))  # past the idle timeout, within the turn limit
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert expired == []
    agent.gate.set()
    answered = await turn
    after = await converse(hass, text="what do I need", device_id=agent.inputs[0].device_id)

    assert answered.conversation_id == after.conversation_id == conversation_id
    assert "User: and the eggs" in (agent.inputs[-1].extra_system_prompt or "")
    await async_advance(hass, freezer, timedelta(seconds=61))
    assert [event.data["conversation_id"] for event in expired] == [conversation_id]


async def test_turns_queued_behind_a_clear_start_afresh(
    hass: HomeAssistant, agent_options: dict[str, Any]
) -> None:
    """A turn waiting while its conversation is cleared gets none of the cleared context."""
    agent = GateAgent()
    await async_setup_delegating_to(hass, agent, agent_options)
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text="my pin is 1234", device_id=kitchen)
    held = asyncio.create_task(converse(hass, text="and my name is Ada", device_id=kitchen))
    await agent.waiting.wait()
    queued = asyncio.create_task(converse(hass, text="what is my pin", device_id=kitchen))
    for _ in range(5):
        await asyncio.sleep(0)

    await hass.services.async_call(
        DOMAIN, SERVICE_CLEAR_CONVERSATION, {"device_id": kitchen}, blocking=True
    )
    agent.gate.set()
    await held
    fresh = await queued

    assert fresh.conversation_id != first.conversation_id
    assert "1234" not in (agent.inputs[-1].extra_system_prompt or "")
    assert "Ada" not in (agent.inputs[-1].extra_system_prompt or "")


async def test_a_hanging_delegate_does_not_block_the_device(
    hass: HomeAssistant, agent_options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delegate that never answers: that turn apologises, the next one is answered."""
    monkeypatch.setattr("custom_components.home_agent.conversation.TURN_TIME_LIMIT", 0.2)
    agent = GateAgent(hold={2})
    await async_setup_delegating_to(hass, agent, agent_options)
    kitchen = make_device(hass, "Kitchen satellite")

    first = await converse(hass, text="hello", device_id=kitchen)
    hung = await converse(hass, text="tell me a story", device_id=kitchen)
    after = await converse(hass, text="are you there", device_id=kitchen)

    assert hung.response.response_type.value == "error"
    assert "took too long" in hung.response.speech["plain"]["speech"]
    assert after.response.speech["plain"]["speech"] == "answer 3"
    assert after.conversation_id == hung.conversation_id == first.conversation_id
    context = agent.inputs[-1].extra_system_prompt or ""
    assert "User: hello" in context
    assert "tell me a story" not in context


async def test_a_turn_of_many_slow_tool_rounds_ends_within_the_turn_limit(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    agent_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ten tool rounds, each slow but within the request timeout: the turn still ends in time."""
    monkeypatch.setattr("custom_components.home_agent.conversation.TURN_TIME_LIMIT", 0.5)
    await async_add_agent(hass, openai_agent_data(fake_openai.base_url), agent_options)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.reply("Hello.")
    first = await converse(hass, text="hello", device_id=kitchen)
    for n in range(10):
        fake_openai.tool_call("HassNevermind", {}, call_id=f"call_{n}", delay=0.2)

    started = time.monotonic()
    slow = await converse(hass, text="do the thing", device_id=kitchen)

    assert time.monotonic() - started < 2
    assert slow.response.response_type.value == "error"
    assert "took too long" in slow.response.speech["plain"]["speech"]
    assert slow.conversation_id == first.conversation_id


async def test_a_reload_during_a_long_turn_keeps_its_exchange(
    hass: HomeAssistant, agent_options: dict[str, Any], freezer: FrozenDateTimeFactory
) -> None:
    """A turn still answering 30 s into an option change: answered, and remembered."""
    agent, entry, conversation_id, turn = await _hold_a_turn(hass, agent_options)

    reload = hass.async_create_task(hass.config_entries.async_reload(entry.entry_id))
    await _after(hass, freezer, 30)
    agent.gate.set()
    answered = await turn
    assert await reload
    after = await converse(hass, text="what do I need", device_id=agent.inputs[0].device_id)

    assert answered.response.speech["plain"]["speech"] == "answer 2"
    assert answered.conversation_id == after.conversation_id == conversation_id
    assert "User: and the eggs" in (agent.inputs[-1].extra_system_prompt or "")


@pytest.mark.parametrize("action", ["disable", "delete"])
async def test_disabling_or_deleting_the_agent_during_a_long_turn_still_answers_it(
    hass: HomeAssistant,
    agent_options: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    action: str,
) -> None:
    """The caller hears the answer with the session's id, not "Unknown error"."""
    agent, entry, conversation_id, turn = await _hold_a_turn(hass, agent_options)

    if action == "disable":
        stop = hass.config_entries.async_set_disabled_by(entry.entry_id, ConfigEntryDisabler.USER)
    else:
        stop = hass.config_entries.async_remove(entry.entry_id)
    stopping = hass.async_create_task(stop)
    await _after(hass, freezer, 30)
    agent.gate.set()
    answered = await turn
    await stopping

    assert answered.response.speech["plain"]["speech"] == "answer 2"
    assert answered.conversation_id == conversation_id


async def test_an_endpoint_sending_only_keep_alive_comments_is_given_up_in_time(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    agent_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only `: keep-alive` comments: "took too long" after READ_TIMEOUT, not the turn limit."""
    monkeypatch.setattr("custom_components.home_agent.client.READ_TIMEOUT", 0.3)
    monkeypatch.setattr("custom_components.home_agent.conversation.TURN_TIME_LIMIT", 5)
    await async_add_agent(hass, openai_agent_data(fake_openai.base_url), agent_options)
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text="hello", device_id=kitchen)
    never = json.dumps({"choices": [{"index": 0, "delta": {"content": "Too late."}}]})
    fake_openai.events([never.encode(), b"[DONE]"], lead=30, keep_alive=0.05)

    started = time.monotonic()
    held = await converse(hass, text="tell me a story", device_id=kitchen)
    waited = time.monotonic() - started
    after = await converse(hass, text="are you there", device_id=kitchen)

    assert waited < 2
    assert held.response.response_type.value == "error"
    assert held.response.speech["plain"]["speech"] == (
        "Sorry, the language model took too long to answer"
    )
    assert after.response.response_type.value == "action_done"
    assert after.conversation_id == held.conversation_id == first.conversation_id
