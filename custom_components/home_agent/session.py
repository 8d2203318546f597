"""The session record: one persistent conversation and its transcript."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


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


def first_participants(user_id: str | None) -> tuple[str, ...]:
    """Return who takes part in a session as it starts: its user, if signed in."""
    return (user_id,) if user_id else ()


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
    summary: str | None = None
    # Exchanges that left the transcript and wait to join the summary.
    summary_pending: tuple[Exchange, ...] = ()
    # Every signed-in user who took part, in the order they joined (the one who started
    # it first): who may clear it depends on all of them, not on who started it.
    participants: tuple[str, ...] = ()
    # The exchanges, made when first needed (a session read from disk starts with its
    # stored ones, see disk_format.StoredSession).
    _exchanges: deque[Exchange] | None = field(default=None, init=False, repr=False)

    @property
    def identity(self) -> tuple[str, datetime]:
        """Return what tells this session from a later one with the same conversation id."""
        return (self.conversation_id, self.started_at)

    @property
    def transcript(self) -> deque[Exchange]:
        """Return the exchanges kept, oldest first."""
        if (exchanges := self._exchanges) is None:
            exchanges = self._exchanges = deque(self._first_exchanges(), maxlen=self.max_turns)
        return exchanges

    def _first_exchanges(self) -> Iterable[Exchange]:
        """Return what the transcript starts with when first needed: nothing."""
        return ()

    def public_data(self) -> dict[str, Any]:
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
