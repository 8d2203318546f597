"""The household's notes on disk: one private file per Home Assistant, debounced, atomic.

`.storage/home_agent.memory`, in Home Assistant's storage envelope:
`{"version": 1, "minor_version": 1, "key": "home_agent.memory", "data": {...}}` with

- `notes`: `[id, text, person, origin, created_at, updated_at, uses, superseded_by, rule]`
  per note (lists parse faster than objects; times ISO 8601 in UTC);
- `frames`: the notes each session's prompt was given, so every request of a session (and
  one after a restart) repeats them exactly: `[entry_id, conversation_id, session start,
  person, budget, [note id, ...]]`;
- `pending`: extractions of ended sessions not yet done (what was said, until then).

The file is read and parsed in the executor, and written there atomically (a temporary
file renamed into place, fsynced) within the save delay of a change; a failed write is
retried, never lost from memory. An unreadable file is copied aside and reported as a
repair; the agents start without what could not be read. Removing the last agent with
memory deletes the file, its copies and any temporary file a cut-short save left.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
import glob
from itertools import chain
from pathlib import Path
import shutil
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.json import json_bytes
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .envelope import Unreadable, read_envelope, temporary_files, write_atomic
from .notes import MAX_NOTE_CHARS, Note, Origin
from .saving import DelayedSave, problems_summary

NOTES_KEY = f"{DOMAIN}.memory"
NOTES_VERSION = 1
NOTES_MINOR_VERSION = 1
ISSUE_MEMORY_UNREADABLE = "memory_unreadable"
ISSUE_MEMORY_NOT_KEPT = "memory_unreadable_not_kept"
_NOTE_FIELDS = 9
_FRAME_FIELDS = 6

# A session's prompt notes are kept under (entry id, conversation id, session start, person).
type FrameKey = tuple[str, str, str, str | None]


@dataclass(slots=True, frozen=True)
class Frame:
    """The notes a session's prompt holds for one speaker, chosen when it first needed them."""

    budget: int
    ids: tuple[str, ...]


@dataclass(slots=True)
class PendingExtraction:
    """An ended session waiting to be turned into notes, with what it needs for that."""

    id: str
    entry_id: str
    # The speaker's person (their notes may be updated, private ones written) and name.
    person: str | None
    speaker: str | None
    ended_at: datetime
    # What was said, as plain lines ("User: …", "Assistant: …").
    lines: tuple[str, ...]
    tries: int = 0
    # Kept when Home Assistant stopped: extracted only if this session (conversation id,
    # start) ran out meanwhile, dropped if it is still going on at the next start.
    if_ended: tuple[str, str] | None = None

    def as_stored(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "id": self.id,
            "entry_id": self.entry_id,
            "person": self.person,
            "speaker": self.speaker,
            "ended_at": self.ended_at.isoformat(),
            "lines": list(self.lines),
            "tries": self.tries,
            "if_ended": None if self.if_ended is None else list(self.if_ended),
        }


@dataclass(slots=True)
class StoredNotes:
    """What the file holds, checked; `problems` says what was left out and why."""

    notes: list[Note] = field(default_factory=list)
    # The ids of `notes`: a second note with one of them is left out.
    note_ids: set[str] = field(default_factory=set)
    frames: dict[FrameKey, Frame] = field(default_factory=dict)
    pending: list[PendingExtraction] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None


@dataclass(slots=True)
class NotesSnapshot:
    """What one save writes, captured in the event loop (serialized in the executor)."""

    notes: list[list[Any]]
    frames: list[list[Any]]
    pending: list[dict[str, Any]]


def notes_path(hass: HomeAssistant) -> Path:
    """Return the file of the household's notes."""
    return Path(hass.config.path(".storage", NOTES_KEY))


