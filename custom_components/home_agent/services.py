"""The `home_agent.clear_conversation` action."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError, Unauthorized, UnknownUser
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
    if registry_entry is None or registry_entry.platform != DOMAIN:
        raise _invalid("unknown_agent", agent_id=agent_id)
    entry = hass.config_entries.async_get_entry(registry_entry.config_entry_id or "")
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        raise _invalid("agent_not_loaded", agent_id=agent_id)
    return [entry]


async def _async_check_permission(call: ServiceCall, user_id: str | None, clears_all: bool) -> None:
    """Only administrators (or automations) clear everything or someone else's session."""
    caller_id = call.context.user_id
    if caller_id is None or not (clears_all or (user_id is not None and user_id != caller_id)):
        return
    caller = await call.hass.auth.async_get_user(caller_id)
    if caller is None:
        raise UnknownUser(context=call.context)
    if not caller.is_admin:
        raise Unauthorized(context=call.context)


async def _async_clear_conversation(call: ServiceCall) -> ServiceResponse:
    """End the selected sessions and delete their transcripts."""
    hass = call.hass
    data: dict[str, Any] = call.data
    device_id: str | None = data.get(ATTR_DEVICE_ID)
    user_id: str | None = data.get(ATTR_USER_ID)
    conversation_id: str | None = data.get(ATTR_CONVERSATION_ID)
    clears_all = device_id is None and user_id is None and conversation_id is None
    await _async_check_permission(call, user_id, clears_all)

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

    cleared = 0
    for entry, sessions in selected:
        cleared += await entry.runtime_data.tracker.async_clear(
            sessions, CLEAR_REASON, call.context
        )
    return {"cleared": cleared} if call.return_response else None
