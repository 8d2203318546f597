"""On-disk persistence of an agent's sessions: a small index, a transcripts file, debounced.

Storage version 2 is two files in `.storage/` (version 1 was the index file alone, with
each transcript inline; it is read and rewritten as version 2 at the next save):

- `home_agent.<entry_id>`, the index, in Home Assistant's storage envelope:
  `{"version": 2, "minor_version": 1, "key": ..., "data": {"generation": G,
  "sessions": [row, ...]}}`, a row being `Session.index_row()`. It is small and read
  before the expiry timers are armed.
- `home_agent.<entry_id>.transcripts`, JSON lines: `{"version": 2, "generation": G}`, then
  `[conversation_id, recap, [exchange, ...]]` per session (see `encode_exchange`), plus
  `[exchange, ...]` waiting for the summary when there are any. It is
  read after the timers are armed (the file in the executor, its lines checked in the
  event loop a few at a time), so the loop keeps running while tens of megabytes are
  parsed. Each session keeps its checked exchanges as JSON until it first needs them
  (`Session.transcript`), and a save writes a transcript nobody needed back as it was read.

Each save writes the transcripts file first, then the index, both atomically and with one
new generation. A clear therefore leaves disk once the transcripts file is written; and if
the index write fails after that, the next start sees a newer transcripts file and drops
the sessions it no longer lists instead of bringing them back.

The files are written here rather than through `Store`, which logs a failed write instead
of reporting it: a clear must know whether the transcript left the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import glob
from itertools import chain
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import (
    CALLBACK_TYPE,
    DOMAIN as HOMEASSISTANT_DOMAIN,
    Event,
    HassJob,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.json import json_bytes, json_fragment
from homeassistant.util import dt as dt_util
from homeassistant.util.json import json_loads

from .const import (
    DOMAIN,
    LOGGER,
    RECAP_PENDING_MAX,
    SAVE_DELAY,
    SAVE_RETRY_DELAY,
    STORAGE_MINOR_VERSION,
    STORAGE_VERSION,
)
from .session import (
    Exchange,
    Session,
    Unreadable,
    decode_transcript,
    encode_exchange,
    sanitize_exchange,
    sanitize_text,
)

TRANSCRIPTS_SUFFIX = ".transcripts"
# Transcript lines parsed per event-loop iteration at start-up.
PARSE_CHUNK = 200
ISSUE_UNREADABLE = "storage_unreadable"
ISSUE_NOT_KEPT = "storage_unreadable_not_kept"


@dataclass(slots=True)
class Snapshot:
    """What one save writes, captured in the event loop."""

    rows: list[list[Any]]
    # (conversation id, recap, exchanges, exchanges waiting for the recap) per session;
    # exchanges are immutable tuples, or the JSON they were restored from (never decoded).
    transcripts: list[tuple[str, str | None, bytes | tuple[Exchange, ...], tuple[Exchange, ...]]]


@dataclass(slots=True)
class StoredIndex:
    """The sessions read from the index, checked, clamped and without duplicates."""

    live: list[Session] = field(default_factory=list)
    ran_out: list[Session] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicates: int = 0
    generation: int = 0
    # The transcripts file was written after the index (the index write failed).
    index_stale: bool = False
    # Version 1: the transcripts were inline and are already in the sessions.
    transcripts_inline: bool = False
    unreadable: str | None = None


@dataclass(slots=True)
class StoredTranscripts:
    """The transcripts read from their file, by conversation id."""

    # Conversation id -> (recap, exchanges as checked JSON (None if none), exchanges
    # waiting for the recap).
    by_id: dict[str, tuple[str | None, bytes | None, tuple[Exchange, ...]]] = field(
        default_factory=dict
    )
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None


class SessionStore:
    """Load and save one agent's sessions, coalescing writes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        snapshot: Callable[[], Snapshot],
        delay: float = SAVE_DELAY,
    ) -> None:
        """Prepare the store; `snapshot` captures the data to write, in the loop."""
        self._hass = hass
        self._entry_id = entry_id
        self._snapshot = snapshot
        self._delay = delay
        self._key = f"{DOMAIN}.{entry_id}"
        self._path = Path(hass.config.path(".storage", self._key))
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_final_write: CALLBACK_TYPE | None = None
        self._flush_job = HassJob(self._async_timer_flush, "home_agent_save")
        self._write_lock = asyncio.Lock()
        self._hold: asyncio.Future[Any] | None = None
        self._generation = 0
        # Set when an unreadable file could not be copied aside: it is the only copy, so
        # nothing is written over it until Home Assistant restarts (the repair says so).
        self._suspended = False
        self.writes = 0
        self._closed = False

    @property
    def path(self) -> str:
        """Return the index file."""
        return str(self._path)

    @property
    def transcripts_path(self) -> str:
        """Return the transcripts file."""
        return f"{self._path}{TRANSCRIPTS_SUFFIX}"

    # --- loading ----------------------------------------------------------

    async def async_load_index(self, session_timeout: timedelta, max_turns: int) -> StoredIndex:
        """Read the index (in the executor); report what cannot be read."""
        now = dt_util.utcnow()
        index = await self._hass.async_add_executor_job(
            _read_index, self._path, self.transcripts_path, now, session_timeout, max_turns
        )
        self._generation = index.generation
        await self._async_report_damage(index.unreadable, index.problems, self.path)
        return index

    async def async_load_transcripts(self, max_turns: int) -> StoredTranscripts:
        """Read the transcripts file (in the executor); report what cannot be read."""
        stored = StoredTranscripts()
        # Only the file is read in the executor; its lines are parsed here, a few at a
        # time, so no thread holds the interpreter (and the event loop) for long.
        lines = await self._hass.async_add_executor_job(_read_lines, self.transcripts_path, stored)
        for start in range(0, len(lines), PARSE_CHUNK):
            _parse_lines(lines, start, min(start + PARSE_CHUNK, len(lines)), max_turns, stored)
            await asyncio.sleep(0)
        await self._async_report_damage(stored.unreadable, stored.problems, self.transcripts_path)
        return stored

    async def _async_report_damage(
        self, unreadable: str | None, problems: list[str], path: str
    ) -> None:
        """Keep a file aside if it (or some of its records) could not be read."""
        if unreadable is not None:
            await self.async_keep_aside(unreadable, path)
        elif problems:
            await self.async_keep_aside(_summary(problems), path)

    @callback
    def hold_writes_until(self, loaded: asyncio.Future[Any]) -> None:
        """Write nothing before `loaded` is done (a save must not miss unread transcripts)."""
        self._hold = loaded

    async def async_keep_aside(self, reason: str, path: str) -> None:
        """Copy an unreadable file aside untouched and raise a repair issue.

        `reason` says what and where, never a stored value (they are what people said).
        """
        stamp = dt_util.utcnow().strftime("%Y%m%dT%H%M%S")
        backup = f"{path}.unreadable.{stamp}"
        try:
            await self._hass.async_add_executor_job(shutil.copy2, path, backup)
        except OSError as err:
            self._suspended = True
            LOGGER.error(
                "Could not read Home Agent sessions from %s (%s) nor copy the file aside "
                "(%s); nothing is saved over it until Home Assistant restarts",
                path,
                reason,
                err.strerror or type(err).__name__,
            )
            self._report(
                ISSUE_NOT_KEPT,
                {"path": path, "reason": reason, "error": err.strerror or type(err).__name__},
            )
            return
        LOGGER.error(
            "Could not read Home Agent sessions from %s (%s); started without what could "
            "not be read. The file was copied to %s",
            path,
            reason,
            backup,
        )
        self._report(ISSUE_UNREADABLE, {"path": backup, "reason": reason})

    def _report(self, translation_key: str, placeholders: dict[str, str]) -> None:
        """Raise the agent's repair issue about its unreadable storage."""
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            _unreadable_issue_id(self._entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=translation_key,
            translation_placeholders=placeholders,
        )

    # --- saving -----------------------------------------------------------

    @callback
    def async_schedule_save(self) -> None:
        """Write the current data within the save delay (once per burst of changes).

        Nothing is scheduled after shutdown: a reloaded agent owns the file by then.
        """
        if self._closed:
            return
        if self._unsub_timer is None:
            self._unsub_timer = async_call_later(self._hass, self._delay, self._flush_job)
        if self._unsub_final_write is None:
            self._unsub_final_write = self._hass.bus.async_listen_once(
                EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
            )

    @property
    def save_pending(self) -> bool:
        """Return whether changes wait to be written."""
        return self._unsub_timer is not None

    async def _async_timer_flush(self, _now: datetime) -> None:
        """Write once the delay has passed."""
        self._unsub_timer = None
        await self.async_flush()

    async def _async_final_write(self, _event: Event) -> None:
        """Write what is pending before Home Assistant stops."""
        self._unsub_final_write = None
        if self._unsub_timer is not None:
            await self.async_flush()

    def _cancel_timer(self) -> None:
        """Forget a scheduled write."""
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    async def async_flush(self) -> bool:
        """Write now; on failure keep the data in memory, retry later and return False."""
        self._cancel_timer()
        if self._hold is not None and not self._hold.done():
            await asyncio.wait([self._hold])
        async with self._write_lock:
            if self._suspended:
                return True  # nothing of this run is on disk, so nothing is left there
            snapshot = self._snapshot()
            generation = self._generation + 1
            try:
                await self._hass.async_add_executor_job(
                    _write, self._path, self._key, snapshot, generation
                )
            except OSError as err:
                self._write_failed(err)
                return False
            self._generation = generation
            self.writes += 1
            return True

    def _write_failed(self, err: OSError) -> None:
        """Log a failed write and try again later (the data stays in memory)."""
        what = f"{type(err).__name__}: {err.strerror or err}"
        if self._closed:
            LOGGER.error("Could not save Home Agent sessions while stopping (%s)", what)
            return
        LOGGER.warning(
            "Could not save Home Agent sessions (%s); retrying in %d s", what, SAVE_RETRY_DELAY
        )
        self._cancel_timer()
        self._unsub_timer = async_call_later(self._hass, SAVE_RETRY_DELAY, self._flush_job)

    async def async_shutdown(self) -> None:
        """Write pending changes; start no more timers."""
        self._closed = True
        if self._unsub_timer is not None:
            await self.async_flush()
        self._cancel_timer()
        if self._unsub_final_write is not None:
            self._unsub_final_write()
            self._unsub_final_write = None


