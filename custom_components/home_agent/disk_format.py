"""The on-disk format of an agent's sessions: what the two files hold, read and written.

Storage version 2 is two files in `.storage/` (version 1 was the index file alone, with
each transcript inline; it is read and rewritten as version 2 at the next save):

- `home_agent.<entry_id>`, the index, in Home Assistant's storage envelope:
  `{"version": 2, "minor_version": 2, "key": ..., "data": {"generation": G,
  "sessions": [row, ...]}}`, a row being `[conversation_id, session_key, device_id,
  satellite_id, user_id, started_at, last_activity, turns]`, followed by `[user_id, ...]`,
  everyone signed in who took part, when that is more than the session's own user (added
  in minor version 2, which readers of minor version 1 ignore; a row without it has the
  session's user alone, if any). It is small and read before the expiry timers are armed.
- `home_agent.<entry_id>.transcripts`, JSON lines: `{"version": 2, "generation": G}`, then
  `[conversation_id, summary, [exchange, ...]]` per session (see `encode_exchange`), plus
  `[exchange, ...]` waiting for the summary when there are any. It is read after the
  timers are armed (the file in the executor, its lines checked in the event loop a few
  at a time, see storage.py). Each restored session keeps its checked exchanges as JSON
  until it first needs them (`StoredSession`), and a save writes a transcript nobody
  needed back as it was read.

Each save writes the transcripts file first, then the index, both atomically (a temporary
`<file>.<random>.tmp` renamed into place) and with one new generation. A clear therefore
leaves disk once the transcripts file is written; and if the index write fails after
that, the next start sees a newer transcripts file and drops the sessions it no longer
lists instead of bringing them back.

A temporary file is left only by a save cut short (a power loss); reading the index
deletes any. Files are read and written in the executor; scheduling, flushing and
reporting are storage.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import glob
from itertools import chain
import os
from pathlib import Path
import shutil
from typing import Any

from homeassistant.helpers.json import json_bytes, json_fragment
from homeassistant.util.json import json_loads

from .const import STORAGE_MINOR_VERSION, STORAGE_VERSION
from .envelope import Unreadable, read_envelope, temporary_files, write_atomic
from .session import (
    Exchange,
    Session,
    ToolCall,
    ToolRound,
    first_participants,
    sanitize_exchange,
    sanitize_text,
)

TRANSCRIPTS_SUFFIX = ".transcripts"
# Index row: conversation id, key, device, satellite, user, started, last activity, turns.
INDEX_FIELDS = 8
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)

type StoredExchanges = bytes | tuple[Exchange, ...]


@dataclass(slots=True, eq=False)
class StoredSession(Session):
    """A session read from disk: its transcript stays the checked JSON it was stored as.

    The exchanges are decoded when first needed (a turn, diagnostics). Until then they
    are one bytes object, which the interpreter's garbage collector does not walk (it
    walks each `Exchange`): restoring thousands of sessions neither takes long nor sets
    off a full collection of the whole process.
    """

    stored_transcript: bytes | None = None

    def _first_exchanges(self) -> Iterable[Exchange]:
        """Return the stored exchanges (checked when they were read)."""
        stored, self.stored_transcript = self.stored_transcript, None
        return () if stored is None else decode_transcript(json_loads(stored))

    def attach(
        self, summary: str | None, stored: bytes | None, pending: tuple[Exchange, ...]
    ) -> None:
        """Give the session what its transcripts line holds.

        Exchanges recorded since start-up (before the file was read) go after the stored
        ones, and so do exchanges that since left for the summary.
        """
        if stored is not None:
            later, self._exchanges = self._exchanges, None
            self.stored_transcript = stored
            if later:
                self.transcript.extend(later)
        if self.summary is None:
            self.summary = summary
        self.summary_pending = (*pending, *self.summary_pending)

    def stored_form(self) -> StoredExchanges:
        """Return the exchanges for a save: as they were read when never decoded."""
        if self._exchanges is None:
            return () if self.stored_transcript is None else self.stored_transcript
        return tuple(self._exchanges)


@dataclass(slots=True)
class Snapshot:
    """What one save writes, captured in the event loop (serialized in the executor)."""

    rows: list[list[Any]]
    # (conversation id, summary, exchanges, exchanges waiting for the summary) per session;
    # exchanges are immutable tuples, or the JSON they were restored from (never decoded).
    transcripts: list[tuple[str, str | None, StoredExchanges, tuple[Exchange, ...]]]


def snapshot(sessions: Iterable[Session]) -> Snapshot:
    """Capture the sessions as a save writes them."""
    rows = []
    transcripts = []
    for session in sessions:
        rows.append(index_row(session))
        exchanges = (
            session.stored_form()
            if isinstance(session, StoredSession)
            else tuple(session.transcript)
        )
        transcripts.append(
            (session.conversation_id, session.summary, exchanges, session.summary_pending)
        )
    return Snapshot(rows, transcripts)


@dataclass(slots=True)
class StoredIndex:
    """The sessions read from the index, checked, clamped and without duplicates."""

    live: list[StoredSession] = field(default_factory=list)
    ran_out: list[StoredSession] = field(default_factory=list)
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

    # Conversation id -> (summary, exchanges as checked JSON (None if none), exchanges
    # waiting for the summary).
    by_id: dict[str, tuple[str | None, bytes | None, tuple[Exchange, ...]]] = field(
        default_factory=dict
    )
    problems: list[str] = field(default_factory=list)
    unreadable: str | None = None


# --- index rows ---------------------------------------------------------------


def index_row(session: Session) -> list[Any]:
    """Return a session's index row (everything but the transcript), as stored."""
    row: list[Any] = [
        session.conversation_id,
        session.session_key,
        session.device_id,
        session.satellite_id,
        session.user_id,
        session.started_at.isoformat(),
        session.last_activity.isoformat(),
        session.turns,
    ]
    if session.participants != first_participants(session.user_id):
        row.append(list(session.participants))
    return row


