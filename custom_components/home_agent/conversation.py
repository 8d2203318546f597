"""The conversation entity: each turn runs in its session and the chat log, and is remembered."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .apology import Apologies
from .const import TURN_TIME_LIMIT
from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .exchanges import last_text, turn_exchange
from .metrics import TurnMetrics

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HomeAgentConfigEntry,
    async_add_entities: AddEntitiesCallback,
) -> None:
    """Add the agent's conversation entity."""
    async_add_entities([HomeAgentConversationEntity(entry)])


class HomeAgentConversationEntity(
    HomeAgentEntity, conversation.ConversationEntity, AbstractConversationAgent
):
    """A conversation agent whose conversations outlive a wake word."""

    _attr_name = None
    # Replies are written into the chat log as they come (Home Assistant 2025.6+ starts
    # speaking early; older releases ignore the attribute).
    _attr_supports_streaming = True

    def __init__(self, entry: HomeAgentConfigEntry) -> None:
        """Create the agent of a config entry."""
        super().__init__(entry)
        self._attr_unique_id = entry.entry_id
        self._apologies: Apologies | None = None

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Answer in any language the backend speaks."""
        return MATCH_ALL

    @property
    def supported_features(self) -> conversation.ConversationEntityFeature:
        """Offer control only when the agent can act (Home Assistant then answers less locally)."""
        if self.entry.runtime_data.backend.can_act:
            return conversation.ConversationEntityFeature.CONTROL
        return conversation.ConversationEntityFeature(0)

    async def async_added_to_hass(self) -> None:
        """Also register under the entry id, as core agents do."""
        await super().async_added_to_hass()
        self._apologies = Apologies(self.hass, self.entry)
        conversation.async_set_agent(self.hass, self.entry, self)

    async def async_will_remove_from_hass(self) -> None:
        """Unregister the entry id."""
        conversation.async_unset_agent(self.hass, self.entry)
        await super().async_will_remove_from_hass()

    async def _async_handle_message(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        """Answer a turn within its persistent session, in the pipeline's chat log.

        Any failure is a spoken apology that is not remembered; the answer always carries
        the session's conversation id.
        """
        # The agent's parts, held for the whole turn: an unloading agent waits for it.
        data = self.entry.runtime_data
        assert self._apologies is not None
        async with data.tracker.async_turn(user_input, chat_log) as turn:
            start = len(chat_log.content)
            try:
                async with asyncio.timeout(TURN_TIME_LIMIT):
                    reply = await data.backend.async_answer(user_input, chat_log, turn.session)
            except Exception as err:
                response = self._apologies.async_apologize(
                    self.entity_id, user_input, chat_log, err
                )
                listen_again = False
            else:
                added = chat_log.content[start:]
                text = last_text(added)
                response = reply.response or _speech_response(user_input, text)
                listen_again = (
                    chat_log.continue_conversation
                    if reply.continue_conversation is None
                    else reply.continue_conversation
                )
                if response.response_type is not intent.IntentResponseType.ERROR:
                    # A delegate's error is spoken as the delegate put it, not remembered.
                    self._apologies.async_answered()
                    speech = response.speech.get("plain", {}).get("speech") or text
                    turn.exchange = turn_exchange(
                        user_input.text,
                        speech,
                        added if reply.contents is None else reply.contents,
                        reply.facts,
                    )
                    turn.leaving = reply.leaving
                    data.metrics.async_record(
                        TurnMetrics.of_turn(turn.started, time.monotonic(), reply.stats)
                    )
        return conversation.ConversationResult(
            response=response,
            conversation_id=turn.session.conversation_id,
            continue_conversation=listen_again,
        )


def _speech_response(
    user_input: conversation.ConversationInput, speech: str
) -> intent.IntentResponse:
    """Return a response that says `speech`."""
    response = intent.IntentResponse(language=user_input.language)
    response.async_set_speech(speech)
    return response