async def async_remove_stored(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an agent's stored sessions and transcripts, and the repairs about them."""
    await hass.async_add_executor_job(
        _remove, Path(hass.config.path(".storage", f"{DOMAIN}.{entry_id}"))
    )
    ir.async_delete_issue(hass, DOMAIN, _unreadable_issue_id(entry_id))
    # Store (which wrote the files before) reports a corrupt file as a core issue named
    # after its key and the time.
    corrupt = f"storage_corruption_{DOMAIN}.{entry_id}_"
    for domain, issue_id in list(ir.async_get(hass).issues):
        if domain == HOMEASSISTANT_DOMAIN and issue_id.startswith(corrupt):
            ir.async_delete_issue(hass, domain, issue_id)


def _unreadable_issue_id(entry_id: str) -> str:
    """Return the id of an agent's repair about its unreadable storage."""
    return f"storage_unreadable_{entry_id}"


def _summary(problems: list[str]) -> str:
    """Return the problems of a file in one line (the first few)."""
    shown = "; ".join(problems[:3])
    more = len(problems) - 3
    return f"{shown}; and {more} more" if more > 0 else shown


# --- executor side ---------------------------------------------------------


def _read_envelope(path: Path) -> tuple[int, list[Any], dict[str, Any]] | None:
    """Return (version, session records, data) of the index, or None without a file.

    Raise Unreadable saying why the file cannot be used.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise Unreadable(f"the file could not be read ({reason})") from None
    try:
        envelope = json_loads(raw)
    except ValueError:
        raise Unreadable("the file is not valid JSON") from None
    if not isinstance(envelope, dict) or not isinstance(data := envelope.get("data"), dict):
        raise Unreadable("the file has no data")
    version = envelope.get("version")
    if type(version) is not int or version < 1:
        raise Unreadable("the file has no storage version")
    if version > STORAGE_VERSION:
        raise Unreadable(f"written by a newer Home Agent (storage version {version})")
    if not isinstance(records := data.get("sessions"), list):
        raise Unreadable("the file has no session list")
    return version, records, data


def _read_index(
    path: Path, transcripts_path: str, now: datetime, session_timeout: timedelta, max_turns: int
) -> StoredIndex:
    """Read, check and clamp the index; split live and ran-out sessions."""
    index = StoredIndex()
    try:
        envelope = _read_envelope(path)
    except Unreadable as err:
        index.unreadable = str(err)
        return index
    if envelope is None:
        return index
    version, records, data = envelope
    build: Callable[[Any, datetime, int], Session] = Session.from_index_row
    if version == 1:
        index.transcripts_inline = True
        build = Session.from_v1
    else:
        generation = data.get("generation")
        index.generation = generation if type(generation) is int else 0
        index.index_stale = _transcripts_generation(transcripts_path) > index.generation
    sessions: list[Session] = []
    for number, record in enumerate(records, 1):
        try:
            sessions.append(build(record, now, max_turns))
        except Unreadable as err:
            index.problems.append(f"session {number}: {err}")
    # Two records of one conversation or one key: the most recent wins (the other would
    # be a zombie: a session that holds its key but is never found again).
    sessions.sort(key=lambda s: s.last_activity, reverse=True)
    seen_ids: set[str] = set()
    seen_keys: set[str] = set()
    for session in sessions:
        if session.conversation_id in seen_ids or session.session_key in seen_keys:
            index.duplicates += 1
            continue
        seen_ids.add(session.conversation_id)
        seen_keys.add(session.session_key)
        session.expires_at = session.last_activity + session_timeout
        (index.ran_out if session.expires_at <= now else index.live).append(session)
    # Reversed, soonest expiry first (every expiry is last activity + the same timeout):
    # each new timer lands at the end of the loop's heap at once.
    index.live.reverse()
    return index


def _transcripts_generation(path: str) -> int:
    """Return the generation in the transcripts file's first line (0 if none)."""
    try:
        with open(path, "rb") as file:
            header = json_loads(file.readline())
    except (OSError, ValueError):
        return 0
    generation = header.get("generation") if isinstance(header, dict) else None
    return generation if type(generation) is int else 0


def _read_lines(path: str, stored: StoredTranscripts) -> list[bytes]:
    """Return the session lines of the transcripts file (after a checked header)."""
    try:
        with open(path, "rb") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        stored.unreadable = f"the file could not be read ({err.strerror or type(err).__name__})"
        return []
    try:
        header = json_loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != STORAGE_VERSION:
        stored.unreadable = (
            "the transcripts file has no known version"
            if isinstance(header, dict)
            else "the transcripts file has no valid first line"
        )
        return []
    return lines[1:]


def _parse_lines(
    lines: list[bytes], start: int, end: int, max_turns: int, stored: StoredTranscripts
) -> None:
    """Parse lines `start` to `end` (session lines, numbered from 2 in the file)."""
    for number in range(start, end):
        try:
            _read_line(lines[number], max_turns, stored.by_id)
        except (ValueError, TypeError) as err:
            reason = str(err) if isinstance(err, Unreadable) else "not valid JSON"
            stored.problems.append(f"transcripts line {number + 2}: {reason}")


def _read_line(
    line: bytes,
    max_turns: int,
    by_id: dict[str, tuple[str | None, bytes | None, tuple[Exchange, ...]]],
) -> None:
    """Check one session's line and put it into `by_id`.

    The exchanges are decoded to be checked, then kept as JSON until the session needs
    them (see `Session.transcript`).
    """
    item = json_loads(line)
    if type(item) is not list or len(item) not in (3, 4):
        raise Unreadable("not a session's transcript")
    conversation_id, recap, raw = item[:3]
    pending = decode_transcript(item[3]) if len(item) == 4 else []
    if type(conversation_id) is not str:
        raise Unreadable("the conversation id is not text")
    if recap is not None and type(recap) is not str:
        raise Unreadable("the recap is not text")
    kept = decode_transcript(raw)[-max_turns:]
    by_id[conversation_id] = (
        recap,
        json_bytes([encode_exchange(e) for e in kept]) if kept else None,
        tuple(pending[-RECAP_PENDING_MAX:]),
    )


def _write(path: Path, key: str, snapshot: Snapshot, generation: int) -> None:
    """Write the transcripts, then the index, each atomically; raise OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json_bytes({"version": STORAGE_VERSION, "generation": generation})
    # Streamed: one line is encoded at a time, never the whole file at once.
    _write_atomic(
        Path(f"{path}{TRANSCRIPTS_SUFFIX}"),
        chain((header,), (_transcript_line(*item) for item in snapshot.transcripts)),
    )
    envelope = {
        "version": STORAGE_VERSION,
        "minor_version": STORAGE_MINOR_VERSION,
        "key": key,
        "data": {"generation": generation, "sessions": snapshot.rows},
    }
    _write_atomic(path, (json_bytes(envelope),))


def _transcript_line(
    conversation_id: str,
    recap: str | None,
    exchanges: bytes | tuple[Exchange, ...],
    pending: tuple[Exchange, ...],
) -> bytes:
    """Return one session's line; texts JSON cannot hold (half an emoji) are replaced."""
    try:
        return json_bytes(_line_item(conversation_id, recap, exchanges, pending, clean=False))
    except TypeError:  # orjson refuses lone surrogates (its error is a TypeError)
        return json_bytes(_line_item(conversation_id, recap, exchanges, pending, clean=True))


def _line_item(
    conversation_id: str,
    recap: str | None,
    exchanges: bytes | tuple[Exchange, ...],
    pending: tuple[Exchange, ...],
    *,
    clean: bool,
) -> list[Any]:
    """Return one session's line as a JSON value, its texts sanitized when `clean`."""

    def encoded(items: tuple[Exchange, ...]) -> list[Any]:
        return [encode_exchange(sanitize_exchange(e) if clean else e) for e in items]

    if clean and recap is not None:
        recap = sanitize_text(recap)
    # A transcript restored and never decoded is written back as it was read (checked).
    item: list[Any] = [
        conversation_id,
        recap,
        json_fragment(exchanges) if isinstance(exchanges, bytes) else encoded(exchanges),
    ]
    if pending:
        item.append(encoded(pending))
    return item


def _write_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Write a private file all or nothing (a temporary file renamed into place)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in _lines(chunks):
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield the chunks, each line of the transcripts file ending with a newline."""
    for chunk in chunks:
        yield chunk if chunk.endswith(b"\n") else chunk + b"\n"


def _remove(path: Path) -> None:
    """Delete the index, the transcripts file and every copy of them kept aside."""
    for file in (path, Path(f"{path}{TRANSCRIPTS_SUFFIX}")):
        file.unlink(missing_ok=True)
    # Copies kept aside: ours (`.unreadable.<time>`) and Store's (`.corrupt.<time>`).
    for suffix in (".unreadable.", ".corrupt.", f"{TRANSCRIPTS_SUFFIX}.unreadable."):
        for copy in path.parent.glob(f"{glob.escape(path.name)}{suffix}*"):
            copy.unlink(missing_ok=True)
