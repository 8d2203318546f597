"""Session keys: how a turn's device, satellite and user make one, which ids may, and parsing.

A key is `device:<id>`, `satellite:<entity id>`, `user:<id>`, `device:<id>|user:<id>`
(scope `device_user`) or, for a session that belongs to nothing, `conversation:<id>`.
Only devices and satellites Home Assistant knows key a session, and ids are bounded.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

from .const import SessionScope

# Longer ids are not Home Assistant's (device ids are 32, ULIDs 26 characters): a caller
# may not grow the stored keys, sensor ids and events without bound.
MAX_ID_LENGTH = 64
SATELLITE_DOMAIN = "assist_satellite"
# The kinds of owner a key names.
DEVICE = "device"
SATELLITE = "satellite"
USER = "user"


def bounded(value: str | None) -> str | None:
    """Return an id no longer than MAX_ID_LENGTH, else None (treated as no id)."""
    return value if value and len(value) <= MAX_ID_LENGTH else None


@callback
def known_device_id(hass: HomeAssistant, device_id: str | None) -> str | None:
    """Return the device id if the device registry holds it, else None (no device)."""
    if (device_id := bounded(device_id)) is None:
        return None
    return device_id if dr.async_get(hass).async_get(device_id) is not None else None


@callback
def known_satellite_id(hass: HomeAssistant, entity_id: str | None) -> str | None:
    """Return a satellite entity id Home Assistant knows (registry or state), else None."""
    if (entity_id := bounded(entity_id)) is None or not entity_id.startswith(
        f"{SATELLITE_DOMAIN}."
    ):
        return None
    if er.async_get(hass).async_get(entity_id) is None and hass.states.get(entity_id) is None:
        return None
    return entity_id


def session_key_for(
    scope: SessionScope,
    device_id: str | None,
    satellite_id: str | None,
    user_id: str | None,
) -> str | None:
    """Return the key whose session a turn continues, or None to start fresh."""
    device = (
        f"{DEVICE}:{device_id}"
        if device_id
        else f"{SATELLITE}:{satellite_id}"
        if satellite_id
        else None
    )
    user = f"{USER}:{user_id}" if user_id else None
    if scope is SessionScope.DEVICE:
        return device or user
    if scope is SessionScope.USER:
        return user or device
    if scope is SessionScope.DEVICE_USER:
        return "|".join(part for part in (device, user) if part) or None
    return None


def key_parts(session_key: str) -> dict[str, str]:
    """Split a key such as `device:<id>|user:<id>` into its kinds and ids."""
    parts: dict[str, str] = {}
    for part in session_key.split("|"):
        kind, _, value = part.partition(":")
        if kind in (DEVICE, SATELLITE, USER) and value:
            parts[kind] = value
    return parts


def has_owner(session_key: str) -> bool:
    """Tell whether a key belongs to a device, satellite or person (not scope `none`)."""
    return bool(key_parts(session_key))
