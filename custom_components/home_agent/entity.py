"""Base entity: every entity of an agent sits on that agent's device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity

from .const import DOMAIN
from .data import HomeAgentConfigEntry

if TYPE_CHECKING:
    from .tracker import SessionTracker


class HomeAgentEntity(Entity):
    """An entity of one Home Agent config entry."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: HomeAgentConfigEntry) -> None:
        """Attach the entity to the agent's device."""
        self.entry = entry
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Home Agent",
            model=str(entry.runtime_data.settings.backend),
            entry_type=DeviceEntryType.SERVICE,
        )

    @property
    def _tracker(self) -> SessionTracker:
        """Return the agent's session tracker."""
        return self.entry.runtime_data.tracker
