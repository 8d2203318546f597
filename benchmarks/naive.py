"""The naive design of the original plan, the baseline: save on every turn, expire on lookup.

A minimal but faithful copy of the plan's `ConversationSessionManager` (Phase 1) and of
how its agent uses it in a turn (Phase 2, the `conversation_id is None` branch: the voice
case the plan was written for). Only what the benchmarks exercise is kept; the method
bodies are the plan's. It lives here, never in the integration.

In a real pipeline run the agent never receives `conversation_id=None`, so the plan as
written would take its other branch and never find or save a session at all; the
baseline measures the design as intended instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
import logging
import time
from typing import Any

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant
from homeassistant.helpers import intent
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now

from custom_components.home_agent.backend import AgentBackend
from custom_components.home_agent.session import Exchange, Session

from .harness import AnyLanguageAgent

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
STORAGE_KEY = "home_agent.conversation_sessions"
DEFAULT_SESSION_TIMEOUT = 3600


class ConversationSessionManager:
    """Map users/devices to conversation ids; every change is saved at once."""

    def __init__(self, hass: HomeAssistant, session_timeout: int = DEFAULT_SESSION_TIMEOUT) -> None:
        """Create an empty manager backed by one Store (written without delay)."""
        self._hass = hass
        self._session_timeout = session_timeout
        self._sessions: dict[str, dict[str, Any]] = {}
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, STORAGE_KEY)

    @property
    def sessions(self) -> dict[str, dict[str, Any]]:
        """Return the sessions by key (device id, else user id)."""
        return self._sessions

    async def async_load(self) -> None:
        """Load sessions from storage and drop the expired ones."""
        try:
            data = await self._store.async_load()
            if data and isinstance(data, dict):
                self._sessions = data.get("sessions", {})
                _LOGGER.info("Loaded %d conversation sessions", len(self._sessions))
                self._cleanup_expired_sessions()
        except Exception as err:  # the plan swallows every load error
            _LOGGER.error("Failed to load conversation sessions: %s", err)  # noqa: TRY400
            self._sessions = {}

    async def async_save(self) -> None:
        """Save sessions to storage now."""
        try:
            await self._store.async_save({"sessions": self._sessions})
            _LOGGER.debug("Saved %d conversation sessions", len(self._sessions))
        except Exception as err:  # the plan swallows every save error
            _LOGGER.error("Failed to save conversation sessions: %s", err)  # noqa: TRY400

    def get_conversation_id(
        self, user_id: str | None = None, device_id: str | None = None
    ) -> str | None:
        """Return the key's conversation id unless it expired (lazy expiry on lookup)."""
        key = device_id if device_id else user_id
        if not key:
            _LOGGER.warning("No user_id or device_id provided")
            return None
        session = self._sessions.get(key)
        if not session:
            return None
        last_activity = session.get("last_activity", 0)
        if time.time() - last_activity > self._session_timeout:
            _LOGGER.debug("Session expired for %s", key)
            del self._sessions[key]
            return None
        conversation_id: str | None = session.get("conversation_id")
        return conversation_id

    async def set_conversation_id(
        self, conversation_id: str, user_id: str | None = None, device_id: str | None = None
    ) -> None:
        """Map the key to a conversation id and save."""
        key = device_id if device_id else user_id
        if not key:
            _LOGGER.warning("No user_id or device_id provided")
            return
        self._sessions[key] = {
            "conversation_id": conversation_id,
            "last_activity": time.time(),
            "user_id": user_id,
            "device_id": device_id,
        }
        _LOGGER.debug("Set conversation %s for %s", conversation_id, key)
        await self.async_save()

    async def update_activity(
        self, user_id: str | None = None, device_id: str | None = None
    ) -> None:
        """Record activity of the key's session and save."""
        key = device_id if device_id else user_id
        if not key or key not in self._sessions:
            return
        self._sessions[key]["last_activity"] = time.time()
        await self.async_save()

    def _cleanup_expired_sessions(self) -> None:
        """Remove expired sessions."""
        current_time = time.time()
        expired_keys = [
            key
            for key, session in self._sessions.items()
            if current_time - session.get("last_activity", 0) > self._session_timeout
        ]
        for key in expired_keys:
            del self._sessions[key]
        if expired_keys:
            _LOGGER.info("Cleaned up %d expired sessions", len(expired_keys))


async def async_naive_turn[T](
    manager: ConversationSessionManager,
    answer: Callable[[str], Awaitable[T]],
    *,
    device_id: str | None = None,
    user_id: str | None = None,
) -> tuple[str, T]:
    """Do one turn's session work as the plan's agent does, around `answer(conversation_id)`."""
    conversation_id = manager.get_conversation_id(user_id=user_id, device_id=device_id)
    if not conversation_id:
        conversation_id = ulid_now()
        _LOGGER.info(
            "Created new conversation %s for user=%s device=%s", conversation_id, user_id, device_id
        )
        await manager.set_conversation_id(conversation_id, user_id=user_id, device_id=device_id)
    answered = await answer(conversation_id)
    # After the history is saved, the plan records the activity (and saves again).
    await manager.update_activity(user_id=user_id, device_id=device_id)
    return conversation_id, answered


async def async_no_answer(_conversation_id: str) -> None:
    """Answer nothing: for measuring the session work alone."""


class NaiveAgentEntity(AnyLanguageAgent):
    """The plan's agent: its session handling around the same backend Home Agent uses.

    The plan keeps the history in memory (its conversation manager), by conversation id.
    """

    _attr_name = "Naive plan"
    _attr_unique_id = "bench_naive_plan"
    _attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    def __init__(
        self, manager: ConversationSessionManager, backend: AgentBackend, max_turns: int
    ) -> None:
        """Answer with `backend` (a set-up agent's); keep up to `max_turns` exchanges each."""
        self._manager = manager
        self._backend = backend
        self._max_turns = max_turns
        self._history: dict[str, deque[Exchange]] = {}

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        """Answer a turn within the device's (or user's) conversation."""

        async def answer(conversation_id: str) -> intent.IntentResponse:
            history = self._history.setdefault(conversation_id, deque(maxlen=self._max_turns))
            now = dt_util.utcnow()
            session = Session(
                conversation_id=conversation_id,
                session_key=user_input.device_id or str(user_input.context.user_id),
                device_id=user_input.device_id,
                satellite_id=None,
                user_id=user_input.context.user_id,
                started_at=now,
                last_activity=now,
                expires_at=now,
                max_turns=self._max_turns,
            )
            session.transcript.extend(history)
            start = len(chat_log.content)
            response = (await self._backend.async_answer(user_input, chat_log, session)).response
            speech = next(
                (
                    c.content
                    for c in reversed(chat_log.content[start:])
                    if isinstance(c, conversation.AssistantContent) and c.content
                ),
                "",
            )
            history.append(Exchange(user_input.text, speech))
            if response is None:
                response = intent.IntentResponse(language=user_input.language)
                response.async_set_speech(speech)
            return response

        conversation_id, response = await async_naive_turn(
            self._manager,
            answer,
            device_id=user_input.device_id,
            user_id=user_input.context.user_id,
        )
        return conversation.ConversationResult(
            response=response,
            conversation_id=conversation_id,
            continue_conversation=chat_log.continue_conversation,
        )