def session_from_row(row: Any, now: datetime, max_turns: int) -> StoredSession:
    """Rebuild a session (transcript attached later) from its index row; raise Unreadable."""
    if type(row) is not list or len(row) < INDEX_FIELDS:
        raise Unreadable(f"expected a list of {INDEX_FIELDS} fields")
    cid, key, device_id, satellite_id, user_id, started, last, turns = row[:INDEX_FIELDS]
    session = _build(
        now,
        max_turns,
        conversation_id=cid,
        session_key=key,
        device_id=device_id,
        satellite_id=satellite_id,
        user_id=user_id,
        started_at=started,
        last_activity=last,
        turns=turns,
    )
    if len(row) > INDEX_FIELDS:
        session.participants = _participants(row[INDEX_FIELDS])
    return session


def session_from_v1(data: Any, now: datetime, max_turns: int) -> StoredSession:
    """Rebuild a record written by storage version 1 (a dict, transcript inline)."""
    if not isinstance(data, dict):
        raise Unreadable("not an object")
    get = data.get
    session = _build(
        now,
        max_turns,
        conversation_id=get("conversation_id"),
        session_key=get("session_key"),
        device_id=get("device_id"),
        satellite_id=get("satellite_id"),
        user_id=get("user_id"),
        started_at=get("started_at"),
        last_activity=get("last_activity"),
        turns=get("turns"),
    )
    session.transcript.extend(decode_transcript(get("transcript")))
    return session


def _build(
    now: datetime,
    max_turns: int,
    *,
    conversation_id: Any,
    session_key: Any,
    device_id: Any,
    satellite_id: Any,
    user_id: Any,
    started_at: Any,
    last_activity: Any,
    turns: Any,
) -> StoredSession:
    """Check and clamp stored fields into a session (expires_at is set by read_index)."""
    if type(turns) is not int or turns < 0:
        raise Unreadable("the number of turns is not a count")
    # A clock that was wrong when the record was written must not keep the session
    # alive for years: nothing happened later than now.
    last = min(_timestamp(last_activity, now, "last activity"), now)
    started = min(_timestamp(started_at, now, "start"), last)
    return StoredSession(
        conversation_id=_text(conversation_id, "conversation id"),
        session_key=_text(session_key, "session key"),
        device_id=_optional_text(device_id, "device id"),
        satellite_id=_optional_text(satellite_id, "satellite id"),
        user_id=_optional_text(user_id, "user id"),
        started_at=started,
        last_activity=last,
        expires_at=last,
        turns=turns,
        max_turns=max_turns,
        participants=first_participants(user_id),
    )


def _text(value: Any, what: str) -> str:
    """Return a non-empty string or raise."""
    if type(value) is not str or not value:
        raise Unreadable(f"the {what} is not a non-empty text")
    return value


def _participants(value: Any) -> tuple[str, ...]:
    """Return the user ids of a row's participants or raise."""
    if type(value) is not list:
        raise Unreadable("the participants are not a list")
    return tuple(_text(user_id, "participant's user id") for user_id in value)


def _optional_text(value: Any, what: str) -> str | None:
    """Return a string, None for None, or raise."""
    return None if value is None else _text(value, what)


