"""The conversation entity: each turn resolves its session, runs in the chat log, is remembered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import time
from typing import Literal

from homeassistant.components import conversation
from homeassistant.components.conversation.models import AbstractConversationAgent
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .client import ModelAuthError
from .compat import satellite_id_of
from .const import DOMAIN, LOGGER, TURN_TIME_LIMIT, UNLOAD_TURN_WAIT
from .data import HomeAgentConfigEntry
from .entity import HomeAgentEntity
from .keys import known_device_id, known_satellite_id
from .local_turns import LocalTurnWatcher
from .memory import turn_rounds
from .metrics import TurnMetrics
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
    # Replies are written into the chat log as they come (Home Assistant 2025.6+ starts
    # speaking early; older releases ignore the attribute).
    _attr_supports_streaming = True

    def __init__(self, entry: HomeAgentConfigEntry) -> None:
        """Create the agent of a config entry."""
        super().__init__(entry)
        self._attr_unique_id = entry.entry_id
        # conversation id -> (lock, number of turns holding or waiting for it)
        self._turn_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._turns_in_flight: set[asyncio.Future[None]] = set()
        self._failing = False
        self._watcher: LocalTurnWatcher | None = None
        # Chat log id -> whether the backend asked the device to listen again (this turn).
        self._continue: dict[str, bool] = {}

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
        """Also register under the entry id, as core agents do; watch for local turns."""
        await super().async_added_to_hass()
        conversation.async_set_agent(self.hass, self.entry, self)
        self._watcher = LocalTurnWatcher(self.hass, self._async_record_local_turns)

    async def async_will_remove_from_hass(self) -> None:
        """Let turns in flight finish (their exchanges are kept), then unregister."""
        if self._turns_in_flight:
            await asyncio.wait(self._turns_in_flight, timeout=UNLOAD_TURN_WAIT)
        if self._watcher is not None:
            self._watcher.async_stop()
        conversation.async_unset_agent(self.hass, self.entry)
        await super().async_will_remove_from_hass()

    @callback
    def _async_record_local_turns(self, conversation_id: str, exchanges: list[Exchange]) -> None:
        """Add turns Home Assistant answered itself to the session they belong to."""
        if (session := self._tracker.get(conversation_id)) is not None:
            for exchange in exchanges:
                self._tracker.async_record_turn(session, exchange)

    async def _async_handle_message(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        """Answer a turn within its persistent session, in the pipeline's chat log."""
        done: asyncio.Future[None] = self.hass.loop.create_future()
        self._turns_in_flight.add(done)
        try:
            return await self._async_turn(user_input, chat_log)
        finally:
            done.set_result(None)
            self._turns_in_flight.discard(done)

    def _resolve(self, user_input: conversation.ConversationInput) -> Session:
        """Return the session of a turn (resolution rules of the public contract)."""
        return self._tracker.async_resolve(
            user_input.conversation_id,
            # Ids Home Assistant does not know key nothing (no session sensor either).
            device_id=known_device_id(self.hass, user_input.device_id),
            satellite_id=known_satellite_id(self.hass, satellite_id_of(user_input)),
            user_id=user_input.context.user_id,
        )

    async def _async_turn(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
    ) -> conversation.ConversationResult:
        """Answer and remember one turn; turns of one session run one after the other."""
        session = self._resolve(user_input)
        # Right after start-up the stored transcripts may still be on their way in.
        await self._tracker.async_transcripts_loaded()
        async with self._turn_lock(session.conversation_id):
            if self._tracker.get(session.conversation_id) is not session:
                # Cleared (or expired) while this turn waited: it starts afresh.
                session = self._resolve(user_input)
            assert self._watcher is not None
            recaps = self.entry.runtime_data.recaps
            self._watcher.async_turn_started(chat_log, session.conversation_id)
            self._tracker.async_begin_turn(session)
            if recaps is not None:
                recaps.async_turn_started(session)
            try:
                response, exchange = await self._async_answer(user_input, chat_log, session)
                self._tracker.async_record_turn(session, exchange)
            finally:
                self._tracker.async_end_turn(session)
                self._watcher.async_turn_ended(chat_log)
                if recaps is not None:
                    recaps.async_turn_ended(session)
        return conversation.ConversationResult(
            response=response,
            conversation_id=session.conversation_id,
            continue_conversation=self._continue.pop(
                chat_log.conversation_id, chat_log.continue_conversation
            ),
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
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        session: Session,
    ) -> tuple[intent.IntentResponse, Exchange | None]:
        """Ask the backend; any failure becomes a spoken apology that is not remembered."""
        start = len(chat_log.content)
        started = time.monotonic()
        try:
            async with asyncio.timeout(TURN_TIME_LIMIT):
                reply = await self.entry.runtime_data.backend.async_answer(
                    user_input, chat_log, session
                )
        except ModelAuthError as err:
            self.entry.async_start_reauth(self.hass)
            return self._apology(user_input, chat_log, err), None
        except TimeoutError:
            error = HomeAssistantError(translation_domain=DOMAIN, translation_key="turn_timeout")
            return self._apology(user_input, chat_log, error), None
        except HomeAssistantError as err:
            return self._apology(user_input, chat_log, err), None
        except Exception as err:
            # The traceback may quote what was said: only its kind above debug.
            LOGGER.error("Unexpected error while answering (%s)", type(err).__name__)
            LOGGER.debug("Unexpected error while answering", exc_info=True)
            error = HomeAssistantError(translation_domain=DOMAIN, translation_key="unexpected")
            return self._apology(user_input, chat_log, error), None
        response = reply.response
        if response is not None and response.response_type is intent.IntentResponseType.ERROR:
            # A delegate's error: spoken as the delegate put it, not remembered as an answer.
            return response, None
        if self._failing:
            LOGGER.info("%s answers again", self.entry.title)
            self._failing = False
        self.entry.runtime_data.metrics.async_record(
            TurnMetrics.of_turn(started, time.monotonic(), reply.stats)
        )
        added = chat_log.content[start:]
        if reply.continue_conversation is not None:
            self._continue[chat_log.conversation_id] = reply.continue_conversation
        speech = next(
            (
                content.content
                for content in reversed(added)
                if isinstance(content, conversation.AssistantContent) and content.content
            ),
            "",
        )
        if response is None:
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_speech(speech)
        else:
            speech = response.speech.get("plain", {}).get("speech") or speech
        rounds = turn_rounds(added if reply.contents is None else reply.contents)
        return response, Exchange(user_input.text, speech, rounds, facts=reply.facts)

    def _apology(
        self,
        user_input: conversation.ConversationInput,
        chat_log: conversation.ChatLog,
        err: HomeAssistantError,
    ) -> intent.IntentResponse:
        """Say why the turn failed, in the chat log too; log it once while it keeps failing."""
        message = str(err)
        # The message of another integration's error may quote what was said: only the
        # kind of failure above debug.
        reason = err.translation_key or type(err).__name__
        if self._failing:
            LOGGER.debug("Still cannot answer (%s): %s", reason, message)
        else:
            LOGGER.warning("%s cannot answer (%s)", self.entry.title, reason)
            LOGGER.debug("Details: %s", message, exc_info=err)
        self._failing = True
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id, content=message)
        )
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, message)
        return response
