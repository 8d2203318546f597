"""One turn of a session, and those who follow turns (summaries, local turns, delegates)."""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Protocol

from homeassistant.components.conversation import ChatLog, ConversationInput

from .session import Exchange, Session


@dataclass(slots=True)
class Turn:
    """A turn being answered: its session, the chat log it runs in, what it adds."""

    session: Session
    user_input: ConversationInput
    chat_log: ChatLog
    # `time.monotonic()` when the turn got its session (after waiting for earlier turns).
    started: float = field(default_factory=time.monotonic)
    # What the transcript keeps of the turn; None: nothing (the turn failed).
    exchange: Exchange | None = None
    # Oldest exchanges that leave the transcript with this turn (the token budget).
    leaving: int = 0


class TurnListener(Protocol):
    """Told when a session's turn starts and when it has been recorded."""

    def async_turn_started(self, turn: Turn) -> None:
        """React to a turn that is about to be answered (its session is locked)."""

    def async_turn_ended(self, turn: Turn) -> None:
        """React to a turn whose exchange (if any) is in the transcript."""