class NotesStore:
    """Load and save the notes file, coalescing writes."""

    def __init__(self, hass: HomeAssistant, snapshot: Callable[[], NotesSnapshot]) -> None:
        """Prepare the store; `snapshot` captures what to write, in the event loop."""
        self._hass = hass
        self._snapshot = snapshot
        self._path = notes_path(hass)
        self._saving = DelayedSave(hass, "the household's notes", self._async_write)
        # An unreadable file that could not be copied aside is the only copy: nothing is
        # written over it until Home Assistant restarts.
        self._suspended = False

    @property
    def path(self) -> str:
        """Return the file."""
        return str(self._path)

    @property
    def save_pending(self) -> bool:
        """Return whether changes wait to be written."""
        return self._saving.pending

    @property
    def writes(self) -> int:
        """Return how many saves reached the disk."""
        return self._saving.writes

    async def async_load(self) -> StoredNotes:
        """Read the file (in the executor); keep an unreadable one aside and report it."""
        stored = await self._hass.async_add_executor_job(_read, self._path, dt_util.utcnow())
        reason = stored.unreadable or (
            problems_summary(stored.problems) if stored.problems else None
        )
        if reason is not None:
            await self._async_keep_aside(reason)
            # Written anew (unless it could not be copied), so that the next start does not
            # report and copy it again.
            self.async_schedule_save()
        return stored

    async def _async_keep_aside(self, reason: str) -> None:
        """Copy the file aside untouched and raise a repair issue."""
        backup = f"{self._path}.unreadable.{dt_util.utcnow().strftime('%Y%m%dT%H%M%S')}"
        try:
            await self._hass.async_add_executor_job(shutil.copy2, self._path, backup)
        except OSError as err:
            self._suspended = True
            backup = ""
            LOGGER.error(
                "Could not read the household's notes in %s (%s) nor copy the file aside "
                "(%s); nothing is saved over it until Home Assistant restarts",
                self._path,
                reason,
                err.strerror or type(err).__name__,
            )
        else:
            LOGGER.error(
                "Could not read the household's notes in %s (%s); started without what "
                "could not be read. The file was copied to %s",
                self._path,
                reason,
                backup,
            )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            ISSUE_MEMORY_UNREADABLE,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_MEMORY_UNREADABLE if backup else ISSUE_MEMORY_NOT_KEPT,
            translation_placeholders={"path": backup or str(self._path), "reason": reason},
        )

    @callback
    def async_schedule_save(self) -> None:
        """Write the current notes within the save delay (once per burst of changes)."""
        self._saving.async_schedule()

    async def async_flush(self) -> bool:
        """Write now; on failure keep everything in memory, retry later and return False."""
        return await self._saving.async_flush()

    async def _async_write(self) -> None:
        """Write the file; raise OSError when the disk refused."""
        if self._suspended:
            return
        await self._hass.async_add_executor_job(_write, self._path, self._snapshot())

    async def async_shutdown(self) -> None:
        """Write pending changes; start no more timers."""
        await self._saving.async_shutdown()


async def async_remove_notes_file(hass: HomeAssistant) -> None:
    """Delete the notes file, its copies kept aside and the repair about them."""
    await hass.async_add_executor_job(_remove, notes_path(hass))
    ir.async_delete_issue(hass, DOMAIN, ISSUE_MEMORY_UNREADABLE)


# --- executor side ---------------------------------------------------------


def _read(path: Path, now: datetime) -> StoredNotes:
    """Read and check the file; what cannot be read is left out and said in `problems`."""
    # A save cut short (a power loss) leaves its temporary file; only this store writes
    # them, and it has not written yet, so any there is stale.
    for temporary in temporary_files(path):
        temporary.unlink(missing_ok=True)
    stored = StoredNotes()
    try:
        envelope = read_envelope(path, NOTES_VERSION)
    except Unreadable as err:
        stored.unreadable = str(err)
        return stored
    if envelope is None:
        return stored
    _version, data = envelope
    for kind, records, read in (
        ("note", data.get("notes"), _note),
        ("frame", data.get("frames"), _frame),
        ("pending extraction", data.get("pending"), _pending),
    ):
        if records is None:
            continue
        if not isinstance(records, list):
            stored.problems.append(f"{kind}s: not a list")
            continue
        for number, record in enumerate(records, 1):
            try:
                read(stored, record, now)
            except (ValueError, TypeError, OverflowError) as err:
                reason = str(err) if isinstance(err, Unreadable) else "malformed"
                stored.problems.append(f"{kind} {number}: {reason}")
    return stored


def _time(value: Any, now: datetime) -> datetime:
    """Parse a stored time (ISO 8601 with zone), no later than now."""
    if type(value) is not str:
        raise Unreadable("a time is not text")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise Unreadable("a time has no zone")
    return min(parsed.astimezone(UTC), now)


def _optional_text(value: Any, what: str) -> str | None:
    """Return a text or None, or raise Unreadable."""
    if value is not None and type(value) is not str:
        raise Unreadable(f"the {what} is not text")
    return value


