"""The interface every answering backend implements."""

from __future__ import annotations

from typing import Protocol

from homeassistant.components.conversation import ChatLog, ConversationInput
from homeassistant.helpers import intent

from .api import TurnStats
from .session import Session


class AgentBackend(Protocol):
    """Answers a turn into the turn's chat log; raises a translated HomeAssistantError."""

    @property
    def can_act(self) -> bool:
        """Tell whether the backend can control the home (the entity then offers CONTROL)."""
        ...

    async def async_answer(
        self,
        user_input: ConversationInput,
        chat_log: ChatLog,
        session: Session,
        stats: TurnStats,
    ) -> intent.IntentResponse | None:
        """Answer one turn of a session (its transcript holds the earlier turns).

        The reply and any tool calls are added to `chat_log` as they come, so the
        pipeline streams them; what the turn cost goes into `stats` where known. A
        backend whose answer carries more than text (a delegate's matched entities)
        returns its response; otherwise None.
        """
        ...
