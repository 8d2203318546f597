"""Which ids may key a session: only devices and satellites Home Assistant knows, bounded."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er

# Longer ids are not Home Assistant's (device ids are 32, ULIDs 26 characters): a caller
# may not grow the stored keys, sensor ids and events without bound.
MAX_ID_LENGTH = 64
SATELLITE_DOMAIN = "assist_satellite"


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
