"""The interface every answering backend implements: what it answers with, how it fails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from homeassistant.components.conversation import ChatLog, Content, ConversationInput
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent

from .const import DOMAIN
from .metrics import TurnStats
from .session import Session


@dataclass(slots=True)
class Reply:
    """What a backend answered in one turn, besides what it wrote into the turn's chat log."""

    # What the turn cost, where known (a delegate's costs are not).
    stats: TurnStats = field(default_factory=TurnStats)
    # A response that carries more than text (a delegate's matched entities, its error);
    # None: the last assistant text the turn added to its chat log is the answer.
    response: intent.IntentResponse | None = None
    # What the turn's user message carried besides the words (the time), for the transcript.
    facts: str | None = None
    # Whether the device should listen again; None: as the chat log says (a question).
    continue_conversation: bool | None = None
    # Where the turn's tool rounds are, when not in the turn's chat log (a delegate's own).
    contents: Sequence[Content] | None = None
    # How many of the oldest exchanges leave the transcript with this turn (they no longer
    # fit the history sent to the model).
    leaving: int = 0


def translated_error(key: str, **placeholders: str) -> HomeAssistantError:
    """Return a failure of a turn whose translated message is spoken to the user."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


class AgentBackend(Protocol):
    """Answers a turn into the turn's chat log; raises a translated HomeAssistantError."""

    @property
    def can_act(self) -> bool:
        """Tell whether the backend can control the home (the entity then offers CONTROL)."""
        ...

    async def async_answer(
        self, user_input: ConversationInput, chat_log: ChatLog, session: Session
    ) -> Reply:
        """Answer one turn of a session (its transcript holds the earlier turns).

        The reply and any tool calls are added to `chat_log` as they come, so the
        pipeline streams them.
        """
        ...
