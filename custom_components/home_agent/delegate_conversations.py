"""A delegate's own conversation for each Home Agent session, kept exactly as long as it.

The `agent` backend never hands the delegate the pipeline's conversation id: that one
changes whenever Home Assistant's chat session lapses (5-10 idle minutes), with every new
Assist dialog, and it is shared by every agent a satellite talks to. Each Home Agent session
gets a conversation id of its own for the delegate instead (not a ULID, so Home Assistant
keeps it as given). Home Assistant's chat session under that id holds what the delegate knows
of the conversation: an LLM agent's chat log, the built-in agent's "it/them" target. Home
Agent keeps that chat session alive while its session lives (marking it used every few
minutes, one timer per agent), and ends it with the session (a clear, an expiry): its
clean-up drops the chat log and the target at once, so the next turn starts afresh for the
delegate too.

The conversations outlive a reload of the agent (an option change keeps what the delegate
knows), not a restart of Home Assistant (its chat sessions do not either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import chat_session
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util.ulid import ulid_now

from .const import LOGGER
from .session import Session
from .tracker import SessionChange, SessionTracker

# Marked used this often, well within the idle time after which Home Assistant drops it.
KEEP_ALIVE_INTERVAL = chat_session.CONVERSATION_TIMEOUT - timedelta(minutes=1)
ID_PREFIX = "home_agent-"


@dataclass(slots=True, eq=False)
class DelegateConversation:
    """The delegate's conversation of one Home Agent session."""

    # The id the delegate is handed (never a ULID: Home Assistant keeps it as given).
    conversation_id: str
    # The Home Agent session it belongs to: (conversation id, start).
    session: tuple[str, datetime]
    # Whose turns it holds (Home Assistant 2026.11+ gives a chat session one owner).
    user_id: str | None
    # What the delegate lacked when the conversation began (the transcript after a
    # restart), sent with every turn: the same text turn after turn.
    prompt: str | None
    # The session's turn count when the delegate last heard from it (later turns were
    # answered by Home Assistant itself).
    known_turns: int
    # Whether the delegate answers in its chat log (core agents do; a legacy agent keeps
    # its own memory, if any). None until its first answer.
    uses_chat_log: bool | None = None
    # Home Assistant's chat session under `conversation_id`, once it exists.
    chat_session: chat_session.ChatSession | None = None
    # Turns being answered in it, and whether it ended meanwhile (its clean-up waits).
    in_use: int = 0
    ended: bool = False


class DelegateConversations:
    """The delegate conversations of one agent, by the conversation id of their session."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start with none; `async_attach` follows an agent's sessions."""
        self._hass = hass
        self._by_session: dict[str, DelegateConversation] = {}
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def held(self) -> int:
        """Return how many conversations have a chat session kept alive."""
        return sum(1 for c in self._by_session.values() if c.chat_session is not None)

    @callback
    def async_attach(self, tracker: SessionTracker) -> None:
        """Follow the agent's sessions and keep their conversations alive meanwhile."""
        self.async_detach()
        self._unsubs = [
            tracker.async_add_listener(self._async_session_changed),
            # Agents are not unloaded when Home Assistant stops: the timer ends by itself.
            async_track_time_interval(
                self._hass, self._async_keep_alive, KEEP_ALIVE_INTERVAL, cancel_on_shutdown=True
            ),
        ]

    @callback
    def async_detach(self) -> None:
        """Stop following (an unloaded agent); unkept conversations lapse within minutes."""
        while self._unsubs:
            self._unsubs.pop()()

    @callback
    def async_end_all(self) -> None:
        """End every conversation (the agent is deleted)."""
        self.async_detach()
        for conversation in list(self._by_session.values()):
            self._end(conversation)
        self._by_session.clear()

    @callback
    def async_conversation_for(
        self, session: Session, user_id: str | None, prompt: Callable[[], str | None]
    ) -> DelegateConversation:
        """Return the session's delegate conversation, beginning one if there is none.

        A new one begins for another person than the last turn's (Home Assistant
        2026.11+ refuses a chat session to anyone but its owner), and when Home Assistant
        dropped the last one anyway; `prompt()` says what the new one lacks (asked only
        then).
        """
        kept = self._by_session.get(session.conversation_id)
        if (
            kept is not None
            and kept.session == session.identity
            and kept.user_id == user_id
            and not kept.ended
        ):
            return kept
        if kept is not None:
            self._end(kept)
        conversation = DelegateConversation(
            conversation_id=f"{ID_PREFIX}{ulid_now()}",
            session=session.identity,
            user_id=user_id,
            prompt=prompt(),
            known_turns=session.turns,
        )
        self._by_session[session.conversation_id] = conversation
        LOGGER.debug("Delegate conversation %s begins", conversation.conversation_id)
        return conversation

    @contextmanager
    def using(self, conversation: DelegateConversation) -> Iterator[None]:
        """Hold a conversation while a turn is answered in it (an end waits for the turn)."""
        conversation.in_use += 1
        try:
            yield
        finally:
            conversation.in_use -= 1
            if conversation.ended and not conversation.in_use:
                self._clean_up(conversation)

    @callback
    def async_hold(
        self, conversation: DelegateConversation, session: chat_session.ChatSession
    ) -> None:
        """Keep Home Assistant's chat session of a conversation alive from now on."""
        if conversation.chat_session is not session:
            conversation.chat_session = session
            session.async_on_cleanup(lambda: self._async_dropped(conversation, session))

    @callback
    def _async_dropped(
        self, conversation: DelegateConversation, session: chat_session.ChatSession
    ) -> None:
        """Forget a chat session Home Assistant cleaned up (or that ended)."""
        if conversation.chat_session is session:
            conversation.chat_session = None
            if not conversation.ended:
                # Not kept alive in time (the agent was not loaded): begin anew next turn.
                conversation.ended = True
                LOGGER.debug("Delegate conversation %s lapsed", conversation.conversation_id)

    @callback
    def _async_session_changed(self, session: Session, change: SessionChange) -> None:
        """End the delegate's conversation with its session."""
        if change not in (SessionChange.EXPIRED, SessionChange.CLEARED):
            return
        kept = self._by_session.get(session.conversation_id)
        if kept is not None and kept.session == session.identity:
            del self._by_session[session.conversation_id]
            self._end(kept)

    def _end(self, conversation: DelegateConversation) -> None:
        """End a conversation now, or when its turn in flight is done."""
        conversation.ended = True
        if not conversation.in_use:
            self._clean_up(conversation)

    def _clean_up(self, conversation: DelegateConversation) -> None:
        """Let Home Assistant drop what the delegate knew (its chat log, its target)."""
        if (session := conversation.chat_session) is not None:
            conversation.chat_session = None
            session.async_cleanup()
            LOGGER.debug("Delegate conversation %s ended", conversation.conversation_id)

    @callback
    def _async_keep_alive(self, _now: datetime) -> None:
        """Mark every kept chat session used, so Home Assistant keeps it."""
        for conversation in self._by_session.values():
            if (session := conversation.chat_session) is not None:
                session.async_updated()
