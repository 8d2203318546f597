"""Follow-ups with any delegate, for exactly as long as the session lives.

Voice turns run through the real assist pipeline. Idle time passes a minute at a time, as a
real clock does, so Home Assistant's own chat sessions lapse (5 idle minutes, swept every 5)
while Home Agent's session lives on.
"""

from __future__ import annotations

from datetime import timedelta
import importlib.util
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.components import conversation
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import DOMAIN, SERVICE_CLEAR_CONVERSATION

from .delegates import (
    ChatLogAgent,
    StreamingAgent,
    async_setup_delegating_to,
    register_delegate_again,
)
from .helpers import (
    AGENT_ENTITY_ID,
    async_advance,
    async_restarted,
    converse,
    make_device,
    setup_entry,
)
from .pipeline_runs import (
    BED_LIGHT,
    Voice,
    async_setup_demo_lights,
    async_voice,
    async_voice_with_lights,
)

# Home Assistant 2026.9+'s built-in agent resolves "it"/"them" (English).
BUILT_IN_PRONOUNS = importlib.util.find_spec("homeassistant.components.conversation.gazetteer")
needs_pronouns = pytest.mark.skipif(
    BUILT_IN_PRONOUNS is None, reason="this release's built-in agent has no pronouns"
)


async def _idle(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    minutes: int,
    reconnect: tuple[Voice, WebSocketGenerator] | None = None,
) -> None:
    """Let `minutes` pass without a word, a minute at a time.

    A voice's websocket is opened anew afterwards, with a long-lived token: Home Assistant
    closes one that does not answer its heartbeat meanwhile (a satellite reconnects too),
    and a test client's token lasts 30 minutes.
    """
    if reconnect is not None:
        await reconnect[0].client.close()
    for _ in range(minutes):
        await async_advance(hass, freezer, timedelta(minutes=1))
    if reconnect is not None:
        voice, hass_ws_client = reconnect
        voice.client = await hass_ws_client(hass, await _long_lived_token(hass))


async def _long_lived_token(hass: HomeAssistant) -> str:
    """Return an access token of the test's administrator that lasts a day."""
    users = await hass.auth.async_get_users()
    owner = next(user for user in users if user.is_admin and not user.system_generated)
    refresh = await hass.auth.async_create_refresh_token(
        owner,
        client_name=f"satellite {len(owner.refresh_tokens)}",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(days=1),
    )
    return hass.auth.async_create_access_token(refresh)


async def _clear(hass: HomeAssistant, device_id: str) -> None:
    """Clear the satellite's conversation, as the blueprint's button does."""
    await hass.services.async_call(
        DOMAIN, SERVICE_CLEAR_CONVERSATION, {"device_id": device_id}, blocking=True
    )


@needs_pronouns
@pytest.mark.parametrize("minutes", [11, 51])
async def test_built_in_agent_knows_it_after_home_assistants_chat_session_lapsed(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    freezer: FrozenDateTimeFactory,
    minutes: int,
) -> None:
    """'Turn on the bed light' … minutes later, same satellite … 'turn it off' turns it off."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, "Kitchen")

    first = await voice.say("turn on the bed light", kitchen)
    assert hass.states.get(BED_LIGHT).state == STATE_ON
    await _idle(hass, freezer, minutes, (voice, hass_ws_client))
    second = await voice.say("turn it off", kitchen)
    await _idle(hass, freezer, minutes, (voice, hass_ws_client))
    third = await voice.say("turn it on", kitchen)

    # Home Assistant handed over fresh ids (its chat sessions lapsed); Home Agent's held.
    assert len({first.handed_id, second.handed_id, third.handed_id}) == 3
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert second.response["response_type"] == "action_done"
    assert third.response["response_type"] == "action_done"
    assert hass.states.get(BED_LIGHT).state == STATE_ON


@needs_pronouns
async def test_built_in_agent_knows_it_in_a_new_assist_dialog(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_ws_client: WebSocketGenerator
) -> None:
    """A page reload opens a new Assist dialog (no id): the same person's 'it' still works."""
    await async_setup_demo_lights(hass)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)

    await voice.say("turn on the bed light", device_id=None)
    assert hass.states.get(BED_LIGHT).state == STATE_ON
    reloaded = await voice.say("turn it off", device_id=None)

    assert reloaded.response["response_type"] == "action_done"
    assert hass.states.get(BED_LIGHT).state == STATE_OFF


