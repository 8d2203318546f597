"""An agent's part in the household memory: holding the notebook, following its sessions.

An agent with memory on holds the notebook from set-up to unload, gives its backend the
notes for its prompts, drops a session's notes when it ends and, with a model of its own,
turns its expired sessions into notes. The notes go with the last agent that has memory on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from homeassistant.core import HomeAssistant

from .client import ModelClient
from .const import CONF_MEMORY, CONF_MEMORY_PROMPT_TOKENS
from .data import HomeAgentConfigEntry
from .notebook import async_hold_notebook, async_release_notebook, open_notebook
from .notes_extraction import NoteExtractor
from .notes_prompt import AgentNotes
from .notes_store import async_remove_notes_file
from .settings import memory_entry_ids
from .tracker import SessionTracker


@dataclass(slots=True)
class AgentMemory:
    """What an agent with memory on has of it."""

    notes: AgentNotes | None = None
    extractor: NoteExtractor | None = None


async def async_open_memory(
    hass: HomeAssistant,
    entry: HomeAgentConfigEntry,
    settings: Mapping[str, Any],
    client: ModelClient | None,
) -> AgentMemory:
    """Hold the notebook for an agent with memory on (released when it unloads)."""
    if not settings[CONF_MEMORY]:
        return AgentMemory()
    notebook = await async_hold_notebook(hass, memory_entry_ids(hass))
    entry.async_on_unload(partial(async_release_notebook, hass))
    budget = int(settings[CONF_MEMORY_PROMPT_TOKENS])
    return AgentMemory(
        notes=AgentNotes(hass, notebook, entry.entry_id, budget),
        extractor=None
        if client is None
        else NoteExtractor(hass, notebook, entry.entry_id, client, settings),
    )


def async_follow_sessions(
    entry: HomeAgentConfigEntry, tracker: SessionTracker, memory: AgentMemory
) -> None:
    """Follow the agent's (restored) sessions until it unloads."""
    if memory.notes is not None:
        entry.async_on_unload(memory.notes.async_attach(tracker))
    if memory.extractor is not None:
        memory.extractor.async_start(tracker)
        entry.async_on_unload(memory.extractor.async_stop)


async def async_remove_memory(hass: HomeAssistant, entry_id: str) -> None:
    """Forget what a removed agent kept; delete the notes with the last agent with memory."""
    if (notebook := open_notebook(hass)) is not None:
        notebook.async_drop_pending(lambda pending: pending.entry_id == entry_id)
        notebook.async_drop_frames(lambda key: key[0] == entry_id)
    elif not memory_entry_ids(hass) - {entry_id}:
        await async_remove_notes_file(hass)
