"""The session record: one persistent conversation and its transcript."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from homeassistant.util.json import json_loads


class ToolCall(NamedTuple):
    """A tool the model called during a turn, with a compact form of its result."""

    id: str
    name: str
    # The arguments as the model gave them (a JSON object).
    arguments: dict[str, Any]
    # The result as compact JSON text, at most TOOL_RESULT_MAX_CHARS (cut with a marker).
    result: str


class ToolRound(NamedTuple):
    """One model message that asked for tools: its text (if any) and its calls."""

    text: str | None
    calls: tuple[ToolCall, ...]


class Exchange(NamedTuple):
    """One answered turn: what the user said, what was done, and what was replied."""

    user: str
    assistant: str
    # The tool rounds of the turn, in order (empty for a plain answer).
    rounds: tuple[ToolRound, ...] = ()
    # True when Home Assistant answered the turn itself (a local intent, a sentence
    # trigger) and Home Agent only recorded it.
    local: bool = False
    # What the user message carried for that turn only (the time, on releases without a
    # date/time tool): sent again with it, so later requests repeat the earlier one exactly.
    facts: str | None = None


@dataclass(slots=True, eq=False)
class Session:
    """One persistent conversation of an agent."""

    conversation_id: str
    session_key: str
    device_id: str | None
    satellite_id: str | None
    user_id: str | None
    started_at: datetime
    last_activity: datetime
    expires_at: datetime
    turns: int = 0
    # The most exchanges the transcript keeps (None: no limit).
    max_turns: int | None = None
    # A running summary of exchanges that left the transcript (never shown anywhere).
    recap: str | None = None
    # Exchanges that left the transcript and wait to join the summary.
    recap_pending: tuple[Exchange, ...] = ()
    # A restored transcript as it was stored (checked JSON), until it is first needed.
    stored_transcript: bytes | None = None
    _exchanges: deque[Exchange] | None = field(default=None, init=False, repr=False)

    @property
    def transcript(self) -> deque[Exchange]:
        """Return the exchanges kept, oldest first.

        A restored transcript is decoded when it is first needed (a turn, diagnostics).
        Until then it is one bytes object, which the interpreter's garbage collector does
        not walk (it walks each `Exchange`): restoring thousands of sessions neither takes
        long nor sets off a full collection of the whole process.
        """
        if (exchanges := self._exchanges) is None:
            stored, self.stored_transcript = self.stored_transcript, None
            decoded = decode_transcript(json_loads(stored)) if stored is not None else ()
            exchanges = self._exchanges = deque(decoded, maxlen=self.max_turns)
        return exchanges

    @transcript.setter
    def transcript(self, exchanges: deque[Exchange]) -> None:
        """Replace the exchanges kept."""
        self._exchanges = exchanges
        self.stored_transcript = None

    def attach_stored(self, stored: bytes) -> None:
        """Give a restored session its stored transcript (checked JSON of its exchanges).

        Exchanges recorded since start-up (before the file was read) go after it.
        """
        later = self._exchanges
        self._exchanges = None
        self.stored_transcript = stored
        if later:
            self.transcript.extend(later)

    def transcript_to_store(self) -> bytes | tuple[Exchange, ...]:
        """Return the transcript for a save: as stored when it was never decoded."""
        if self._exchanges is None:
            return () if self.stored_transcript is None else self.stored_transcript
        return tuple(self._exchanges)

    def summary(self) -> dict[str, Any]:
        """Return the public description: everything but the transcript."""
        return {
            "conversation_id": self.conversation_id,
            "session_key": self.session_key,
            "device_id": self.device_id,
            "satellite_id": self.satellite_id,
            "user_id": self.user_id,
            "started_at": self.started_at.isoformat(),
            "last_activity": self.last_activity.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "turns": self.turns,
        }

    def index_row(self) -> list[Any]:
        """Return the record's index row (everything but the transcript), as stored."""
        return [
            self.conversation_id,
            self.session_key,
            self.device_id,
            self.satellite_id,
            self.user_id,
            self.started_at.isoformat(),
            self.last_activity.isoformat(),
            self.turns,
        ]

    @classmethod
    def from_index_row(cls, row: Any, now: datetime, max_turns: int) -> Session:
        """Rebuild a session (empty transcript) from its index row; raise Unreadable."""
        if type(row) is not list or len(row) < INDEX_FIELDS:
            raise Unreadable(f"expected a list of {INDEX_FIELDS} fields")
        cid, key, device_id, satellite_id, user_id, started, last, turns = row[:INDEX_FIELDS]
        return cls._build(
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

    @classmethod
    def from_v1(cls, data: Any, now: datetime, max_turns: int) -> Session:
        """Rebuild a record written by storage version 1 (a dict, transcript inline)."""
        if not isinstance(data, dict):
            raise Unreadable("not an object")
        get = data.get
        session = cls._build(
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

    @classmethod
    def _build(
        cls,
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
    ) -> Session:
        """Check and clamp stored fields into a session (expires_at is set by the tracker)."""
        if type(turns) is not int or turns < 0:
            raise Unreadable("the number of turns is not a count")
        # A clock that was wrong when the record was written must not keep the session
        # alive for years: nothing happened later than now.
        last = min(_timestamp(last_activity, now, "last activity"), now)
        started = min(_timestamp(started_at, now, "start"), last)
        return cls(
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
        )


class Unreadable(ValueError):
    """A stored record cannot be read; the message says what and where, never a value."""


# Index row: conversation id, key, device, satellite, user, started, last activity, turns.
INDEX_FIELDS = 8
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def sanitize_text(text: str) -> str:
    """Return `text` as JSON (UTF-8) can hold it: lone surrogates become U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A surrogate pair split into two code points is joined; half a pair is replaced.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _sanitize_value(value: Any) -> Any:
    """Return a JSON value with every string sanitized (tool arguments)."""
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {sanitize_text(str(k)): _sanitize_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_sanitize_value(v) for v in value]
    return value


def sanitize_exchange(exchange: Exchange) -> Exchange:
    """Return the exchange with every text made storable (see sanitize_text)."""
    return Exchange(
        sanitize_text(exchange.user or ""),
        sanitize_text(exchange.assistant or ""),
        tuple(
            ToolRound(
                None if r.text is None else sanitize_text(r.text),
                tuple(
                    ToolCall(
                        sanitize_text(c.id),
                        sanitize_text(c.name),
                        _sanitize_value(c.arguments),
                        sanitize_text(c.result),
                    )
                    for c in r.calls
                ),
            )
            for r in exchange.rounds
        ),
        exchange.local,
        None if exchange.facts is None else sanitize_text(exchange.facts),
    )


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


def _text(value: Any, what: str) -> str:
    """Return a non-empty string or raise."""
    if type(value) is not str or not value:
        raise Unreadable(f"the {what} is not a non-empty text")
    return value


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
