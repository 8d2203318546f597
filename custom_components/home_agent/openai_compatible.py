"""Backend `openai`: any OpenAI-compatible Chat Completions endpoint ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.conversation import ConversationInput
from homeassistant.core import HomeAssistant

from .backend import Answer
from .session import Session


class OpenAICompatibleBackend:
    """Answer with a model behind an OpenAI-compatible endpoint."""

    def __init__(self, hass: HomeAssistant, settings: Mapping[str, Any]) -> None:
        """Remember the endpoint settings."""
        self._hass = hass
        self._settings = settings

    async def async_answer(self, user_input: ConversationInput, session: Session) -> Answer:
        """Answer one turn."""
        raise NotImplementedError
