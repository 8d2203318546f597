"""A session belongs to the people in it: nobody reaches another person's conversation."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import MockHAClientWebSocket, WebSocketGenerator

from custom_components.home_agent.compat import async_converse
from custom_components.home_agent.const import CONF_SESSION_SCOPE

from .helpers import (
    AGENT_ENTITY_ID,
    converse,
    make_device,
    session_of,
    sessions_of,
    setup_entry,
    start_session,
)
from .pipeline_runs import async_run_text, async_voice

# Understood by the built-in agent, so each exchange is remembered in the transcript.
ADMINS_WORDS = "what is the date today"
INTRUDERS_WORDS = "what time is it"
COUNT = "sensor.home_agent_active_conversations"


async def ws_converse(
    client: MockHAClientWebSocket, text: str, conversation_id: str | None = None
) -> dict[str, Any]:
    """Send a turn the way the frontend's Assist dialog does; return the result."""
    await client.send_json_auto_id(
        {
            "type": "conversation/process",
            "text": text,
            "agent_id": AGENT_ENTITY_ID,
            "conversation_id": conversation_id,
            "language": "en",
        }
    )
    message = await client.receive_json()
    assert message["success"], message
    result: dict[str, Any] = message["result"]
    return result


def all_states_text(hass: HomeAssistant) -> str:
    """Return every entity state and attribute, as any signed-in user can read them."""
    return json.dumps([state.as_dict() for state in hass.states.async_all()], default=str)


@pytest.mark.parametrize("scope", ["device", "user", "device_user", "none"])
async def test_a_non_admin_cannot_join_another_persons_conversation_by_its_id(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    agent_options: dict[str, Any],
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
    scope: str,
) -> None:
    """The intruder gets a conversation of their own; neither transcript holds the other's words."""
    hass.config_entries.async_update_entry(
        config_entry, options={**agent_options, CONF_SESSION_SCOPE: scope}
    )
    await setup_entry(hass, config_entry)
    admin = await hass_ws_client(hass)
    intruder = await hass_ws_client(hass, hass_read_only_access_token)
    admins = await ws_converse(admin, ADMINS_WORDS)
    admins_id = admins["conversation_id"]

    stolen = await ws_converse(intruder, INTRUDERS_WORDS, admins_id)

    assert stolen["conversation_id"] != admins_id
    admins_session = session_of(config_entry, admins_id)
    assert admins_session is not None
    assert admins_session.turns == 1
    assert [e.user for e in admins_session.transcript] == [ADMINS_WORDS]
    intruders_session = session_of(config_entry, stolen["conversation_id"])
    assert intruders_session is not None
    assert intruders_session.user_id == hass_read_only_user.id
    assert [e.user for e in intruders_session.transcript] == [INTRUDERS_WORDS]
    # The administrator carries on undisturbed, by id.
    again = await ws_converse(admin, INTRUDERS_WORDS, admins_id)
    assert again["conversation_id"] == admins_id
    assert admins_session.user_id == hass_admin_user.id
    assert admins_session.turns == 2


async def test_own_id_and_turns_without_a_user_still_continue(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
) -> None:
    """A person continues their own conversation by id; an automation continues anyone's."""
    client = await hass_ws_client(hass, hass_read_only_access_token)
    first = await ws_converse(client, ADMINS_WORDS)
    second = await ws_converse(client, INTRUDERS_WORDS, first["conversation_id"])
    by_automation = await converse(hass, first["conversation_id"], text=INTRUDERS_WORDS)

    assert first["conversation_id"] == second["conversation_id"] == by_automation.conversation_id
    session = session_of(setup_integration, first["conversation_id"])
    assert session is not None
    assert session.turns == 3


async def test_no_entity_hands_out_conversation_ids(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
) -> None:
    """Entity attributes are visible to every user: no conversation id in any of them."""
    kitchen = make_device(hass, "Kitchen satellite")
    satellite = await converse(hass, device_id=kitchen)
    admins = await converse(hass, user_id=hass_admin_user.id)
    await hass.async_block_till_done()

    automation = await converse(hass)  # no device, no user: a conversation of its own
    await hass.async_block_till_done()

    everything = all_states_text(hass)
    for private in (
        satellite.conversation_id,
        admins.conversation_id,
        automation.conversation_id,
        hass_admin_user.id,
    ):
        assert private not in everything
    listed = hass.states.get(COUNT).attributes["sessions"]
    assert {summary["belongs_to"] for summary in listed} == {
        "Kitchen satellite",
        hass_admin_user.name,
        None,
    }
    assert {frozenset(summary) for summary in listed} == {
        frozenset(
            {
                "belongs_to",
                "device_id",
                "satellite_id",
                "turns",
                "started_at",
                "last_activity",
                "expires_at",
            }
        )
    }


async def test_the_count_sensor_stays_small_with_thousands_of_sessions(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """5,000 sessions: the count is right, the attributes list the 20 latest in a few KiB."""
    for n in range(5000):
        start_session(setup_integration, f"automation-{n:05d}")
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    state = hass.states.get(COUNT)
    assert state.state == "5001"
    listed = state.attributes["sessions"]
    assert len(listed) == 20
    assert listed[0]["belongs_to"] == "Kitchen satellite"
    size = len(json.dumps(state.as_dict(), default=str))
    assert size < 8 * 1024, size


async def test_made_up_device_ids_make_no_session_sensors(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
) -> None:
    """31 pipeline runs with invented device ids (one 400 characters long): no device sensors."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    registry = er.async_get(hass)

    def session_sensors() -> list[str]:
        return [
            entry.unique_id
            for entry in er.async_entries_for_config_entry(registry, setup_integration.entry_id)
            if entry.domain == Platform.SENSOR and ":" in entry.unique_id  # keyed by a session
        ]

    invented = [f"made-up-device-{n}" for n in range(30)] + ["x" * 400]
    runs = [
        await async_run_text(voice.client, voice.pipeline_id, INTRUDERS_WORDS, device_id=device)
        for device in invented
    ]
    await hass.async_block_till_done()

    # Like no device at all: the turns follow the signed-in person (one conversation).
    assert len({run.conversation_id for run in runs}) == 1
    assert session_sensors() == [f"{setup_integration.entry_id}_user:{hass_admin_user.id}"]
    stored = json.dumps([s.public_data() for s in sessions_of(setup_integration)])
    assert not any(device in stored for device in invented)
    # A real satellite still gets its sensor.
    kitchen = make_device(hass, "Kitchen satellite")
    await voice.say(INTRUDERS_WORDS, kitchen)
    await hass.async_block_till_done()
    assert f"{setup_integration.entry_id}_device:{kitchen}" in session_sensors()


async def test_unknown_satellites_and_overlong_ids_key_nothing(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A satellite Home Assistant does not know, or a 400-character id, is no key and no id."""
    long_id = "c" * 400
    turn = await converse(hass, long_id, device_id="d" * 400)
    # Home Assistant 2025.10+ passes the satellite entity; older versions drop it here.
    ghost = await async_converse(
        hass,
        text=INTRUDERS_WORDS,
        conversation_id=None,
        context=Context(),
        agent_id=AGENT_ENTITY_ID,
        satellite_id="assist_satellite.nowhere",
    )

    assert turn.conversation_id != long_id
    assert len(turn.conversation_id) == 26
    for result in (turn, ghost):
        session = session_of(setup_integration, result.conversation_id)
        assert session is not None
        assert session.device_id is None
        assert session.satellite_id is None
        assert session.session_key == f"conversation:{result.conversation_id}"
