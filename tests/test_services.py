"""The `home_agent.clear_conversation` action, called by real users and automations."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.auth.const import GROUP_ID_USER
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, UnknownUser
from homeassistant.helpers import icon, translation
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_SESSION_SCOPE,
    DOMAIN,
    EVENT_SESSION_CLEARED,
    SAVE_DELAY,
)

from . import storage_files
from .helpers import (
    AGENT_ENTITY_ID,
    EVENT_KEYS,
    async_advance,
    async_restarted,
    conversation_ids,
    converse,
    make_device,
    session_of,
    sessions_of,
    setup_entry,
)

SECRET = "what is the date today"  # understood by the built-in agent, so it is remembered
STORED_ID = "01JSTORED00000000000000000"


async def clear(
    hass: HomeAssistant, user: MockUser | None = None, **data: Any
) -> dict[str, Any] | None:
    """Call the action as `user` (None: an automation) and return its response."""
    response = await hass.services.async_call(
        DOMAIN,
        "clear_conversation",
        data,
        blocking=True,
        context=Context(user_id=user.id if user else None),
        return_response=True,
    )
    return dict(response) if response is not None else None


def stored_text(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """Return the agent's storage files as text, as they are on disk."""
    return storage_files.stored_text(hass, entry.entry_id)


async def test_clearing_a_device_ends_its_session_and_forgets_what_was_said(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The session ends, its transcript leaves the disk, the event tells who and why."""
    kitchen = make_device(hass, "Kitchen satellite")
    bedroom = make_device(hass, "Bedroom satellite")
    first = await converse(hass, text=SECRET, device_id=kitchen)
    await converse(hass, device_id=bedroom)
    await async_advance(hass, freezer, timedelta(seconds=SAVE_DELAY))
    assert SECRET in stored_text(hass, setup_integration)
    cleared = async_capture_events(hass, EVENT_SESSION_CLEARED)

    assert await clear(hass, hass_admin_user, device_id=kitchen) == {"cleared": 1}
    await hass.async_block_till_done()

    assert SECRET not in stored_text(hass, setup_integration)
    assert len(cleared) == 1
    assert set(cleared[0].data) == EVENT_KEYS | {"reason"}
    assert cleared[0].data["conversation_id"] == first.conversation_id
    assert cleared[0].data["device_id"] == kitchen
    assert cleared[0].data["agent_id"] == AGENT_ENTITY_ID
    assert cleared[0].data["reason"] == "service"
    assert cleared[0].context.user_id == hass_admin_user.id
    assert hass.states.get("sensor.home_agent_kitchen_satellite_conversation").state == "idle"
    assert hass.states.get("sensor.home_agent_bedroom_satellite_conversation").state == "active"
    assert hass.states.get("sensor.home_agent_active_conversations").state == "1"
    again = await converse(hass, device_id=kitchen)
    assert again.conversation_id != first.conversation_id
    assert session_of(setup_integration, again.conversation_id).turns == 1


async def test_response_is_optional(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Called without asking for a response, the action still clears."""
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)

    result = await hass.services.async_call(
        DOMAIN, "clear_conversation", {"device_id": kitchen}, blocking=True
    )

    assert result is None
    assert sessions_of(setup_integration) == []


async def test_non_admin_may_clear_a_device(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """Anyone may reset a satellite's conversation; not one another person is part of."""
    kitchen = make_device(hass, "Kitchen satellite")
    study = make_device(hass, "Study tablet")
    await converse(hass, device_id=kitchen)
    admins = await converse(hass, device_id=study, user_id=hass_admin_user.id)

    assert await clear(hass, hass_read_only_user, device_id=kitchen) == {"cleared": 1}
    with pytest.raises(ServiceValidationError) as err:
        await clear(hass, hass_read_only_user, device_id=study)
    assert err.value.translation_key == "not_allowed"
    assert conversation_ids(setup_integration) == [admins.conversation_id]


@pytest.mark.parametrize("how", ["at the device", "by its id"])
async def test_non_admin_may_not_clear_a_device_conversation_an_admin_took_part_in(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    how: str,
) -> None:
    """A satellite's conversation an administrator continued is no longer only the device's.

    The administrator speaks at the device signed in, or continues it in the Assist
    dialog by its conversation id; either way the refusal changes nothing.
    """
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text=SECRET, device_id=kitchen)
    if how == "at the device":
        joined = await converse(hass, device_id=kitchen, user_id=hass_admin_user.id)
    else:
        joined = await converse(hass, first.conversation_id, user_id=hass_admin_user.id)
    assert joined.conversation_id == first.conversation_id

    for data in ({"device_id": kitchen}, {"conversation_id": first.conversation_id}):
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass, hass_read_only_user, **data)
        assert err.value.translation_key == "not_allowed"
    session = session_of(setup_integration, first.conversation_id)
    assert session is not None
    assert session.turns == 2
    assert await clear(hass, hass_admin_user, device_id=kitchen) == {"cleared": 1}


