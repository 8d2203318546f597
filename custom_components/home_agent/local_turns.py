"""Turns Home Assistant answered itself, captured from the chat logs of Home Agent's turns.

With "prefer handling commands locally" (or a sentence trigger) Home Assistant answers a
turn without asking the agent, and writes it into the chat log of the pipeline's
conversation, as answered by `conversation.home_assistant` (or `sentence_trigger`). Each
chat log a Home Agent turn ran in is *linked* to that turn's session; such turns that later
appear in it join that session's transcript once, in order: when the log changes (Home
Assistant 2025.12+ announces chat-log updates), when Home Agent's next turn of the session
opens any of its logs, and at the latest when Home Assistant drops the chat session after
its 5 idle minutes.

What else is in a log is nobody's local turn: Home Agent's own exchanges (this agent's or
another's sharing the satellite), failed turns, other agents' answers. The links outlive a
reload of the agent (so nothing is recorded twice), not a restart (chat logs do not either).
When a session ends, what its logs held until then ends with it; what comes later joins the
session of the next turn in that log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from homeassistant.components import conversation
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import chat_session

from .compat import async_subscribe_chat_logs
from .const import LOGGER
from .exchanges import local_exchanges
from .session import Session
from .tracker import SessionChange, SessionTracker
from .turn import Turn

_UPDATED = "updated"
_DELETED = "deleted"


@dataclass(slots=True)
class _Link:
    """A chat log a Home Agent turn ran in, and how much of it is accounted for."""

    # The session its local turns join: (conversation id, start); None once it ended.
    session: tuple[str, datetime] | None
    seen: int
    # Home Assistant's chat session of the log (to read it again before 2025.12).
    chat_session: chat_session.ChatSession | None = None
    in_turn: bool = False


@dataclass(slots=True)
class LocalTurnLinks:
    """An agent's links, by chat log id (kept across reloads of the agent)."""

    links: dict[str, _Link] = field(default_factory=dict)
    # Chat logs whose clean-up is already watched (before 2025.12).
    watched: set[str] = field(default_factory=set)
    # The watcher of the agent as loaded now (None while it is not).
    watcher: LocalTurnWatcher | None = None


def _as_content(item: Any) -> conversation.Content:
    """Return chat-log content from its dict form (as announced to subscribers).

    What is neither a user's nor an assistant's text becomes empty system content.
    """
    role = item.get("role") if isinstance(item, dict) else None
    text = item.get("content") if isinstance(item, dict) else None
    if isinstance(text, str):
        if role == "user":
            return conversation.UserContent(content=text)
        if role == "assistant":
            return conversation.AssistantContent(agent_id=str(item.get("agent_id")), content=text)
    return conversation.SystemContent("")