def _timestamp(value: Any, now: datetime, what: str) -> datetime:
    """Parse an ISO-8601 time with its zone (as isoformat writes it), in UTC, clamped.

    A time outside what UTC can express (year 9999 ahead of UTC, year 1 behind it) is
    clamped to now, or to 1970 for the distant past, rather than failing the record.
    """
    if type(value) is not str:
        raise Unreadable(f"the {what} time is not text")
    # datetime.fromisoformat reads what index_row writes, several times faster than
    # dt_util.parse_datetime, which matters when thousands of sessions load.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Unreadable(f"the {what} time is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise Unreadable(f"the {what} time has no zone")
    if parsed.tzinfo is UTC:
        return parsed
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return now if parsed.year > now.year else _EARLIEST


# --- exchanges ----------------------------------------------------------------


def encode_exchange(exchange: Exchange) -> list[Any]:
    """Return the stored form: [user, assistant], plus [rounds, local(, facts)] when needed.

    A round is [text, calls] and a call [id, name, arguments, result]: lists parse faster
    than objects, and most exchanges are the two texts alone.
    """
    user, assistant, rounds, local, facts = exchange
    if not rounds and not local and facts is None:
        return [user, assistant]
    encoded = [user, assistant, [[r.text, [list(c) for c in r.calls]] for r in rounds], local]
    if facts is not None:
        encoded.append(facts)
    return encoded


def decode_transcript(raw: Any) -> list[Exchange]:
    """Rebuild a stored transcript (either storage version); raise Unreadable."""
    if type(raw) is not list:
        raise Unreadable("the transcript is not a list")
    return [_decode_exchange(item, n) for n, item in enumerate(raw, 1)]


def _decode_exchange(item: Any, n: int) -> Exchange:
    """Rebuild one stored exchange."""
    if type(item) is not list or not 2 <= len(item) <= 5:
        raise Unreadable(f"transcript entry {n} is not an exchange")
    user, assistant = item[0], item[1]
    # A delegate may answer with no speech at all: that is an empty reply.
    user = "" if user is None else user
    assistant = "" if assistant is None else assistant
    if type(user) is not str or type(assistant) is not str:
        raise Unreadable(f"transcript entry {n} is not text")
    if len(item) == 2:
        return Exchange(user, assistant)
    rounds = item[2] if item[2] is not None else []
    local = item[3] if len(item) >= 4 else False
    facts = item[4] if len(item) == 5 else None
    if type(rounds) is not list or type(local) is not bool:
        raise Unreadable(f"transcript entry {n} has malformed tool rounds")
    if facts is not None and type(facts) is not str:
        raise Unreadable(f"transcript entry {n} has facts that are not text")
    return Exchange(user, assistant, tuple(_decode_round(r, n) for r in rounds), local, facts)


def _decode_round(raw: Any, n: int) -> ToolRound:
    """Rebuild one stored tool round."""
    if type(raw) is not list or len(raw) != 2 or type(raw[1]) is not list:
        raise Unreadable(f"transcript entry {n} has a malformed tool round")
    text, calls = raw
    if text is not None and type(text) is not str:
        raise Unreadable(f"transcript entry {n} has a tool round whose text is not text")
    decoded = []
    for call in calls:
        if (
            type(call) is not list
            or len(call) != 4
            or type(call[0]) is not str
            or type(call[1]) is not str
            or type(call[2]) is not dict
            or type(call[3]) is not str
        ):
            raise Unreadable(f"transcript entry {n} has a malformed tool call")
        decoded.append(ToolCall(call[0], call[1], call[2], call[3]))
    return ToolRound(text, tuple(decoded))


# --- reading (executor) ---------------------------------------------------------


def transcripts_path(path: Path) -> Path:
    """Return the transcripts file of an index file."""
    return Path(f"{path}{TRANSCRIPTS_SUFFIX}")


def _read_envelope(path: Path) -> tuple[int, list[Any], dict[str, Any]] | None:
    """Return (version, session records, data) of the index, or None without a file.

    Raise Unreadable saying why the file cannot be used.
    """
    if (envelope := read_envelope(path, STORAGE_VERSION)) is None:
        return None
    version, data = envelope
    if not isinstance(records := data.get("sessions"), list):
        raise Unreadable("the file has no session list")
    return version, records, data


def read_index(
    path: Path, now: datetime, session_timeout: timedelta, max_turns: int
) -> StoredIndex:
    """Read, check and clamp the index; split live and ran-out sessions."""
    # A save cut short (a power loss) leaves its temporary file; nothing else writes
    # these files now, so any there is stale.
    for temporary in temporary_files(path):
        temporary.unlink(missing_ok=True)
    index = StoredIndex()
    try:
        envelope = _read_envelope(path)
    except Unreadable as err:
        index.unreadable = str(err)
        return index
    if envelope is None:
        if transcripts_path(path).exists():
            # Its sessions cannot be rebuilt without their rows; what they said is kept.
            index.unreadable = "the index file is missing"
        return index
    version, records, data = envelope
    build: Callable[[Any, datetime, int], StoredSession] = session_from_row
    if version == 1:
        index.transcripts_inline = True
        build = session_from_v1
    else:
        generation = data.get("generation")
        index.generation = generation if type(generation) is int else 0
        index.index_stale = _transcripts_generation(transcripts_path(path)) > index.generation
    sessions: list[StoredSession] = []
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


