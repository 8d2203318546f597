"""An agent's part in the household memory: holding the notebook, following its sessions.

An agent with memory on holds the notebook from set-up to unload, gives its backend the
notes for its prompts, drops a session's notes when it ends and, with a model of its own,
turns its expired sessions into notes. The notes go with the last agent that has memory on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from homeassistant.core import HomeAssistant

from .client import ModelClient
from .const import DOMAIN
from .data import HomeAgentConfigEntry
from .notebook import async_hold_notebook, async_release_notebook, open_notebook
from .notes_extraction import NoteExtractor
from .notes_prompt import AgentNotes
from .notes_store import async_remove_notes_file
from .settings import AgentSettings, memory_entry_ids
from .tracker import SessionTracker


@dataclass(slots=True)
class AgentMemory:
    """What an agent with memory on has of it."""

    notes: AgentNotes | None = None
    extractor: NoteExtractor | None = None


async def async_open_memory(
    hass: HomeAssistant,
    entry: HomeAgentConfigEntry,
    settings: AgentSettings,
    client: ModelClient | None,
) -> AgentMemory:
    """Hold the notebook for an agent with memory on (released when it unloads).

    An agent whose memory was turned off leaves nothing behind: what it kept for its
    sessions goes (the notes stay for the agents that still have memory, or for later).
    """
    if not settings.memory:
        _async_drop_agent(hass, entry.entry_id)
        return AgentMemory()
    notebook = await async_hold_notebook(hass, memory_entry_ids(hass))
    entry.async_on_unload(partial(async_release_notebook, hass))
    return AgentMemory(
        notes=AgentNotes(hass, notebook, entry.entry_id, settings.memory_prompt_tokens),
        extractor=None
        if client is None
        else NoteExtractor(hass, notebook, entry.entry_id, client, settings.model),
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


async def async_remove_memory(hass: HomeAssistant, entry: HomeAgentConfigEntry) -> None:
    """Forget what a removed agent kept; delete the notes with the last agent with memory.

    Notes kept while memory is off everywhere stay for later, unless the last agent goes.
    """
    if _async_drop_agent(hass, entry.entry_id):
        return  # another agent holds the notes open
    others = {e.entry_id for e in hass.config_entries.async_entries(DOMAIN)} - {entry.entry_id}
    if not others or (AgentSettings.of(entry).memory and not memory_entry_ids(hass) & others):
        await async_remove_notes_file(hass)


def _async_drop_agent(hass: HomeAssistant, entry_id: str) -> bool:
    """Drop an agent's pending extractions and session notes; False if nothing is open.

    (What the file holds of an agent without memory is dropped when it is next read.)
    """
    if (notebook := open_notebook(hass)) is None:
        return False
    notebook.async_drop_pending(lambda pending: pending.entry_id == entry_id)
    notebook.async_drop_frames(lambda key: key[0] == entry_id)
    return True
