"""The interface every answering backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from homeassistant.components.conversation import ConversationInput
from homeassistant.helpers import intent

from .session import Session


@dataclass(slots=True, frozen=True)
class Answer:
    """A backend's reply to one turn."""

    response: intent.IntentResponse
    speech: str
    continue_conversation: bool = False
    # False when the reply is an error the transcript should not keep.
    remember: bool = True


class AgentBackend(Protocol):
    """Answers turns; raises a translated HomeAssistantError when it cannot."""

    async def async_answer(self, user_input: ConversationInput, session: Session) -> Answer:
        """Answer one turn of a session (its transcript holds the earlier turns)."""
        ...


def speech_response(language: str, speech: str) -> intent.IntentResponse:
    """Return a plain spoken response."""
    response = intent.IntentResponse(language=language)
    response.async_set_speech(speech)
    return response


def asks_back(speech: str) -> bool:
    """Return whether a reply expects an answer (the mic should reopen)."""
    return speech.rstrip().endswith(("?", ";", "？"))
