"""Describe session events in the logbook: whose conversation, and what happened to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import DOMAIN, EVENT_SESSION_CLEARED, EVENT_SESSION_EXPIRED, EVENT_SESSION_STARTED
from .keys import has_owner
from .owners import key_owner, owner_of, session_sensor_unique_id

# The logbook's keys, spelled out: importing the logbook component pulls in the recorder.
LOGBOOK_ENTRY_NAME = "name"
LOGBOOK_ENTRY_MESSAGE = "message"
LOGBOOK_ENTRY_ENTITY_ID = "entity_id"

MESSAGES = {
    EVENT_SESSION_STARTED: "conversation started",
    EVENT_SESSION_EXPIRED: "conversation expired",
    EVENT_SESSION_CLEARED: "conversation cleared",
}
FALLBACK_NAME = "Home Agent"

type Describer = Callable[[Event], dict[str, Any]]


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Describer], None],
) -> None:
    """Describe the started, expired and cleared events."""

    @callback
    def async_describe(event: Event) -> dict[str, Any]:
        """Say whose conversation it was and what happened, on its session sensor."""
        data = event.data
        description = {
            LOGBOOK_ENTRY_NAME: _who(hass, data),
            LOGBOOK_ENTRY_MESSAGE: MESSAGES[str(event.event_type)],
        }
        if entity_id := _session_sensor(hass, data) or data.get("agent_id"):
            description[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
        return description

    for event_type in MESSAGES:
        async_describe_event(DOMAIN, event_type, async_describe)


def _who(hass: HomeAssistant, data: Any) -> str:
    """Return the device or person the conversation belonged to, else the agent."""
    key = data.get("session_key") or ""
    owner = (
        key_owner(hass, key)
        if has_owner(key)
        else owner_of(hass, data.get("device_id"), data.get("satellite_id"), data.get("user_id"))
    )
    if owner.label:
        return owner.label
    if (agent_id := data.get("agent_id")) and (state := hass.states.get(agent_id)):
        return state.name
    return FALLBACK_NAME


def _session_sensor(hass: HomeAssistant, data: Any) -> str | None:
    """Return the entity id of the key's session sensor, if it has one."""
    key = data.get("session_key") or ""
    entry_id = data.get("entry_id")
    if not entry_id or not has_owner(key):
        return None
    return er.async_get(hass).async_get_entity_id(
        Platform.SENSOR, DOMAIN, session_sensor_unique_id(entry_id, key)
    )
