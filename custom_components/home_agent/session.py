"""The session record: one persistent conversation and its transcript."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    transcript: deque[Exchange] = field(default_factory=deque)
    # A running summary of exchanges that left the transcript (never shown anywhere).
    recap: str | None = None
    # Exchanges that left the transcript and wait to join the summary.
    recap_pending: list[Exchange] = field(default_factory=list)

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

    def as_storage(self) -> dict[str, Any]:
        """Return the record as stored on disk (transcript included)."""
        return {
            **self.summary(),
            "transcript": [[exchange.user, exchange.assistant] for exchange in self.transcript],
        }

    @classmethod
    def from_storage(cls, data: dict[str, Any], max_turns: int) -> Session:
        """Rebuild a stored record; raise ValueError/KeyError/TypeError if malformed."""
        transcript: deque[Exchange] = deque(maxlen=max_turns)
        for exchange in data["transcript"]:
            user, assistant = exchange
            if type(user) is not str or type(assistant) is not str:
                raise TypeError(f"expected two texts, got {exchange!r}")
            transcript.append(Exchange(user, assistant))
        turns = data["turns"]
        if type(turns) is not int:
            raise TypeError(f"expected a number of turns, got {turns!r}")
        get = data.get
        return cls(
            conversation_id=_text(data["conversation_id"]),
            session_key=_text(data["session_key"]),
            device_id=_optional_text(get("device_id")),
            satellite_id=_optional_text(get("satellite_id")),
            user_id=_optional_text(get("user_id")),
            started_at=_timestamp(data["started_at"]),
            last_activity=_timestamp(data["last_activity"]),
            expires_at=_timestamp(data["expires_at"]),
            turns=turns,
            transcript=transcript,
        )


def _text(value: Any) -> str:
    """Return a non-empty string or raise."""
    if type(value) is not str or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _optional_text(value: Any) -> str | None:
    """Return a string, None for None, or raise."""
    return None if value is None else _text(value)


def _timestamp(value: Any) -> datetime:
    """Parse an ISO-8601 time with its zone (as written by isoformat), in UTC."""
    # datetime.fromisoformat reads what Session.summary writes, several times faster
    # than dt_util.parse_datetime, which matters when thousands of sessions load.
    parsed = datetime.fromisoformat(_text(value))
    if parsed.tzinfo is None:
        raise ValueError(f"expected an ISO-8601 time with zone, got {value!r}")
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