@needs_pronouns
async def test_after_a_clear_it_refers_to_nothing(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The satellite still presents Home Assistant's chat session, but the delegate forgot."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, "Kitchen")

    first = await voice.say("turn on the bed light", kitchen)
    await _clear(hass, kitchen)
    after = await voice.say("turn it off", kitchen, first.handed_id)

    assert after.response["response_type"] == "error"
    assert hass.states.get(BED_LIGHT).state == STATE_ON


@needs_pronouns
async def test_after_an_expiry_it_refers_to_nothing(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    freezer: FrozenDateTimeFactory,
) -> None:
    """An hour of silence ends the session, and with it what 'it' was."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client, "Kitchen")

    await voice.say("turn on the bed light", kitchen)
    await _idle(hass, freezer, 61, (voice, hass_ws_client))
    after = await voice.say("turn it off", kitchen)

    assert after.response["response_type"] == "error"
    assert hass.states.get(BED_LIGHT).state == STATE_ON


async def test_an_llm_delegate_sees_each_earlier_turn_once_in_an_unchanging_prompt(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    agent_options: dict[str, Any],
    freezer: FrozenDateTimeFactory,
) -> None:
    """Its chat log holds the earlier turns (past the lapse); the prompt repeats none."""
    agent = ChatLogAgent(hass)
    await async_setup_delegating_to(hass, agent, agent_options)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen")

    await voice.say("my locker number is 42", kitchen)
    await voice.say("and my bike is blue", kitchen)
    await _idle(hass, freezer, 11, (voice, hass_ws_client))
    await voice.say("what do you know about me", kitchen)

    first, second, third = agent.seen
    assert third.messages == [
        ("user", "my locker number is 42"),
        ("assistant", "reply 1"),
        ("user", "and my bike is blue"),
        ("assistant", "reply 2"),
    ]
    assert third.mentions("my locker number is 42") == 1
    assert third.mentions("and my bike is blue") == 1
    assert first.extra_system_prompt == second.extra_system_prompt == third.extra_system_prompt
    # One conversation of its own for the whole session, never the pipeline's id.
    assert first.conversation_id == second.conversation_id == third.conversation_id


async def test_an_llm_delegate_gets_what_it_lacks_after_a_restart_once(
    hass: HomeAssistant, agent_options: dict[str, Any]
) -> None:
    """After a restart its chat log is new: the transcript comes once, the same each turn."""
    entry = await async_setup_delegating_to(hass, ChatLogAgent(hass), agent_options)
    kitchen = make_device(hass, "Kitchen")
    await converse(hass, text="my locker number is 42", device_id=kitchen)
    await hass.async_block_till_done()

    async with async_restarted(hass, entry) as (hass2, entry2):
        agent = ChatLogAgent(hass2)
        await setup_entry(hass2, entry2)
        register_delegate_again(hass2, entry2, agent)
        for text in ("what is my locker number", "and again?"):
            await converse(hass2, text=text, device_id=kitchen)

    first, second = agent.seen
    assert first.mentions("my locker number is 42") == 1
    assert first.extra_system_prompt is not None
    assert "User: my locker number is 42" in first.extra_system_prompt
    assert second.extra_system_prompt == first.extra_system_prompt
    assert second.messages == [("user", "what is my locker number"), ("assistant", "reply 1")]


async def test_after_a_clear_an_llm_delegate_sees_nothing_of_the_old_conversation(
    hass: HomeAssistant, agent_options: dict[str, Any]
) -> None:
    """Neither its chat log nor its instructions hold the cleared conversation."""
    agent = ChatLogAgent(hass)
    await async_setup_delegating_to(hass, agent, agent_options)
    kitchen = make_device(hass, "Kitchen")
    old = await converse(hass, text="my PIN is 1234", device_id=kitchen)
    await _clear(hass, kitchen)
    await converse(hass, old.conversation_id, text="what is my PIN", device_id=kitchen)

    before, after = agent.seen
    assert after.mentions("1234") == 0
    assert after.messages == []
    assert after.conversation_id != before.conversation_id
    # Home Assistant no longer holds the old chat log either.
    with (
        chat_session.async_get_chat_session(hass, before.conversation_id) as session,
        conversation.async_get_chat_log(hass, session) as chat_log,
    ):
        assert [c for c in chat_log.content if c.role != "system"] == []


async def test_a_delegate_that_asks_back_opens_the_microphone_again(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, agent_options: dict[str, Any]
) -> None:
    """The delegate's continue_conversation reaches the pipeline's result."""
    agent = ChatLogAgent(hass, ["Tell me the room."], listen_again=True)
    await async_setup_delegating_to(hass, agent, agent_options)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)

    run = await voice.say("turn on the light", make_device(hass, "Kitchen"))

    assert run.speech == "Tell me the room."
    assert run.continue_conversation is True


async def test_a_streaming_delegate_streams_on_a_turn_with_a_new_id(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    agent_options: dict[str, Any],
    freezer: FrozenDateTimeFactory,
) -> None:
    """After Home Assistant's chat session lapsed, the delegate's words still stream."""
    pieces = [f"piece {n} " for n in range(4)]
    await async_setup_delegating_to(hass, StreamingAgent(hass, pieces, 0), agent_options)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen")

    first = await voice.say("tell me a story", kitchen)
    await _idle(hass, freezer, 11, (voice, hass_ws_client))
    second = await voice.say("tell me another", kitchen)

    assert second.handed_id != first.handed_id
    assert "".join(delta.get("content") or "" for delta in second.deltas) == "".join(pieces)
    assert second.speech == "".join(pieces)