async def test_non_admin_may_clear_a_device_conversation_only_they_took_part_in(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_read_only_user: MockUser
) -> None:
    """Taking part in a satellite's conversation oneself does not lock oneself out."""
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, device_id=kitchen)
    await converse(hass, device_id=kitchen, user_id=hass_read_only_user.id)

    assert await clear(hass, hass_read_only_user, conversation_id=first.conversation_id) == {
        "cleared": 1
    }


async def test_who_took_part_is_remembered_across_a_restart(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    """After a restart a non-admin still cannot clear what an administrator took part in."""
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text=SECRET, device_id=kitchen)
    await converse(hass, device_id=kitchen, user_id=hass_admin_user.id)

    async with async_restarted(hass, setup_integration) as (hass2, entry):
        await setup_entry(hass2, entry)
        await hass2.auth.async_create_user("Owner")  # the first user is the owner
        guest = await hass2.auth.async_create_user("Guest", group_ids=[GROUP_ID_USER])
        assert not guest.is_admin
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass2, guest, conversation_id=first.conversation_id)
        assert err.value.translation_key == "not_allowed"
        assert session_of(entry, first.conversation_id) is not None
        assert await clear(hass2, None, conversation_id=first.conversation_id) == {"cleared": 1}


@pytest.mark.parametrize(("starter", "cleared"), [("admin", None), ("non_admin", 1)])
async def test_a_stored_session_counts_the_user_who_started_it_as_taking_part(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    starter: str,
    cleared: int | None,
) -> None:
    """A file of the release before (no participants recorded) keeps the rule."""
    kitchen = make_device(hass, "Kitchen satellite")
    user = hass_admin_user if starter == "admin" else hass_read_only_user
    recent = dt_util.utcnow().isoformat()
    record = storage_files.v1_record(STORED_ID, f"device:{kitchen}", recent, [["q", "a"]])
    storage_files.write_v1(hass, config_entry.entry_id, [{**record, "user_id": user.id}])
    await setup_entry(hass, config_entry)

    if cleared is None:
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass, hass_read_only_user, device_id=kitchen)
        assert err.value.translation_key == "not_allowed"
        assert session_of(config_entry, STORED_ID) is not None
    else:
        assert await clear(hass, hass_read_only_user, device_id=kitchen) == {"cleared": 1}


async def test_non_admin_may_not_clear_everything(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_read_only_user: MockUser
) -> None:
    """Clearing every conversation (of all agents or of one) needs an administrator."""
    await converse(hass, device_id=make_device(hass, "Kitchen satellite"))

    for data in ({}, {"agent_id": AGENT_ENTITY_ID}):
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass, hass_read_only_user, **data)
        assert err.value.translation_key == "not_allowed"

    assert len(sessions_of(setup_integration)) == 1


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "user"}])
async def test_non_admin_may_not_clear_another_persons_conversation(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """Neither by naming the person nor by the conversation's id."""
    admins = await converse(hass, user_id=hass_admin_user.id)

    for data in ({"user_id": hass_admin_user.id}, {"conversation_id": admins.conversation_id}):
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass, hass_read_only_user, **data)
        assert err.value.translation_key == "not_allowed"

    assert conversation_ids(setup_integration) == [admins.conversation_id]


