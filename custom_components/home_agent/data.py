"""Runtime data of a Home Agent config entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

from .metrics import TurnMetricsHub

if TYPE_CHECKING:
    from .backend import AgentBackend
    from .notes_extraction import NoteExtractor
    from .notes_prompt import AgentNotes
    from .settings import AgentSettings
    from .tracker import SessionTracker

type HomeAgentConfigEntry = ConfigEntry[HomeAgentData]


@dataclass(slots=True)
class HomeAgentData:
    """What a loaded agent holds: its settings, its sessions and where answers come from."""

    settings: AgentSettings
    tracker: SessionTracker
    backend: AgentBackend
    # The household's notes for the agent's prompts (memory on).
    notes: AgentNotes | None = None
    # Turns its expired sessions into notes (`openai` agents with memory on).
    extractor: NoteExtractor | None = None
    # What the last turn cost, for the metric sensors.
    metrics: TurnMetricsHub = field(default_factory=TurnMetricsHub)
