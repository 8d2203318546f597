"""The `memories` sensor: how many notes an agent with memory on can use (never their text)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.sensor import (
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)

from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .notebook import Notebook

ATTR_HOUSEHOLD = "household"
ATTR_PERSONAL = "personal"

MEMORIES = SensorEntityDescription(
    key="memories",
    translation_key="memories",
    state_class=SensorStateClass.MEASUREMENT,
)


class MemoriesSensor(HomeAgentEntity, SensorEntity):
    """The number of current notes, the household's and the people's own."""

    entity_description = MEMORIES

    def __init__(self, entry: HomeAgentConfigEntry, notebook: Notebook) -> None:
        """Count the notes of the household's notebook for one agent."""
        super().__init__(entry)
        self._notebook = notebook
        self._attr_unique_id = f"{entry.entry_id}_{MEMORIES.key}"

    @property
    def native_value(self) -> int:
        """Return how many notes are current."""
        return self._notebook.active_count

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the counts by scope: no text, no person."""
        personal = sum(1 for note in self._notebook.notes.values() if note.active and note.person)
        return {ATTR_HOUSEHOLD: self.native_value - personal, ATTR_PERSONAL: personal}

    async def async_added_to_hass(self) -> None:
        """Follow the notebook's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self._notebook.async_add_listener(self.async_write_ha_state))
