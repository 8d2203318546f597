"""Session sensors: how many conversations are active, and one per satellite, device or person."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
import heapq
from operator import attrgetter
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .const import LOGGER
from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .keys import has_owner
from .memory_sensor import MemoriesSensor
from .metric_sensors import metric_sensors
from .owners import (
    KeyOwner,
    async_remember_user_names,
    key_owner,
    session_sensor_unique_id,
)
from .session import Session
from .tracker import SessionChange, SessionListener

PARALLEL_UPDATES = 0

STATE_ACTIVE = "active"
STATE_IDLE = "idle"
ATTR_SESSIONS = "sessions"
# What a key's sensor shows of its (last) session; never the transcript.
SESSION_ATTRIBUTES = ("turns", "started_at", "last_activity", "expires_at")
# What the count sensor lists per session, for the most recently active ones only: whose
# it is by name (never a conversation or user id: every user sees attributes).
ATTR_BELONGS_TO = "belongs_to"
LISTED_ATTRIBUTES = ("device_id", "satellite_id", *SESSION_ATTRIBUTES)
MAX_LISTED_SESSIONS = 20
# The most session sensors an agent shows (Home Assistant 2026.x adds at most 10,000 enabled
# entities per config entry, and only logs past that): keys beyond get none, and the count
# sensor still counts their sessions.
MAX_KEY_SENSORS = 5000
# Key sensors added per event-loop iteration: adding one takes Home Assistant about half a
# millisecond, so thousands of keys are added in steps that never hold the loop for long.
SENSOR_BATCH = 50

ACTIVE_SESSIONS = SensorEntityDescription(
    key="active_sessions",
    translation_key="active_sessions",
    state_class=SensorStateClass.MEASUREMENT,
)
SESSION = SensorEntityDescription(
    key="session",
    translation_key="session",
    device_class=SensorDeviceClass.ENUM,
    options=[STATE_ACTIVE, STATE_IDLE],
)
# A key of scope `device_user` names both the device and the person.
DEVICE_USER_SESSION_KEY = "device_user_session"


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeAgentConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add the count sensor and the session sensors of every known key."""
    tracker = entry.runtime_data.tracker
    key_sensors = KeySessionSensors(hass, entry, async_add_entities)
    entry.async_on_unload(tracker.async_add_listener(key_sensors.async_session_changed))
    async_add_entities([ActiveSessionsSensor(entry), *metric_sensors(entry)])
    if (notes := entry.runtime_data.notes) is not None:
        async_add_entities([MemoriesSensor(entry, notes.notebook)])
    # Keys seen before a restart still have their sensor, idle until used again.
    prefix = session_sensor_unique_id(entry.entry_id, "")
    registered = [
        registry_entry.unique_id.removeprefix(prefix)
        for registry_entry in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if registry_entry.domain == Platform.SENSOR and registry_entry.unique_id.startswith(prefix)
    ]
    await key_sensors.async_add_keys(
        [*registered, *(session.session_key for session in tracker.sessions)]
    )


def _shown(session: Session, names: Iterable[str]) -> dict[str, Any]:
    """Return what a sensor shows of a session: these fields of its public summary.

    The count sensor lists LISTED_ATTRIBUTES (no ids that reach a conversation or a
    person); a key's sensor shows SESSION_ATTRIBUTES.
    """
    summary = session.public_data()
    return {name: summary[name] for name in names}


class KeySessionSensors:
    """Create a key's session sensor on its first session and route changes to it."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: HomeAgentConfigEntry,
        async_add_entities: AddEntitiesCallback,
    ) -> None:
        """Start with no sensors."""
        self.hass = hass
        self.entry = entry
        self._async_add_entities = async_add_entities
        self._known: set[str] = set()
        self._full = False
        self._listeners: dict[str, SessionListener] = {}

    @callback
    def async_subscribe(self, session_key: str, listener: SessionListener) -> CALLBACK_TYPE:
        """Send the changes of one key's sessions to `listener`; return the unsubscribe."""
        self._listeners[session_key] = listener

        @callback
        def unsubscribe() -> None:
            self._listeners.pop(session_key, None)

        return unsubscribe

    @callback
    def async_session_changed(self, session: Session, change: SessionChange) -> None:
        """Route a change to its key's sensor, creating the sensor for a new key."""
        key = session.session_key
        if (listener := self._listeners.get(key)) is not None:
            listener(session, change)
        elif key not in self._known and has_owner(key) and not self._full:
            self.entry.async_create_task(self.hass, self.async_add_keys([key]))

    async def async_add_keys(self, session_keys: Iterable[str]) -> None:
        """Add a sensor for each key that has none yet."""
        new = [
            key for key in dict.fromkeys(session_keys) if key not in self._known and has_owner(key)
        ]
        if (room := MAX_KEY_SENSORS - len(self._known)) < len(new):
            if not self._full:
                LOGGER.warning(
                    "%s shows session sensors for %d satellites, devices and people at most; "
                    "more get none (the active conversations sensor still counts them)",
                    self.entry.title,
                    MAX_KEY_SENSORS,
                )
                self._full = True
            new = new[: max(room, 0)]
        # Claimed before the name lookups, so a concurrent change does not add a twin.
        self._known.update(new)
        await async_remember_user_names(self.hass, new)
        # Owners are named a batch at a time too: thousands of keys never hold the loop.
        for start in range(0, len(new), SENSOR_BATCH):
            if start:
                await asyncio.sleep(0)
            self._async_add_entities(
                SessionSensor(self.entry, self, key, key_owner(self.hass, key))
                for key in new[start : start + SENSOR_BATCH]
            )


