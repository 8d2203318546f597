"""Who a session key belongs to: the device, satellite or person, by display name."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, PERSON_DOMAIN
from .keys import DEVICE, SATELLITE, USER, key_parts

ATTR_USER_ID = "user_id"
# Account names need an awaited lookup; remembered here for synchronous callers (the logbook).
_USER_NAMES: HassKey[dict[str, str]] = HassKey(f"{DOMAIN}_user_names")


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """The display names behind a session key."""

    device: str | None = None
    user: str | None = None

    @property
    def label(self) -> str:
        """Return one name for the owner, e.g. `Kitchen satellite (Anna)`."""
        if self.device and self.user:
            return f"{self.device} ({self.user})"
        return self.device or self.user or ""


def session_sensor_unique_id(entry_id: str, session_key: str) -> str:
    """Return the unique id of a key's session sensor (the key is recovered from it)."""
    return f"{entry_id}_{session_key}"


@callback
def key_owner(hass: HomeAssistant, session_key: str) -> KeyOwner:
    """Return the display names behind a key, from the registries and persons."""
    parts = key_parts(session_key)
    return owner_of(hass, parts.get(DEVICE), parts.get(SATELLITE), parts.get(USER))


@callback
def owner_of(
    hass: HomeAssistant, device_id: str | None, satellite_id: str | None, user_id: str | None
) -> KeyOwner:
    """Return the display names of a device (or satellite) and a person."""
    device: str | None = None
    if device_id:
        device = device_name(hass, device_id)
    elif satellite_id:
        device = satellite_name(hass, satellite_id)
    return KeyOwner(device=device, user=user_name(hass, user_id) if user_id else None)


async def async_remember_user_names(hass: HomeAssistant, session_keys: list[str]) -> None:
    """Look up the name of each account the keys name, once (see `key_owner`)."""
    users = {user for key in session_keys if (user := key_parts(key).get(USER))}
    for user_id in users:
        await async_remember_user_name(hass, user_id)


async def async_remember_user_name(hass: HomeAssistant, user_id: str) -> None:
    """Look up an account's name once, for callers that cannot await."""
    names = hass.data.setdefault(_USER_NAMES, {})
    if user_id not in names and (user := await hass.auth.async_get_user(user_id)):
        names[user_id] = user.name or user_id


@callback
def device_name(hass: HomeAssistant, device_id: str) -> str:
    """Return the name a device is shown with (the user's rename first)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return device_id
    return device.name_by_user or device.name or device_id


@callback
def satellite_name(hass: HomeAssistant, entity_id: str) -> str:
    """Return the name a satellite entity is shown with."""
    if (state := hass.states.get(entity_id)) is not None:
        return state.name
    entry = er.async_get(hass).async_get(entity_id)
    if entry is not None and (name := entry.name or entry.original_name):
        return name
    return entity_id


@callback
def user_name(hass: HomeAssistant, user_id: str) -> str:
    """Return the person's name for an account, else the account's name."""
    if (person := person_of_user(hass, user_id)) is not None and (
        state := hass.states.get(person)
    ) is not None:
        return state.name
    return hass.data.get(_USER_NAMES, {}).get(user_id, user_id)


@callback
def person_of_user(hass: HomeAssistant, user_id: str | None) -> str | None:
    """Return the person entity linked to a user, or None (no user, or no person)."""
    if not user_id:
        return None
    return next(
        (
            state.entity_id
            for state in hass.states.async_all(PERSON_DOMAIN)
            if state.attributes.get(ATTR_USER_ID) == user_id
        ),
        None,
    )
