"""What the last turn of an agent cost: times and tokens, for the agent's metric sensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from homeassistant.core import CALLBACK_TYPE, callback


@dataclass(slots=True)
class TurnStats:
    """What one turn cost: filled in by every request of the turn (tool rounds included).

    Times are `time.monotonic()` seconds; token counts add up over the turn's requests and
    stay None while no server reported them.
    """

    first_text_at: float | None = None
    requests: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None

    def add_usage(self, prompt: Any, completion: Any, cached: Any) -> None:
        """Add a request's token counts (values that are not counts are ignored)."""
        self.prompt_tokens = _added(self.prompt_tokens, prompt)
        self.completion_tokens = _added(self.completion_tokens, completion)
        self.cached_tokens = _added(self.cached_tokens, cached)


def _added(total: int | None, value: Any) -> int | None:
    """Return total + value when value is a count."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return total
    return (total or 0) + value


@dataclass(slots=True, frozen=True)
class TurnMetrics:
    """The cost of one answered turn (None: not known for this backend or server)."""

    # Seconds from the turn's start to the first text, and to the complete reply.
    first_text: float | None = None
    reply: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None

    @classmethod
    def of_turn(cls, started: float, finished: float, stats: TurnStats) -> TurnMetrics:
        """Return a turn's metrics from its monotonic start and end and the server's stats.

        What no server reported (a delegate's turn) stays None.
        """
        first = stats.first_text_at
        return cls(
            first_text=None if first is None else first - started,
            reply=finished - started,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            cached_tokens=stats.cached_tokens,
        )


class TurnMetricsHub:
    """Hold an agent's last turn metrics and tell the sensors when they change."""

    def __init__(self) -> None:
        """Start with nothing measured."""
        self.last = TurnMetrics()
        self._listeners: list[Callable[[], None]] = []

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` after each turn; return a function that stops it."""
        self._listeners.append(listener)
        return partial(self._listeners.remove, listener)

    @callback
    def async_record(self, metrics: TurnMetrics) -> None:
        """Keep a turn's metrics and notify the sensors."""
        self.last = metrics
        for listener in list(self._listeners):
            listener()