def _note(stored: StoredNotes, record: Any, now: datetime) -> None:
    """Read one note."""
    if type(record) is not list or len(record) < _NOTE_FIELDS:
        raise Unreadable("not a note")
    note_id, text, person, origin, created, updated, uses, superseded_by, rule = record[
        :_NOTE_FIELDS
    ]
    if type(note_id) is not str or not note_id:
        raise Unreadable("the id is not text")
    if note_id in stored.note_ids:
        raise Unreadable("the id is another note's")
    if type(text) is not str or not text or len(text) > MAX_NOTE_CHARS:
        raise Unreadable("the text is empty, too long or not text")
    if type(uses) is not int or uses < 0 or type(rule) is not bool:
        raise Unreadable("the use count or rule flag is malformed")
    stored.notes.append(
        Note(
            id=note_id,
            text=text,
            person=_optional_text(person, "person"),
            origin=Origin(origin),
            created_at=_time(created, now),
            updated_at=_time(updated, now),
            uses=uses,
            superseded_by=_optional_text(superseded_by, "superseding note"),
            rule=rule,
        )
    )
    stored.note_ids.add(note_id)


def _frame(stored: StoredNotes, record: Any, _now: datetime) -> None:
    """Read one session's prompt notes."""
    if type(record) is not list or len(record) < _FRAME_FIELDS:
        raise Unreadable("not a session's notes")
    entry_id, conversation_id, started, person, budget, ids = record[:_FRAME_FIELDS]
    if not all(type(value) is str for value in (entry_id, conversation_id, started)):
        raise Unreadable("the session is not named by text")
    if type(budget) is not int or type(ids) is not list or not all(type(i) is str for i in ids):
        raise Unreadable("the notes of a session are malformed")
    key = (entry_id, conversation_id, started, _optional_text(person, "person"))
    stored.frames[key] = Frame(budget, tuple(ids))


def _pending(stored: StoredNotes, record: Any, now: datetime) -> None:
    """Read one pending extraction."""
    if type(record) is not dict:
        raise Unreadable("not a pending extraction")
    lines = record.get("lines")
    if type(lines) is not list or not all(type(line) is str for line in lines):
        raise Unreadable("what was said is malformed")
    tries = record.get("tries")
    if type(tries) is not int or tries < 0:
        raise Unreadable("the number of tries is malformed")
    pending_id, entry_id = record.get("id"), record.get("entry_id")
    if type(pending_id) is not str or type(entry_id) is not str:
        raise Unreadable("the extraction is not named by text")
    if_ended = record.get("if_ended")
    if if_ended is not None and (
        type(if_ended) is not list
        or len(if_ended) != 2
        or not all(type(part) is str for part in if_ended)
    ):
        raise Unreadable("the session it waits for is malformed")
    stored.pending.append(
        PendingExtraction(
            id=pending_id,
            entry_id=entry_id,
            person=_optional_text(record.get("person"), "person"),
            speaker=_optional_text(record.get("speaker"), "speaker"),
            ended_at=_time(record.get("ended_at"), now),
            lines=tuple(lines),
            tries=tries,
            if_ended=None if if_ended is None else (if_ended[0], if_ended[1]),
        )
    )


def note_row(note: Note) -> list[Any]:
    """Return a note's stored form."""
    return [
        note.id,
        note.text,
        note.person,
        str(note.origin),
        note.created_at.isoformat(),
        note.updated_at.isoformat(),
        note.uses,
        note.superseded_by,
        note.rule,
    ]


def frame_row(key: FrameKey, frame: Frame) -> list[Any]:
    """Return a session's prompt notes as stored."""
    return [*key, frame.budget, list(frame.ids)]


def _write(path: Path, snapshot: NotesSnapshot) -> None:
    """Write the file atomically and privately; raise OSError on failure."""
    envelope = {
        "version": NOTES_VERSION,
        "minor_version": NOTES_MINOR_VERSION,
        "key": NOTES_KEY,
        "data": {"notes": snapshot.notes, "frames": snapshot.frames, "pending": snapshot.pending},
    }
    write_atomic(path, (json_bytes(envelope),))


def _remove(path: Path) -> None:
    """Delete the file, every copy of it kept aside and what a save cut short left."""
    path.unlink(missing_ok=True)
    for copy in chain(
        path.parent.glob(f"{glob.escape(path.name)}.unreadable.*"), temporary_files(path)
    ):
        with suppress(OSError):
            copy.unlink()
