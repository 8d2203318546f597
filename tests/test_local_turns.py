"""Turns Home Assistant answered itself join the right session, once, in order, and only those.

Voice turns run through the real assist pipeline with "prefer handling commands locally";
the satellite passes Home Assistant's id back as it does within its 5 minutes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_HISTORY_MAX_TURNS,
    DOMAIN,
    SERVICE_CLEAR_CONVERSATION,
)

from .fake_openai import FakeOpenAI
from .helpers import AGENT_ENTITY_ID, async_add_agent, openai_agent_data, sessions_of
from .pipeline_runs import (
    Voice,
    async_create_pipeline,
    async_setup_demo_lights,
    async_voice,
    async_voice_with_lights,
)


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent pointed at the fake server, with the Assist API."""
    return openai_agent_data(fake_openai.base_url)


def _users(fake: FakeOpenAI) -> list[str]:
    """Return what the user said, as the last request gave it to the model."""
    return [text for role, text in fake.chat_requests[-1].dialogue if role == "user"]


async def test_after_an_option_change_own_turns_do_not_come_back_as_local(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """A reload in the middle of Home Assistant's chat session: nothing is recorded twice."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, prefer_local_intents=True)
    fake_openai.reply("Noted.")
    fake_openai.status(500)
    fake_openai.reply("Milk.")

    first = await voice.say("remember the milk", kitchen)
    failed = await voice.say("and the eggs", kitchen, first.handed_id)
    hass.config_entries.async_update_entry(
        setup_integration, options={**setup_integration.options, CONF_HISTORY_MAX_TURNS: 20}
    )
    await hass.async_block_till_done()
    await voice.say("what should I buy", kitchen, first.handed_id)

    assert failed.response["response_type"] == "error"
    assert fake_openai.chat_requests[-1].dialogue == [
        ("user", "remember the milk"),
        ("assistant", "Noted."),
        ("user", "what should I buy"),
    ]


async def test_a_local_command_before_a_clear_stays_in_the_cleared_conversation(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The cleared conversation's command never joins the one after the clear."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, prefer_local_intents=True)
    fake_openai.reply("Hi.")
    fake_openai.reply("Hello again.")

    first = await voice.say("hello there", kitchen)
    await voice.say("turn on the bed light", kitchen, first.handed_id)
    await hass.services.async_call(
        DOMAIN, SERVICE_CLEAR_CONVERSATION, {"device_id": kitchen}, blocking=True
    )
    await voice.say("what did I ask you", kitchen, first.handed_id)

    assert _users(fake_openai) == ["what did I ask you"]


async def test_a_local_command_on_another_screen_keeps_its_place(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Two Assist dialogs of one person: a command in the first comes before the second's turn."""
    await async_setup_demo_lights(hass)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID, prefer_local_intents=True)
    fake_openai.reply("Hi.")
    fake_openai.reply("Sure.")
    fake_openai.reply("You said hello, turned on the bed light and asked for a song.")

    first = await voice.say("hello there", device_id=None)
    await voice.say("turn on the bed light", None, first.handed_id)
    await voice.say("sing a song", device_id=None)  # a second dialog
    freezer.tick(timedelta(minutes=11))  # the first dialog's chat session lapses
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    await voice.client.close()
    voice.client = await hass_ws_client(hass)
    await voice.say("what happened", device_id=None)

    assert _users(fake_openai) == [
        "hello there",
        "turn on the bed light",
        "sing a song",
        "what happened",
    ]


async def test_two_agents_on_one_satellite_keep_their_own_turns(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """Two wake words, one Home Assistant conversation id: neither records the other's turns."""
    other = await async_add_agent(
        hass, {"backend": "agent", "agent_id": "conversation.home_assistant"}, title="Friday"
    )
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, prefer_local_intents=True)
    friday = await async_create_pipeline(voice.client, "conversation.friday")
    fake_openai.reply("Noted.")
    fake_openai.reply("Milk.")

    first = await voice.say("remember the milk", kitchen)
    voice_of_friday = Voice(voice.client, friday)
    await voice_of_friday.say("turn on the bed light", kitchen, first.handed_id)
    await voice.say("what should I buy", kitchen, first.handed_id)
    await voice_of_friday.say("turn off the bed light", kitchen, first.handed_id)

    assert _users(fake_openai) == ["remember the milk", "what should I buy"]
    mine = sessions_of(setup_integration)
    fridays = sessions_of(other)
    assert [e.user for s in mine for e in s.transcript] == [
        "remember the milk",
        "what should I buy",
    ]
    assert [e.user for s in fridays for e in s.transcript] == [
        "turn on the bed light",
        "turn off the bed light",
    ]
    assert not any(e.local for s in [*mine, *fridays] for e in s.transcript)
