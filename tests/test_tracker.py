"""Session resolution, life-cycle events and expiry timers, through real conversation turns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import (
    EVENT_HOMEASSISTANT_FINAL_WRITE,
    EVENT_HOMEASSISTANT_STOP,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.home_agent.const import (
    CONF_SESSION_SCOPE,
    EVENT_SESSION_EXPIRED,
    EVENT_SESSION_STARTED,
)

from .helpers import (
    EVENT_KEYS,
    async_add_agent,
    async_advance,
    background_work,
    converse,
    make_device,
    session_of,
    session_of_key,
    sessions_of,
    setup_entry,
    start_session,
)
from .storage_files import stored_sessions

TIMEOUT = timedelta(seconds=3600)
# A 26-character id of the kind Home Assistant's pipeline hands over after its own
# chat session lapsed: unknown to Home Agent.
FRESH_PIPELINE_ID = "01JFRESHPIPE1INEID00000000"


async def test_fresh_ids_from_a_device_continue_its_session(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A satellite gets a fresh id on every wake word; its turns still share one session."""
    started = async_capture_events(hass, EVENT_SESSION_STARTED)
    kitchen = make_device(hass, "Kitchen satellite")

    first = await converse(hass, device_id=kitchen)
    second = await converse(hass, conversation_id=FRESH_PIPELINE_ID, device_id=kitchen)
    third = await converse(hass, conversation_id="01JANOTHERFRESHID000000000", device_id=kitchen)

    assert first.conversation_id == second.conversation_id == third.conversation_id
    session = session_of(setup_integration, first.conversation_id)
    assert session is not None
    assert session.turns == 3
    assert len(session.transcript) == 3
    assert len(started) == 1
    assert set(started[0].data) == EVENT_KEYS
    assert started[0].data["session_key"] == f"device:{kitchen}"
    assert started[0].data["agent_id"] == "conversation.home_agent"
    assert started[0].data["entry_id"] == setup_integration.entry_id
    assert started[0].data["turns"] == 0