class ActiveSessionsSensor(HomeAgentEntity, SensorEntity):
    """The number of active sessions, with a summary of the most recent ones."""

    entity_description = ACTIVE_SESSIONS
    # The summaries change on every turn and can be long; history keeps the count only.
    _unrecorded_attributes = frozenset({ATTR_SESSIONS})

    def __init__(self, entry: HomeAgentConfigEntry) -> None:
        """Create the count sensor of an agent."""
        super().__init__(entry)
        self._attr_unique_id = f"{entry.entry_id}_{ACTIVE_SESSIONS.key}"
        self._pending_write: asyncio.Handle | None = None

    @property
    def native_value(self) -> int:
        """Return the number of active sessions."""
        return len(self._tracker.sessions)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return a short summary of the most recently active sessions."""
        # Every user sees entity attributes: no conversation id (it would let anyone join
        # a session) and no user id. Capped, so thousands of sessions stay a small state.
        recent = heapq.nlargest(
            MAX_LISTED_SESSIONS, self._tracker.sessions, key=attrgetter("last_activity")
        )
        return {
            ATTR_SESSIONS: [
                {
                    ATTR_BELONGS_TO: key_owner(self.hass, session.session_key).label or None,
                    **_shown(session, LISTED_ATTRIBUTES),
                }
                for session in recent
            ]
        }

    async def async_added_to_hass(self) -> None:
        """Follow the tracker."""
        await super().async_added_to_hass()
        self.async_on_remove(self._tracker.async_add_listener(self._async_session_changed))
        self.async_on_remove(self._async_cancel_write)

    @callback
    def _async_session_changed(self, _session: Session, _change: SessionChange) -> None:
        """Write the new count once, however many sessions change in one go."""
        # A burst of expiries changes thousands of sessions in one loop iteration.
        if self._pending_write is None:
            self._pending_write = self.hass.loop.call_soon(self._async_write_pending)

    @callback
    def _async_write_pending(self) -> None:
        """Write the state scheduled by a change."""
        self._pending_write = None
        self.async_write_ha_state()

    @callback
    def _async_cancel_write(self) -> None:
        """Drop a write scheduled just before removal."""
        if self._pending_write is not None:
            self._pending_write.cancel()
            self._pending_write = None


class SessionSensor(HomeAgentEntity, SensorEntity, RestoreEntity):
    """Whether a satellite, device or person has an active session, and its details."""

    entity_description = SESSION

    def __init__(
        self,
        entry: HomeAgentConfigEntry,
        key_sensors: KeySessionSensors,
        session_key: str,
        owner: KeyOwner,
    ) -> None:
        """Create the sensor of a key, named after its owner."""
        super().__init__(entry)
        self.session_key = session_key
        self._key_sensors = key_sensors
        self._attr_unique_id = session_sensor_unique_id(entry.entry_id, session_key)
        if owner.device and owner.user:
            self._attr_translation_key = DEVICE_USER_SESSION_KEY
            self._attr_translation_placeholders = {"device": owner.device, "user": owner.user}
        else:
            self._attr_translation_placeholders = {"name": owner.label}
        self._last: dict[str, Any] = {}

    async def async_added_to_hass(self) -> None:
        """Restore the last session's details, then follow the key's sessions."""
        await super().async_added_to_hass()
        if (last_state := await self.async_get_last_state()) is not None:
            self._last = {
                name: last_state.attributes[name]
                for name in SESSION_ATTRIBUTES
                if name in last_state.attributes
            }
        self.async_on_remove(
            self._key_sensors.async_subscribe(self.session_key, self._async_session_changed)
        )
        self._update_from_tracker()

    @callback
    def _async_session_changed(self, session: Session, _change: SessionChange) -> None:
        """Show a started, continued, expired or cleared session."""
        self._last = _shown(session, SESSION_ATTRIBUTES)
        self._update_from_tracker()
        self.async_write_ha_state()

    def _update_from_tracker(self) -> None:
        """Set the state from the key's active session, or the last one while idle."""
        session = self.entry.runtime_data.tracker.session_for_key(self.session_key)
        if session is not None:
            self._last = _shown(session, SESSION_ATTRIBUTES)
        self._attr_native_value = STATE_ACTIVE if session is not None else STATE_IDLE
        self._attr_extra_state_attributes = dict(self._last)
