"""Backend `agent`: hand each turn to another conversation agent, in a conversation of its own.

The delegate answers in the conversation Home Agent keeps for it per session (see
`delegate_conversations.py`), so what it knows of the conversation (its chat log, the
built-in agent's "it") lasts exactly as long as the session. What it said is streamed on to
the pipeline as it comes, and its answer is written into the turn's own chat log.

An LLM delegate reads the earlier turns in its own chat log; what it cannot know (what was
said before Home Assistant restarted) is told once, as `extra_system_prompt`, the same text
every turn; turns Home Assistant answered itself meanwhile are added to its chat log, in
order. A legacy agent that keeps no chat log is told the whole transcript every turn.
With memory on, the household's notes for the session's speaker go with that prompt,
chosen once per session (see `notes_prompt.py`), so it stays the same turn after turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.conversation import (
    ChatLog,
    ConversationEntityFeature,
    ConversationInput,
)
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session

from .backend import Reply, translated_error
from .compat import async_converse, chat_session_context, satellite_id_of
from .const import DOMAIN
from .delegate_conversations import DelegateConversation, DelegateConversations
from .exchanges import last_text, transcript_lines
from .notes_prompt import AgentNotes
from .session import Session


def transcript_prompt(session: Session) -> str | None:
    """Describe the session so far for an agent whose own memory lacks it."""
    if not session.transcript and not session.summary:
        return None
    lines = ["This is a continuing voice conversation."]
    if session.summary:
        lines.append(f"Summary of what was said before: {session.summary}")
    if session.transcript:
        lines.append("Earlier turns, oldest first:")
        lines.extend(transcript_lines(session.transcript))
    return "\n".join(lines)


class DelegateBackend:
    """Answer through another Home Assistant conversation agent."""

    def __init__(
        self,
        hass: HomeAssistant,
        delegate_id: str,
        own_entry_id: str,
        conversations: DelegateConversations,
        notes: AgentNotes | None = None,
    ) -> None:
        """Delegate to `delegate_id`, in the conversations kept for the agent's sessions."""
        self._hass = hass
        self.delegate_id = delegate_id
        self._own_entry_id = own_entry_id
        self._conversations = conversations
        self._notes = notes

    @property
    def can_act(self) -> bool:
        """Tell whether the delegate can control the home (it offers CONTROL)."""
        state = self._hass.states.get(self.delegate_id)
        features = state.attributes.get(ATTR_SUPPORTED_FEATURES, 0) if state else 0
        return bool(features & ConversationEntityFeature.CONTROL)

    async def async_answer(
        self, user_input: ConversationInput, chat_log: ChatLog, session: Session
    ) -> Reply:
        """Let the delegate answer in the session's delegate conversation.

        The delegate's own costs are not known here.
        """
        if self.delegate_id in (user_input.agent_id, self._own_entry_id):
            raise translated_error("delegate_loop")
        delegated = self._conversations.async_conversation_for(
            session, user_input.context.user_id, partial(transcript_prompt, session)
        )
        if delegated.uses_chat_log is False:
            delegated.prompt = transcript_prompt(session)
        # In a task of its own: the chat session and chat log the delegate runs in are the
        # current ones there only, never the turn's.
        result, added = await asyncio.create_task(
            self._async_converse(user_input, chat_log, session, delegated),
            name=f"{DOMAIN} delegate turn",
        )
        delegated.known_turns = session.turns + 1  # this turn, once recorded
        delegated.uses_chat_log = any(
            isinstance(content, conversation.AssistantContent) for content in added
        )
        speech = result.response.speech.get("plain", {}).get("speech") or last_text(added)
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=user_input.agent_id, content=speech)
        )
        return Reply(
            response=result.response,
            continue_conversation=result.continue_conversation,
            contents=added,
        )

    async def _async_converse(
        self,
        user_input: ConversationInput,
        turn_log: ChatLog,
        session: Session,
        delegated: DelegateConversation,
    ) -> tuple[conversation.ConversationResult, list[conversation.Content]]:
        """Run the delegate in its conversation; return its result and what it added."""
        notes = (
            self._notes.async_section(session, user_input.context.user_id).lstrip()
            if self._notes
            else None
        )
        extra = "\n\n".join(
            part for part in (delegated.prompt, notes, user_input.extra_system_prompt) if part
        )
        # Held outermost: a conversation that ends meanwhile is cleaned up only once Home
        # Assistant has stored its chat log and session (else the stored log would linger).
        with (
            self._conversations.using(delegated),
            chat_session.async_get_chat_session(
                self._hass,
                delegated.conversation_id,
                **chat_session_context(user_input.context),
            ) as kept,
            conversation.async_get_chat_log(
                self._hass, kept, chat_log_delta_listener=_forwarder(turn_log)
            ) as delegate_log,
        ):
            self._conversations.async_hold(delegated, kept)
            if delegated.uses_chat_log is not False:
                _add_local_turns(delegate_log, session, delegated)
            start = len(delegate_log.content)
            try:
                # A delegate that never answers is bounded by the whole turn's time limit.
                result = await async_converse(
                    self._hass,
                    text=user_input.text,
                    conversation_id=delegated.conversation_id,
                    context=user_input.context,
                    language=user_input.language,
                    agent_id=self.delegate_id,
                    device_id=user_input.device_id,
                    satellite_id=satellite_id_of(user_input),
                    extra_system_prompt=extra or None,
                )
            except ValueError as err:  # the agent is gone
                raise translated_error("delegate_missing", agent_id=self.delegate_id) from err
            return result, list(delegate_log.content[start:])


def _forwarder(turn_log: ChatLog) -> Callable[[ChatLog, dict[str, Any]], None] | None:
    """Return a listener that passes the delegate's streamed text on to the turn's listener.

    The pipeline listens to the chat log it opened (to speak early); the delegate writes
    into its own.
    """
    if (listener := turn_log.delta_listener) is None:
        return None

    def forward(_delegate_log: ChatLog, delta: dict[str, Any]) -> None:
        listener(turn_log, delta)

    return forward


def _add_local_turns(
    delegate_log: ChatLog, session: Session, delegated: DelegateConversation
) -> None:
    """Add the turns Home Assistant answered itself since the delegate's last turn.

    Each of them counts as a turn of the session and is in its transcript, newest last.
    """
    new = session.turns - delegated.known_turns
    if new <= 0:
        return
    for exchange in list(session.transcript)[-new:]:
        if not exchange.local:
            continue
        delegate_log.async_add_user_content(conversation.UserContent(content=exchange.user))
        delegate_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(
                agent_id=conversation.HOME_ASSISTANT_AGENT, content=exchange.assistant
            )
        )
