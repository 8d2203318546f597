"""What a failed turn says: a translated, spoken apology, logged once while failures last."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent

from .backend import translated_error
from .client import ModelAuthError
from .const import LOGGER


class Apologies:
    """Turn an agent's failures into spoken answers; log a failure once, and the recovery."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Apologize for one agent."""
        self._hass = hass
        self._entry = entry
        self._failing = False

    def async_answered(self) -> None:
        """Note a turn that was answered (after failures, the recovery is logged)."""
        if self._failing:
            LOGGER.info("%s answers again", self._entry.title)
            self._failing = False

    def async_apologize(
        self,
        agent_id: str,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        err: Exception,
    ) -> intent.IntentResponse:
        """Say why the turn failed, in the chat log too; return the error response."""
        error = self._translated(err)
        message = str(error)
        # The message of another integration's error may quote what was said: only the
        # kind of failure above debug.
        reason = error.translation_key or type(err).__name__
        if self._failing:
            LOGGER.debug("Still cannot answer (%s): %s", reason, message)
        else:
            LOGGER.warning("%s cannot answer (%s)", self._entry.title, reason)
            LOGGER.debug("Details: %s", message, exc_info=err)
        self._failing = True
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=agent_id, content=message)
        )
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, message)
        return response

    def _translated(self, err: Exception) -> HomeAssistantError:
        """Return the error to speak for a failure (starting re-authentication if needed)."""
        if isinstance(err, ModelAuthError):
            self._entry.async_start_reauth(self._hass)
            return err
        if isinstance(err, TimeoutError):
            return translated_error("turn_timeout")
        if isinstance(err, HomeAssistantError):
            return err
        # The traceback may quote what was said: only its kind above debug.
        LOGGER.error("Unexpected error while answering (%s)", type(err).__name__)
        LOGGER.debug("Unexpected error while answering", exc_info=err)
        return translated_error("unexpected")