async def test_new_session_keeps_the_incoming_id(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Rule 3: a first turn with an id starts the session under that id."""
    result = await converse(
        hass, conversation_id=FRESH_PIPELINE_ID, device_id=make_device(hass, "dev-1")
    )
    assert result.conversation_id == FRESH_PIPELINE_ID


async def test_no_id_and_no_key_gets_a_new_ulid(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Rule 3: without id or key a new ULID is minted; each such turn is its own session."""
    first = await converse(hass)
    second = await converse(hass)
    assert first.conversation_id is not None
    assert len(first.conversation_id) == 26
    assert first.conversation_id != second.conversation_id


async def test_explicit_id_continues_its_session(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Rule 1: passing back an id Home Agent issued continues that session, from anywhere."""
    bedroom = make_device(hass, "dev-bedroom")
    first = await converse(hass, device_id=make_device(hass, "dev-kitchen"))
    again = await converse(hass, first.conversation_id, device_id=bedroom)
    assert again.conversation_id == first.conversation_id
    session = session_of(setup_integration, first.conversation_id)
    assert session is not None
    assert session.turns == 2
    assert session_of_key(setup_integration, f"device:{bedroom}") is None


async def test_devices_are_independent(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Scope `device`: two satellites hold two conversations, even for one user."""
    kitchen = await converse(hass, device_id=make_device(hass, "dev-kitchen"), user_id="user-1")
    bedroom = await converse(hass, device_id=make_device(hass, "dev-bedroom"), user_id="user-1")
    assert kitchen.conversation_id != bedroom.conversation_id


@pytest.mark.parametrize(
    ("scope", "turns", "same"),
    [
        # device → satellite → user: the device wins over the user
        ("device", [("dev-a", "user-1"), ("dev-a", "user-2")], True),
        ("device", [(None, "user-1"), (None, "user-1")], True),
        ("device", [("dev-a", None), ("dev-b", None)], False),
        # user: the person is followed across devices
        ("user", [("dev-a", "user-1"), ("dev-b", "user-1")], True),
        ("user", [("dev-a", "user-1"), ("dev-a", "user-2")], False),
        ("user", [("dev-a", None), ("dev-a", None)], True),
        # device_user: the pair must match
        ("device_user", [("dev-a", "user-1"), ("dev-a", "user-1")], True),
        ("device_user", [("dev-a", "user-1"), ("dev-a", "user-2")], False),
        ("device_user", [("dev-a", "user-1"), ("dev-b", "user-1")], False),
        # none: every interaction starts fresh
        ("none", [("dev-a", "user-1"), ("dev-a", "user-1")], False),
    ],
)
async def test_scopes(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    agent_options: dict[str, Any],
    scope: str,
    turns: list[tuple[str | None, str | None]],
    same: bool,
) -> None:
    """Each scope decides which fresh-id turns share a conversation."""
    hass.config_entries.async_update_entry(
        config_entry, options={**agent_options, CONF_SESSION_SCOPE: scope}
    )
    await setup_entry(hass, config_entry)
    ids = [
        (
            await converse(hass, device_id=device and make_device(hass, device), user_id=user)
        ).conversation_id
        for device, user in turns
    ]
    assert (ids[0] == ids[1]) is same


async def test_scope_none_still_continues_an_explicit_id(
    hass: HomeAssistant, config_entry: MockConfigEntry, agent_options: dict[str, Any]
) -> None:
    """Scope `none`: a caller passing back our id still continues (rule 1)."""
    hass.config_entries.async_update_entry(
        config_entry, options={**agent_options, CONF_SESSION_SCOPE: "none"}
    )
    await setup_entry(hass, config_entry)
    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    second = await converse(hass, first.conversation_id, device_id=make_device(hass, "dev-a"))
    assert second.conversation_id == first.conversation_id
    session = session_of(config_entry, first.conversation_id)
    assert session is not None
    assert session.session_key == f"conversation:{first.conversation_id}"


async def test_two_agents_never_share_sessions(
    hass: HomeAssistant, setup_integration: MockConfigEntry, agent_data: dict[str, Any]
) -> None:
    """Two wake words → two agents → two conversations for the same device."""
    second_entry = await async_add_agent(
        hass, agent_data, setup_integration.options, title="Second agent"
    )
    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    other = await converse(
        hass, device_id=make_device(hass, "dev-a"), agent_id="conversation.second_agent"
    )
    assert first.conversation_id != other.conversation_id
    # The id of one agent's session is unknown to the other: it starts its own.
    assert session_of(second_entry, first.conversation_id) is None
    assert len(sessions_of(setup_integration)) == 1
    assert len(sessions_of(second_entry)) == 1


async def test_expires_exactly_at_the_timeout(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """The session ends when it has been idle for the timeout, not a second earlier."""
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    started_at = dt_util.utcnow()
    first = await converse(hass, device_id=make_device(hass, "dev-a"))

    await async_advance(hass, freezer, TIMEOUT - timedelta(seconds=1))
    assert expired == []
    assert session_of(setup_integration, first.conversation_id) is not None

    await async_advance(hass, freezer, timedelta(seconds=1))
    assert len(expired) == 1
    data = expired[0].data
    assert set(data) == EVENT_KEYS | {"reason"}
    assert data["reason"] == "timeout"
    assert data["conversation_id"] == first.conversation_id
    assert data["turns"] == 1
    assert data["expires_at"] == (started_at + TIMEOUT).isoformat()
    assert session_of(setup_integration, first.conversation_id) is None

    # Time goes on: the event is not repeated, and the next turn starts afresh.
    await async_advance(hass, freezer, TIMEOUT * 3)
    assert len(expired) == 1
    after = await converse(hass, first.conversation_id, device_id=make_device(hass, "dev-a"))
    session = session_of(setup_integration, after.conversation_id)
    assert session is not None
    assert session.turns == 1
    assert len(session.transcript) == 1


async def test_activity_extends_the_session(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Every turn pushes the expiry out to a full timeout from then."""
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    for _ in range(3):
        await async_advance(hass, freezer, TIMEOUT - timedelta(minutes=1))
        result = await converse(hass, device_id=make_device(hass, "dev-a"))
        assert result.conversation_id == first.conversation_id
    assert expired == []
    session = session_of(setup_integration, first.conversation_id)
    assert session is not None
    assert session.expires_at == dt_util.utcnow() + TIMEOUT

    await async_advance(hass, freezer, TIMEOUT)
    assert len(expired) == 1
    assert expired[0].data["turns"] == 4


async def test_satellite_activity_keeps_the_session_alive(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """A satellite that starts listening keeps its device's session from expiring mid-turn."""
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    kitchen = make_device(hass, "Kitchen satellite")
    satellite = "assist_satellite.kitchen"
    er.async_get(hass).async_get_or_create(
        "assist_satellite", "test", "kitchen", device_id=kitchen, suggested_object_id="kitchen"
    )
    first = await converse(hass, device_id=kitchen)

    freezer.tick(TIMEOUT - timedelta(seconds=5))
    async_fire_time_changed(hass)
    hass.states.async_set(satellite, "listening")
    await hass.async_block_till_done()
    freezer.tick(timedelta(seconds=30))
    async_fire_time_changed(hass)
    hass.states.async_set(satellite, "processing")
    await hass.async_block_till_done()
    assert expired == []

    # Idle satellites, or other entities, do not extend anything.
    hass.states.async_set(satellite, "idle")
    hass.states.async_set("sensor.something", "listening")
    await hass.async_block_till_done()
    session = session_of(setup_integration, first.conversation_id)
    assert session is not None
    assert session.turns == 1
    await async_advance(hass, freezer, TIMEOUT)
    assert len(expired) == 1


async def test_satellite_id_keys_a_session(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Without a device, the satellite entity (HA 2025.10+) carries the conversation."""
    first = start_session(
        setup_integration, "01JAAAAAAAAAAAAAAAAAAAAAAA", satellite_id="assist_satellite.den"
    )
    second = start_session(
        setup_integration, "01JBBBBBBBBBBBBBBBBBBBBBBB", satellite_id="assist_satellite.den"
    )
    assert first is second
    assert first.session_key == "satellite:assist_satellite.den"


async def test_unload_leaves_nothing_behind(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Unloading cancels every timer and listener and writes pending changes."""
    await converse(hass, text="what time is it", device_id=make_device(hass, "dev-a"))
    work = background_work(setup_integration)
    assert work.save_pending
    # Satellites are followed through Home Assistant's shared, domain-filtered listener
    # (see test_satellite_tracking_is_filtered_by_domain); these two are our own.
    ours = (EVENT_HOMEASSISTANT_STOP, EVENT_HOMEASSISTANT_FINAL_WRITE)
    before = hass.bus.async_listeners()

    assert await hass.config_entries.async_unload(setup_integration.entry_id)
    await hass.async_block_till_done()

    after = hass.bus.async_listeners()
    assert [after.get(event, 0) for event in ours] == [before[event] - 1 for event in ours]
    assert not work.save_pending
    assert work.expiry_timers == 0
    stored = stored_sessions(hass, setup_integration.entry_id)
    assert len(stored) == 1
    assert stored[0]["transcript"][0][0] == "what time is it"
    # phcc's verify_cleanup fails the test if any timer lingers after this point.