class LocalTurnWatcher:
    """Link chat logs to sessions and record the turns Home Assistant answered in them."""

    def __init__(self, hass: HomeAssistant, tracker: SessionTracker, state: LocalTurnLinks) -> None:
        """Follow the tracker's turns and sessions; `state` holds the links."""
        self._hass = hass
        self._tracker = tracker
        self._state = state
        self._unsubs = [
            tracker.async_add_turn_listener(self),
            tracker.async_add_listener(self._async_session_changed),
        ]
        if async_subscribe_chat_logs is not None:
            self._unsubs.append(async_subscribe_chat_logs(hass, self._async_chat_log_event))
        state.watcher = self

    @property
    def _links(self) -> dict[str, _Link]:
        """Return the links by chat log id."""
        return self._state.links

    @callback
    def async_stop(self) -> None:
        """Stop watching (the links stay, for the agent once it is loaded again)."""
        while self._unsubs:
            self._unsubs.pop()()
        if self._state.watcher is self:
            self._state.watcher = None

    # --- turns ------------------------------------------------------------

    @callback
    def async_turn_started(self, turn: Turn) -> None:
        """Record what others added to the session's logs since; link this log to it."""
        session, chat_log = turn.session, turn.chat_log
        if async_subscribe_chat_logs is None:
            # Without announcements, the session's other logs (another screen) are read
            # now, so their turns come before this one.
            for conversation_id, other in list(self._links.items()):
                if (
                    conversation_id != chat_log.conversation_id
                    and other.session == session.identity
                ):
                    self.async_read_again(other)
        link = self._links.get(chat_log.conversation_id)
        seen = link.seen if link is not None else 1
        # Turns of a session that still lives belong to it; those since one ended, to this.
        target = self._session_of(link) if link is not None else None
        # The last content is the user's message of the turn starting now.
        self._found(target or session, chat_log.content[seen:-1])
        self._links[chat_log.conversation_id] = _Link(
            session.identity,
            seen,
            chat_session=link.chat_session if link is not None else None,
            in_turn=True,
        )
        self._watch_cleanup(chat_log.conversation_id)

    @callback
    def async_turn_ended(self, turn: Turn) -> None:
        """Account for everything the turn added (it is the turn's own exchange)."""
        if (link := self._links.get(turn.chat_log.conversation_id)) is not None:
            link.seen = len(turn.chat_log.content)
            link.in_turn = False

    # --- sessions ---------------------------------------------------------

    @callback
    def _async_session_changed(self, session: Session, change: SessionChange) -> None:
        """Let an ended session's logs go: what they held ends with it."""
        if change not in (SessionChange.EXPIRED, SessionChange.CLEARED):
            return
        for link in self._links.values():
            if link.session != session.identity:
                continue
            if async_subscribe_chat_logs is None and link.chat_session is not None:
                # Everything in the log so far was the ended conversation's.
                link.seen = max(link.seen, len(self._read(link.chat_session)))
            link.session = None

    def _session_of(self, link: _Link) -> Session | None:
        """Return the active session a link belongs to, if it has not ended."""
        if link.session is None:
            return None
        conversation_id, started_at = link.session
        session = self._tracker.get(conversation_id)
        return session if session is not None and session.started_at == started_at else None

    # --- reading logs -----------------------------------------------------

    def _found(self, session: Session, contents: Iterable[conversation.Content]) -> None:
        """Record the turns Home Assistant answered itself among some content."""
        if exchanges := local_exchanges(contents):
            LOGGER.debug("%d turn(s) answered by Home Assistant join the session", len(exchanges))
            for exchange in exchanges:
                self._tracker.async_record_turn(session, exchange)

    def _catch_up(
        self,
        link: _Link,
        contents: Sequence[Any],
        convert: Callable[[Any], conversation.Content] | None = None,
    ) -> None:
        """Record a linked log's new content (not while Home Agent's own turn runs in it).

        `convert` turns the new items (only those) into chat-log content. Content that
        came after the session ended waits for the next turn in the log.
        """
        if link.in_turn or len(contents) <= link.seen:
            return
        if (session := self._session_of(link)) is None:
            return
        new = contents[link.seen :]
        self._found(session, new if convert is None else map(convert, new))
        link.seen = len(contents)

    def _read(self, session: chat_session.ChatSession) -> list[conversation.Content]:
        """Return the stored content of a chat session's log (nothing is changed)."""
        with conversation.async_get_chat_log(self._hass, session) as chat_log:
            return list(chat_log.content)

    @callback
    def async_read_again(self, link: _Link) -> None:
        """Catch up on a linked log by reading it (releases without announcements)."""
        if link.chat_session is not None:
            self._catch_up(link, self._read(link.chat_session))

    @callback
    def _async_chat_log_event(
        self, conversation_id: str, event_type: Any, data: dict[str, Any]
    ) -> None:
        """Follow the linked logs (Home Assistant 2025.12+)."""
        if (link := self._links.get(conversation_id)) is None:
            return
        if str(event_type) == _DELETED:
            self._links.pop(conversation_id, None)
        elif str(event_type) == _UPDATED:
            self._catch_up(link, data.get("chat_log", {}).get("content", []), _as_content)

    def _watch_cleanup(self, conversation_id: str) -> None:
        """Read the log once more when Home Assistant drops its chat session (before 2025.12)."""
        if async_subscribe_chat_logs is not None or conversation_id in self._state.watched:
            return
        # The chat session the turn runs in (the pipeline's, or the one the entity opened).
        session = chat_session.current_session.get()
        if session is None or session.conversation_id != conversation_id:
            return
        self._links[conversation_id].chat_session = session
        state = self._state

        @callback
        def _async_session_ended() -> None:
            # The links outlive a reload: the watcher of the agent as loaded now records.
            state.watched.discard(conversation_id)
            link = state.links.pop(conversation_id, None)
            if link is not None and state.watcher is not None:
                state.watcher.async_read_again(link)

        self._state.watched.add(conversation_id)
        session.async_on_cleanup(_async_session_ended)
