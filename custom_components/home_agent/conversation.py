"""The conversation entity: each turn resolves its session, is answered, is remembered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .backend import Answer
from .compat import satellite_id_of
from .const import DOMAIN, LOGGER
from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .keys import known_device_id, known_satellite_id
from .session import Exchange, Session

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
    _attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    def __init__(self, entry: HomeAgentConfigEntry) -> None:
        """Create the agent of a config entry."""
        super().__init__(entry)
        self._attr_unique_id = entry.entry_id
        # conversation id -> (lock, number of turns holding or waiting for it)
        self._turn_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._failing = False

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Answer in any language the backend speaks."""
        return MATCH_ALL

    async def async_added_to_hass(self) -> None:
        """Also register under the entry id, as core agents do."""
        await super().async_added_to_hass()
        conversation.async_set_agent(self.hass, self.entry, self)

    async def async_will_remove_from_hass(self) -> None:
        """Unregister the entry-id alias."""
        conversation.async_unset_agent(self.hass, self.entry)
        await super().async_will_remove_from_hass()

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer a turn within its persistent session."""
        data = self.entry.runtime_data
        session = data.tracker.async_resolve(
            user_input.conversation_id,
            # Ids Home Assistant does not know key nothing (no session sensor either).
            device_id=known_device_id(self.hass, user_input.device_id),
            satellite_id=known_satellite_id(self.hass, satellite_id_of(user_input)),
            user_id=user_input.context.user_id,
        )
        # Turns of one session are answered one after the other, so each sees the last.
        async with self._turn_lock(session.conversation_id):
            answer = await self._async_answer(user_input, session)
            data.tracker.async_record_turn(
                session,
                Exchange(user_input.text, answer.speech) if answer.remember else None,
            )
        return conversation.ConversationResult(
            response=answer.response,
            conversation_id=session.conversation_id,
            continue_conversation=answer.continue_conversation,
        )

    @asynccontextmanager
    async def _turn_lock(self, conversation_id: str) -> AsyncIterator[None]:
        """Serialize the turns of one session; forget the lock when nobody needs it."""
        lock, users = self._turn_locks.get(conversation_id, (asyncio.Lock(), 0))
        self._turn_locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turn_locks[conversation_id]
            if users == 1:
                del self._turn_locks[conversation_id]
            else:
                self._turn_locks[conversation_id] = (lock, users - 1)

    async def _async_answer(
        self, user_input: conversation.ConversationInput, session: Session
    ) -> Answer:
        """Ask the backend; turn any failure into a spoken apology."""
        try:
            answer = await self.entry.runtime_data.backend.async_answer(user_input, session)
        except HomeAssistantError as err:
            # Logged once while the backend keeps failing, and once when it is back.
            # The error's text may quote what was said (a delegate's): details at debug only.
            LOGGER.debug("Cannot answer: %s", err)
            if not self._failing:
                LOGGER.warning(
                    "%s cannot answer (%s)",
                    self.entry.title,
                    err.translation_key or type(err).__name__,
                )
            self._failing = True
            message = str(err)
        except Exception as err:
            LOGGER.error("Unexpected error while answering (%s)", type(err).__name__)
            LOGGER.debug("Unexpected error while answering", exc_info=True)
            message = str(
                HomeAssistantError(translation_domain=DOMAIN, translation_key="unexpected")
            )
        else:
            if self._failing:
                LOGGER.info("%s answers again", self.entry.title)
                self._failing = False
            return answer
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, message)
        return Answer(response=response, speech=message, remember=False)