def _transcripts_generation(path: Path) -> int:
    """Return the generation in the transcripts file's first line (0 if none)."""
    try:
        with open(path, "rb") as file:
            header = json_loads(file.readline())
    except (OSError, ValueError):
        return 0
    generation = header.get("generation") if isinstance(header, dict) else None
    return generation if type(generation) is int else 0


def read_lines(path: Path, stored: StoredTranscripts) -> list[bytes]:
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


def parse_lines(
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
    them (see `StoredSession`).
    """
    item = json_loads(line)
    if type(item) is not list or len(item) not in (3, 4):
        raise Unreadable("not a session's transcript")
    conversation_id, summary, raw = item[:3]
    pending = decode_transcript(item[3]) if len(item) == 4 else []
    if type(conversation_id) is not str:
        raise Unreadable("the conversation id is not text")
    if summary is not None and type(summary) is not str:
        raise Unreadable("the summary is not text")
    kept = decode_transcript(raw)[-max_turns:]
    by_id[conversation_id] = (
        summary,
        json_bytes([encode_exchange(e) for e in kept]) if kept else None,
        tuple(pending),
    )


# --- writing (executor) ---------------------------------------------------------


def write_files(path: Path, key: str, snapshot: Snapshot, generation: int) -> None:
    """Write the transcripts, then the index, each atomically; raise OSError on failure."""
    header = json_bytes({"version": STORAGE_VERSION, "generation": generation})
    # Streamed: one line is encoded at a time, never the whole file at once.
    write_atomic(
        transcripts_path(path),
        chain((header,), (_transcript_line(*item) for item in snapshot.transcripts)),
    )
    envelope = {
        "version": STORAGE_VERSION,
        "minor_version": STORAGE_MINOR_VERSION,
        "key": key,
        "data": {"generation": generation, "sessions": snapshot.rows},
    }
    write_atomic(path, (json_bytes(envelope),))


def _transcript_line(
    conversation_id: str,
    summary: str | None,
    exchanges: StoredExchanges,
    pending: tuple[Exchange, ...],
) -> bytes:
    """Return one session's line; texts JSON cannot hold (half an emoji) are replaced."""
    try:
        return json_bytes(_line_item(conversation_id, summary, exchanges, pending, clean=False))
    except TypeError:  # orjson refuses lone surrogates (its error is a TypeError)
        return json_bytes(_line_item(conversation_id, summary, exchanges, pending, clean=True))


def _line_item(
    conversation_id: str,
    summary: str | None,
    exchanges: StoredExchanges,
    pending: tuple[Exchange, ...],
    *,
    clean: bool,
) -> list[Any]:
    """Return one session's line as a JSON value, its texts sanitized when `clean`."""

    def encoded(items: tuple[Exchange, ...]) -> list[Any]:
        return [encode_exchange(sanitize_exchange(e) if clean else e) for e in items]

    if clean and summary is not None:
        summary = sanitize_text(summary)
    # A transcript restored and never decoded is written back as it was read (checked).
    item: list[Any] = [
        conversation_id,
        summary,
        json_fragment(exchanges) if isinstance(exchanges, bytes) else encoded(exchanges),
    ]
    if pending:
        item.append(encoded(pending))
    return item


def remove_files(path: Path) -> None:
    """Delete every file of the agent: both files, copies kept aside, temporary files."""
    for file in (path, transcripts_path(path)):
        file.unlink(missing_ok=True)
    # Copies kept aside: ours (`.unreadable.<time>`) and Store's (`.corrupt.<time>`, made
    # by the release that wrote version 1).
    name = glob.escape(path.name)
    for suffix in (".unreadable.", ".corrupt.", f"{TRANSCRIPTS_SUFFIX}.unreadable."):
        for copy in path.parent.glob(f"{name}{suffix}*"):
            copy.unlink(missing_ok=True)
    for temporary in temporary_files(path):
        temporary.unlink(missing_ok=True)


def copy_aside(path: str, copy: str) -> bool:
    """Copy a file that could not be (wholly) read to `copy`, untouched; False if none."""
    if not os.path.exists(path):
        return False
    shutil.copy2(path, copy)
    return True
