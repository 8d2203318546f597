"""Session sensors (placeholder, replaced by the user-surface work)."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .data import HomeAgentConfigEntry


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeAgentConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add the session sensors."""