@pytest.mark.parametrize("agent_options", [{CONF_SESSION_SCOPE: "user"}])
async def test_non_admin_may_clear_their_own_conversation(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """A person resets the conversation that follows them; others keep theirs."""
    await converse(hass, user_id=hass_read_only_user.id)
    admins = await converse(hass, user_id=hass_admin_user.id)

    assert await clear(hass, hass_read_only_user, user_id=hass_read_only_user.id) == {"cleared": 1}
    own = await converse(hass, user_id=hass_read_only_user.id)
    assert await clear(hass, hass_read_only_user, conversation_id=own.conversation_id) == {
        "cleared": 1
    }
    assert conversation_ids(setup_integration) == [admins.conversation_id]


async def test_admin_and_automation_may_clear_everything(
    hass: HomeAssistant, setup_integration: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    """Without fields every conversation ends: for an administrator and for automations."""
    await converse(hass, device_id=make_device(hass, "Kitchen satellite"))
    await converse(hass, device_id=make_device(hass, "Bedroom satellite"))

    assert await clear(hass, hass_admin_user) == {"cleared": 2}
    await converse(hass, device_id=make_device(hass, "Hall satellite"))
    assert await clear(hass) == {"cleared": 1}
    assert await clear(hass) == {"cleared": 0}


async def test_agent_field_limits_the_clear_to_one_agent(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Two agents (two wake words) on one satellite: clearing one leaves the other."""
    second = MockConfigEntry(domain=DOMAIN, title="Night agent", data=setup_integration.data)
    second.add_to_hass(hass)
    await setup_entry(hass, second)
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    await converse(hass, device_id=kitchen, agent_id="conversation.night_agent")

    assert await clear(hass, device_id=kitchen, agent_id="conversation.night_agent") == {
        "cleared": 1
    }
    assert sessions_of(second) == []
    assert len(sessions_of(setup_integration)) == 1
    assert await clear(hass, device_id=kitchen) == {"cleared": 1}


@pytest.mark.parametrize(
    ("data", "translation_key", "message"),
    [
        (
            {"device_id": "no-such-device"},
            "unknown_device",
            "There is no device with the ID no-such-device",
        ),
        (
            {"user_id": "no-such-user"},
            "unknown_user",
            "There is no user with the ID no-such-user",
        ),
        (
            {"agent_id": "conversation.home_assistant"},
            "unknown_agent",
            "conversation.home_assistant is not a Home Agent conversation agent",
        ),
        (
            {"agent_id": "sensor.home_agent_active_conversations"},
            "unknown_agent",
            "sensor.home_agent_active_conversations is not a Home Agent conversation agent",
        ),
        (
            {"conversation_id": "01JNOSUCHCONVERSATION00000"},
            "unknown_conversation",
            "There is no active conversation with the ID 01JNOSUCHCONVERSATION00000",
        ),
    ],
)
async def test_unknown_ids_are_translated_validation_errors(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    data: dict[str, str],
    translation_key: str,
    message: str,
) -> None:
    """A wrong id says what is wrong, in the user's language, and clears nothing."""
    await converse(hass, device_id=make_device(hass, "Kitchen satellite"))

    with pytest.raises(ServiceValidationError) as err:
        await clear(hass, hass_admin_user, **data)

    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == translation_key
    # Home Assistant drops the message's final full stop.
    assert str(err.value) == message
    assert len(sessions_of(setup_integration)) == 1


async def test_unloaded_agent_is_a_validation_error(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The action stays registered without a loaded agent; naming one says it is not loaded."""
    assert await hass.config_entries.async_unload(setup_integration.entry_id)

    assert await clear(hass) == {"cleared": 0}
    with pytest.raises(ServiceValidationError) as err:
        await clear(hass, agent_id=AGENT_ENTITY_ID)
    assert err.value.translation_key == "agent_not_loaded"


async def test_unknown_caller_is_refused(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A context naming a user that does not exist is not treated as an automation."""
    with pytest.raises(UnknownUser):
        await hass.services.async_call(
            DOMAIN,
            "clear_conversation",
            {"device_id": make_device(hass, "Kitchen satellite")},
            blocking=True,
            context=Context(user_id="deleted-user"),
        )


async def test_action_description_has_selectors(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """The action editor offers an agent picker, a device picker and text fields."""
    description = (await async_get_all_descriptions(hass))[DOMAIN]["clear_conversation"]

    fields = description["fields"]
    assert set(fields) == {"agent_id", "device_id", "user_id", "conversation_id"}
    # Newer Home Assistant fills in the selectors' defaults; compare what we set.
    (agent_filter,) = fields["agent_id"]["selector"]["entity"]["filter"]
    assert agent_filter["integration"] == DOMAIN
    assert agent_filter["domain"] in ("conversation", ["conversation"])
    assert set(fields["device_id"]["selector"]) == {"device"}
    assert set(fields["user_id"]["selector"]) == {"text"}
    assert set(fields["conversation_id"]["selector"]) == {"text"}
    assert not any(field.get("required") for field in fields.values())
    strings = await translation.async_get_translations(hass, "en", "services", [DOMAIN])
    prefix = f"component.{DOMAIN}.services.clear_conversation"
    assert strings[f"{prefix}.name"] == "Clear conversation"
    for field in fields:
        assert strings[f"{prefix}.fields.{field}.name"]
        assert strings[f"{prefix}.fields.{field}.description"]
    icons = await icon.async_get_icons(hass, "services", [DOMAIN])
    assert icons[DOMAIN]["clear_conversation"] == {"service": "mdi:chat-remove"}


# Who may clear what, in every scope: (selector, whose session, caller, expected).
# "admins": the administrator's session on the study tablet; "own": the caller's on the
# bedroom satellite; "device": the kitchen satellite's, nobody signed in.
PERMISSION_CASES = [
    ("device_id", "admins", "non_admin", None),
    ("device_id", "own", "non_admin", 1),
    ("device_id", "device", "non_admin", 1),
    ("device_id", "admins", "admin", 1),
    ("user_id", "admins", "non_admin", None),
    ("user_id", "own", "non_admin", 1),
    ("user_id", "own", "admin", 1),
    ("conversation_id", "admins", "non_admin", None),
    ("conversation_id", "own", "non_admin", 1),
    ("conversation_id", "device", "non_admin", 1),
    ("conversation_id", "admins", "admin", 1),
    (None, None, "non_admin", None),
    (None, None, "admin", 3),
]


@pytest.mark.parametrize("scope", ["device", "user", "device_user", "none"])
@pytest.mark.parametrize(("selector", "whose", "caller", "cleared"), PERMISSION_CASES)
async def test_who_may_clear_what_in_every_scope(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    agent_options: dict[str, Any],
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
    scope: str,
    selector: str | None,
    whose: str | None,
    caller: str,
    cleared: int | None,
) -> None:
    """A non-admin clears their own sessions and userless devices' only; refusals clear nothing."""
    hass.config_entries.async_update_entry(
        config_entry, options={**agent_options, CONF_SESSION_SCOPE: scope}
    )
    await setup_entry(hass, config_entry)
    devices = {
        "admins": make_device(hass, "Study tablet"),
        "own": make_device(hass, "Bedroom satellite"),
        "device": make_device(hass, "Kitchen satellite"),
    }
    users = {"admins": hass_admin_user.id, "own": hass_read_only_user.id, "device": None}
    ids = {
        name: (
            await converse(hass, text=SECRET, device_id=devices[name], user_id=users[name])
        ).conversation_id
        for name in devices
    }
    data: dict[str, Any] = {}
    if selector == "device_id":
        data = {"device_id": devices[whose]}
    elif selector == "user_id":
        data = {"user_id": users[whose]}
    elif selector == "conversation_id":
        data = {"conversation_id": ids[whose]}
    user = hass_admin_user if caller == "admin" else hass_read_only_user

    if cleared is None:
        with pytest.raises(ServiceValidationError) as err:
            await clear(hass, user, **data)
        assert err.value.translation_domain == DOMAIN
        assert err.value.translation_key == "not_allowed"
        assert str(err.value).startswith("Only an administrator can clear")
        assert len(sessions_of(config_entry)) == 3
    else:
        assert await clear(hass, user, **data) == {"cleared": cleared}
        left = {s.conversation_id for s in sessions_of(config_entry)}
        assert left == set(ids.values()) - ({ids[whose]} if whose else set(ids.values()))


async def test_a_refusal_reaches_a_non_admin_translated_and_logs_no_traceback(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over the websocket, as the frontend calls it: a translated message, no stack trace."""
    study = make_device(hass, "Study tablet")
    await converse(hass, device_id=study, user_id=hass_admin_user.id)
    client = await hass_ws_client(hass, hass_read_only_access_token)

    await client.send_json_auto_id(
        {
            "type": "call_service",
            "domain": DOMAIN,
            "service": "clear_conversation",
            "service_data": {"device_id": study},
            "return_response": True,
        }
    )
    message = await client.receive_json()

    assert not message["success"]
    error = message["error"]
    assert error["code"] == "service_validation_error"
    assert error["translation_domain"] == DOMAIN
    assert error["translation_key"] == "not_allowed"
    assert "Only an administrator can clear" in error["message"]
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and (r.exc_info or "Unexpected" in r.getMessage())
    ]
    assert len(sessions_of(setup_integration)) == 1
