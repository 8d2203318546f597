"""The `home_agent.clear_conversation` action."""

from __future__ import annotations

from typing import Any

from homeassistant.auth.models import User
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError, UnknownUser
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
)
import voluptuous as vol

from .const import DOMAIN, SERVICE_CLEAR_CONVERSATION
from .data import HomeAgentConfigEntry
from .session import Session

ATTR_AGENT_ID = "agent_id"
ATTR_DEVICE_ID = "device_id"
ATTR_USER_ID = "user_id"
ATTR_CONVERSATION_ID = "conversation_id"
CLEAR_REASON = "service"

CLEAR_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_AGENT_ID): cv.entity_id,
        vol.Optional(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_USER_ID): cv.string,
        vol.Optional(ATTR_CONVERSATION_ID): cv.string,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_CLEAR_CONVERSATION,
        _async_clear_conversation,
        schema=CLEAR_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    """Return a translated validation error."""
    return ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


def _agents(hass: HomeAssistant, agent_id: str | None) -> list[HomeAgentConfigEntry]:
    """Return the loaded agents an action applies to."""
    if agent_id is None:
        return [
            entry
            for entry in hass.config_entries.async_entries(DOMAIN)
            if entry.state is ConfigEntryState.LOADED
        ]
    registry_entry = er.async_get(hass).async_get(agent_id)
    if (
        registry_entry is None
        or registry_entry.platform != DOMAIN
        or registry_entry.domain != Platform.CONVERSATION
    ):
        raise _invalid("unknown_agent", agent_id=agent_id)
    entry = hass.config_entries.async_get_entry(registry_entry.config_entry_id or "")
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        raise _invalid("agent_not_loaded", agent_id=agent_id)
    return [entry]


async def _async_caller(call: ServiceCall) -> User | None:
    """Return the person calling, or None for automations, scripts and the system."""
    if call.context.user_id is None:
        return None
    caller = await call.hass.auth.async_get_user(call.context.user_id)
    if caller is None:
        raise UnknownUser(context=call.context)
    return caller


def _may_clear(session: Session, user_id: str) -> bool:
    """Tell whether a non-admin may clear a session no other signed-in person took part in.

    Their own (they are its only participant), or a device's or satellite's that nobody
    else signed in took part in (anyone at a satellite may end its session). A session
    with neither device nor person (an automation's) needs an administrator.
    """
    if any(participant != user_id for participant in session.participants):
        return False
    return bool(session.participants) or bool(session.device_id or session.satellite_id)


def _not_allowed() -> ServiceValidationError:
    """Return the refusal a non-admin gets: a translated, expected error (no traceback)."""
    return _invalid("not_allowed")


async def _async_clear_conversation(call: ServiceCall) -> ServiceResponse:
    """End the selected sessions and delete their transcripts."""
    hass = call.hass
    data: dict[str, Any] = call.data
    device_id: str | None = data.get(ATTR_DEVICE_ID)
    user_id: str | None = data.get(ATTR_USER_ID)
    conversation_id: str | None = data.get(ATTR_CONVERSATION_ID)
    # Only administrators (or automations) clear everything or someone else's session.
    caller = await _async_caller(call)
    non_admin = None if caller is None or caller.is_admin else caller.id
    clears_all = device_id is None and user_id is None and conversation_id is None
    if non_admin is not None and (clears_all or user_id not in (None, non_admin)):
        raise _not_allowed()

    agents = _agents(hass, data.get(ATTR_AGENT_ID))
    if device_id is not None and dr.async_get(hass).async_get(device_id) is None:
        raise _invalid("unknown_device", device_id=device_id)
    if user_id is not None and await hass.auth.async_get_user(user_id) is None:
        raise _invalid("unknown_user", user_id=user_id)

    selected: list[tuple[HomeAgentConfigEntry, list[Session]]] = [
        (
            entry,
            entry.runtime_data.tracker.matching(
                device_id=device_id, user_id=user_id, conversation_id=conversation_id
            ),
        )
        for entry in agents
    ]
    if conversation_id is not None and not any(sessions for _, sessions in selected):
        raise _invalid("unknown_conversation", conversation_id=conversation_id)
    if non_admin is not None and not all(
        _may_clear(session, non_admin) for _, sessions in selected for session in sessions
    ):
        raise _not_allowed()

    cleared = 0
    for entry, sessions in selected:
        cleared += await entry.runtime_data.tracker.async_clear(
            sessions, CLEAR_REASON, call.context
        )
    return {"cleared": cleared} if call.return_response else None
