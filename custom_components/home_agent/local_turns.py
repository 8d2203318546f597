"""Turns Home Assistant answered itself, captured from the chat logs of Home Agent's turns.

With "prefer handling commands locally" (or a sentence trigger) Home Assistant answers
a turn without asking the agent, and writes it into the chat log of the pipeline's
conversation. Each chat log a Home Agent turn ran in is *linked* to that turn's session;
what later appears in it, added by someone else, joins the session's transcript once, in
order: when the log changes (Home Assistant 2025.12+ announces chat-log updates), when
Home Agent's next turn opens the log, and at the latest when Home Assistant drops the
chat session after its 5 idle minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.conversation import chat_log as chat_log_module
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import chat_session

from .const import LOGGER
from .memory import local_exchanges
from .session import Exchange

# Home Assistant 2025.12+ announces every chat log's changes.
async_subscribe_chat_logs: Callable[..., CALLBACK_TYPE] | None = getattr(
    chat_log_module, "async_subscribe_chat_logs", None
)

type LocalTurnRecorder = Callable[[str, list[Exchange]], None]

_UPDATED = "updated"
_DELETED = "deleted"


@dataclass(slots=True)
class _Link:
    """A chat log a Home Agent turn ran in, and how much of it is accounted for."""

    session_id: str
    seen: int
    in_turn: bool = False


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
    """Link chat logs to sessions and record what others answered in them."""

    def __init__(self, hass: HomeAssistant, record: LocalTurnRecorder) -> None:
        """Start with no links; `record(session_id, exchanges)` keeps what was found."""
        self._hass = hass
        self._record = record
        self._links: dict[str, _Link] = {}
        self._unsub: CALLBACK_TYPE | None = None
        if async_subscribe_chat_logs is not None:
            self._unsub = async_subscribe_chat_logs(hass, self._async_chat_log_event)

    @callback
    def async_stop(self) -> None:
        """Stop watching."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None
        self._links.clear()

    @callback
    def async_turn_started(self, chat_log: conversation.ChatLog, session_id: str) -> None:
        """Record what others added to the log since Home Agent last saw it; link it."""
        link = self._links.get(chat_log.conversation_id)
        first_seen = link.seen if link is not None else 1
        # The last content is the user's message of the turn starting now.
        self._found(session_id, chat_log.content[first_seen:-1])
        if link is None:
            self._watch_cleanup(chat_log.conversation_id)
        self._links[chat_log.conversation_id] = _Link(session_id, first_seen, in_turn=True)

    @callback
    def async_turn_ended(self, chat_log: conversation.ChatLog) -> None:
        """Account for everything the turn added (it is the turn's own exchange)."""
        if (link := self._links.get(chat_log.conversation_id)) is not None:
            link.seen = len(chat_log.content)
            link.in_turn = False

    def _found(self, session_id: str, contents: Iterable[conversation.Content]) -> None:
        """Hand the exchanges found in some content to the recorder."""
        if exchanges := local_exchanges(contents):
            LOGGER.debug("%d turn(s) answered by Home Assistant join the session", len(exchanges))
            self._record(session_id, exchanges)

    def _catch_up(
        self,
        conversation_id: str,
        contents: Sequence[Any],
        convert: Callable[[Any], conversation.Content] | None = None,
    ) -> None:
        """Record a linked log's new content (not while Home Agent's own turn runs in it).

        `convert` turns the new items (only those) into chat-log content.
        """
        link = self._links.get(conversation_id)
        if link is None or link.in_turn or len(contents) <= link.seen:
            return
        new = contents[link.seen :]
        self._found(link.session_id, new if convert is None else map(convert, new))
        link.seen = len(contents)

    @callback
    def _async_chat_log_event(
        self, conversation_id: str, event_type: Any, data: dict[str, Any]
    ) -> None:
        """Follow the linked logs (Home Assistant 2025.12+)."""
        if conversation_id not in self._links:
            return
        if str(event_type) == _DELETED:
            self._links.pop(conversation_id, None)
        elif str(event_type) == _UPDATED:
            items = data.get("chat_log", {}).get("content", [])
            self._catch_up(conversation_id, items, _as_content)

    def _watch_cleanup(self, conversation_id: str) -> None:
        """Read the log once more when Home Assistant drops its chat session (before 2025.12)."""
        if self._unsub is not None:
            return  # the subscription sees every change, and the deletion
        # The chat session the turn runs in (the pipeline's, or the one the entity opened).
        session = chat_session.current_session.get()
        if session is None or session.conversation_id != conversation_id:
            return

        @callback
        def _async_session_ended() -> None:
            if conversation_id not in self._links:
                return
            with conversation.async_get_chat_log(self._hass, session) as chat_log:
                self._catch_up(conversation_id, chat_log.content)
            self._links.pop(conversation_id, None)

        session.async_on_cleanup(_async_session_ended)
