"""The household's notebook: every note, who may see it, and every change announced.

One notebook per Home Assistant, open while at least one agent has memory on (each agent
holds it from set-up to unload). It keeps the notes in memory with their search index,
the notes each session's prompt was given (frames) and the extractions still to do, and
writes all of it through `NotesStore`. Changes fire `home_agent_memory_added`, `_updated`
and `_forgotten` with the note's id, person and origin, never its text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    DOMAIN,
    EVENT_MEMORY_ADDED,
    EVENT_MEMORY_FORGOTTEN,
    EVENT_MEMORY_UPDATED,
    LOGGER,
)
from .notes import (
    MAX_NOTES,
    MAX_NOTES_PER_SCOPE,
    Note,
    NoteRefused,
    Origin,
    new_note_id,
)
from .notes_search import NoteIndex
from .notes_store import (
    Frame,
    FrameKey,
    NotesSnapshot,
    NotesStore,
    PendingExtraction,
    frame_row,
    note_row,
)


@dataclass(slots=True, frozen=True)
class Viewer:
    """Whose notes a turn or a caller may see: the household's, and one person's (or all)."""

    person: str | None = None
    everything: bool = False

    def sees(self, note: Note) -> bool:
        """Tell whether the note is visible to this viewer."""
        return self.everything or note.person is None or note.person == self.person


EVERYONE = Viewer(everything=True)


def ranking(note: Note) -> tuple[bool, int, float]:
    """Return a note's place among notes: rules first, then most used, then newest.

    Sorts are stable: notes that tie keep the order they were written in.
    """
    return (not note.rule, -note.uses, -note.updated_at.timestamp())


class Notebook:
    """Every note of the household, in memory, written to disk within the save delay."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start empty; `async_load` reads the file."""
        self.hass = hass
        self.notes: dict[str, Note] = {}
        # Built on the first search (start-up does not wait for it), then kept up to date.
        self._index: NoteIndex | None = None
        self.frames: dict[FrameKey, Frame] = {}
        self.pending: dict[str, PendingExtraction] = {}
        self.store = NotesStore(hass, self._snapshot)
        self._listeners: list[Callable[[], None]] = []
        # Told when pending extractions were dropped (forgotten with their person's notes).
        self._drop_listeners: list[Callable[[set[str]], None]] = []

    async def async_load(self, known_entries: set[str]) -> None:
        """Read the file; drop frames and extractions of agents that no longer have memory."""
        stored = await self.store.async_load()
        self.notes = {note.id: note for note in stored.notes}
        # A superseding note that could not be read leaves the older one current again.
        for note in self.notes.values():
            if note.superseded_by is not None and note.superseded_by not in self.notes:
                note.superseded_by = None
        self.frames = {key: f for key, f in stored.frames.items() if key[0] in known_entries}
        self.pending = {p.id: p for p in stored.pending if p.entry_id in known_entries}
        if len(self.frames) != len(stored.frames) or len(self.pending) != len(stored.pending):
            self.store.async_schedule_save()
        LOGGER.debug(
            "Loaded %d note(s), %d session frame(s), %d pending extraction(s)",
            len(self.notes),
            len(self.frames),
            len(self.pending),
        )

    # --- queries ----------------------------------------------------------

    def visible(self, viewer: Viewer) -> list[Note]:
        """Return the current notes a viewer may see, best ranked first."""
        return sorted(
            (note for note in self.notes.values() if note.active and viewer.sees(note)),
            key=ranking,
        )

    @property
    def active_count(self) -> int:
        """Return how many notes are current (what an agent can use)."""
        return sum(1 for note in self.notes.values() if note.active)

    @property
    def index(self) -> NoteIndex:
        """Return the search index of the current notes (built when first needed)."""
        if self._index is None:
            self._index = NoteIndex()
            self._index.add_many((n.id, n.text) for n in self.notes.values() if n.active)
        return self._index

    def current(self, viewer: Viewer, note_id: str) -> Note | None:
        """Return the note if it is current (not forgotten nor replaced) and the viewer's."""
        note = self.notes.get(note_id)
        return note if note is not None and note.active and viewer.sees(note) else None

    def search(self, query: str, viewer: Viewer, limit: int) -> list[Note]:
        """Return up to `limit` current notes the viewer may see, best match first."""

        def allowed(note_id: str) -> bool:
            return self.current(viewer, note_id) is not None

        return [self.notes[i] for i, _score in self.index.search(query, allowed, limit)]

    # --- changes ----------------------------------------------------------

    @callback
    def async_add(
        self,
        text: str,
        person: str | None,
        origin: Origin,
        *,
        rule: bool,
        replaces: Note | None = None,
        context: Context | None = None,
    ) -> Note:
        """Add a note (normalized text), or one that supersedes `replaces`; return it.

        The same text already current in the scope is that note (nothing is added). An
        update keeps the scope of the note it replaces. Raise NoteRefused at the limits.
        """
        if replaces is not None:
            person = replaces.person
        folded = text.casefold()
        for note in self.notes.values():
            if note.active and note.person == person and note.text.casefold() == folded:
                return note
        if replaces is None and (
            sum(1 for n in self.notes.values() if n.active and n.person == person)
            >= MAX_NOTES_PER_SCOPE
        ):
            raise NoteRefused("memory_full", max=str(MAX_NOTES_PER_SCOPE))
        keep_replaced = self._make_room(replaces)
        now = dt_util.utcnow()
        note = Note(
            id=new_note_id(self.notes),
            text=text,
            person=person,
            origin=origin,
            created_at=now if replaces is None else replaces.created_at,
            updated_at=now,
            rule=rule,
        )
        self.notes[note.id] = note
        if self._index is not None:
            self._index.add(note.id, note.text)
        if replaces is not None:
            replaces.superseded_by = note.id
            if self._index is not None:
                self._index.remove(replaces.id, replaces.text)
            if not keep_replaced:
                self._remove(replaces)
        self._changed()
        self._announce(EVENT_MEMORY_UPDATED if replaces else EVENT_MEMORY_ADDED, note, context)
        return note

    def _make_room(self, replaces: Note | None) -> bool:
        """Make room for one more note; return whether a replaced note can be kept.

        When the notebook is full the oldest earlier version goes; with none, an update
        replaces its note outright and a new note is refused.
        """
        if len(self.notes) < MAX_NOTES:
            return True
        history = [note for note in self.notes.values() if not note.active]
        if history:
            self._remove(min(history, key=lambda note: note.updated_at))
            return True
        if replaces is None:
            raise NoteRefused("memory_full", max=str(MAX_NOTES))
        return False

    @callback
    def async_forget(self, notes: Iterable[Note], context: Context | None = None) -> int:
        """Forget notes and every earlier version of them; return how many went.

        They leave every later prompt at once and the file within the save delay.
        """
        earlier: dict[str, list[Note]] = {}  # the versions each note superseded
        for kept in self.notes.values():
            if kept.superseded_by is not None:
                earlier.setdefault(kept.superseded_by, []).append(kept)
        gone: dict[str, Note] = {}
        for note in notes:
            versions = [note]
            for version in versions:  # grows as it goes: newest first
                if version.id not in gone:
                    gone[version.id] = version
                    versions.extend(earlier.get(version.id, ()))
        for note in gone.values():
            self._remove(note)
        if gone:
            self._changed()
            for note in gone.values():
                self._announce(EVENT_MEMORY_FORGOTTEN, note, context)
        return len(gone)

    def _remove(self, note: Note) -> None:
        """Take a note out of memory and the index; a newer note stays current."""
        if self.notes.pop(note.id, None) is not None and self._index is not None:
            self._index.remove(note.id, note.text)

    @callback
    def async_drop_pending(self, match: Callable[[PendingExtraction], bool]) -> None:
        """Drop the pending extractions that match (what was said goes with them)."""
        dropped = {p.id for p in self.pending.values() if match(p)}
        if not dropped:
            return
        for pending_id in dropped:
            del self.pending[pending_id]
        self.store.async_schedule_save()
        for listener in list(self._drop_listeners):
            listener(dropped)

    @callback
    def async_used(self, notes: Iterable[Note]) -> None:
        """Count a use of each note (they rank higher in later sessions' prompts)."""
        for note in notes:
            note.uses += 1
        self.store.async_schedule_save()

    @callback
    def async_set_frame(self, key: FrameKey, frame: Frame) -> None:
        """Keep the notes a session's prompt was given for a speaker."""
        self.frames[key] = frame
        self.store.async_schedule_save()

    @callback
    def async_drop_frames(self, match: Callable[[FrameKey], bool]) -> None:
        """Forget the prompt notes of sessions that ended."""
        keys = [key for key in self.frames if match(key)]
        for key in keys:
            del self.frames[key]
        if keys:
            self.store.async_schedule_save()

    @callback
    def async_add_pending(self, pending: PendingExtraction) -> None:
        """Keep an extraction to do until it is done."""
        self.pending[pending.id] = pending
        self.store.async_schedule_save()

    @callback
    def async_done(self, pending: PendingExtraction) -> None:
        """Forget an extraction that is done or given up."""
        if self.pending.pop(pending.id, None) is not None:
            self.store.async_schedule_save()

    # --- listeners --------------------------------------------------------

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` whenever notes are added or forgotten."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def async_add_drop_listener(self, listener: Callable[[set[str]], None]) -> CALLBACK_TYPE:
        """Call `listener` with the ids of pending extractions that were dropped."""
        self._drop_listeners.append(listener)
        return lambda: self._drop_listeners.remove(listener)

    def _changed(self) -> None:
        """Save within the delay and tell the listeners (sensors)."""
        self.store.async_schedule_save()
        for listener in list(self._listeners):
            listener()

    def _announce(self, event_type: str, note: Note, context: Context | None) -> None:
        """Fire a memory event: the note's id, person and origin, never its text."""
        self.hass.bus.async_fire(
            event_type,
            {"memory_id": note.id, "person": note.person, "origin": str(note.origin)},
            context=context,
        )

    def _snapshot(self) -> NotesSnapshot:
        """Capture what is written."""
        return NotesSnapshot(
            notes=[note_row(note) for note in self.notes.values()],
            frames=[frame_row(key, frame) for key, frame in self.frames.items()],
            pending=[pending.as_stored() for pending in self.pending.values()],
        )


# --- one notebook per Home Assistant ------------------------------------


@dataclass(slots=True)
class _Holder:
    """The open notebook and how many agents hold it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    notebook: Notebook | None = None
    holders: int = 0


_DATA: HassKey[_Holder] = HassKey(f"{DOMAIN}_notebook")


async def async_hold_notebook(hass: HomeAssistant, known_entries: set[str]) -> Notebook:
    """Return the notebook, opened (read from disk) for the first agent that needs it."""
    holder = hass.data.setdefault(_DATA, _Holder())
    async with holder.lock:
        if holder.notebook is None:
            notebook = Notebook(hass)
            await notebook.async_load(known_entries)
            holder.notebook = notebook
        holder.holders += 1
        return holder.notebook


async def async_release_notebook(hass: HomeAssistant) -> None:
    """Let go of the notebook; the last agent to do so writes it and closes it."""
    holder = hass.data.get(_DATA)
    if holder is None:
        return
    async with holder.lock:
        holder.holders -= 1
        if holder.holders > 0 or (notebook := holder.notebook) is None:
            return
        holder.notebook = None
        await notebook.store.async_shutdown()


@callback
def open_notebook(hass: HomeAssistant) -> Notebook | None:
    """Return the notebook if an agent with memory holds it open."""
    holder = hass.data.get(_DATA)
    return None if holder is None else holder.notebook
