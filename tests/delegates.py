"""Conversation agents Home Agent can delegate to in tests, registered like core agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, intent
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import CONF_AGENT_ID, CONF_BACKEND, DOMAIN

from .helpers import setup_entry


class GateAgent(conversation.AbstractConversationAgent):
    """Answers its n-th turn "answer <n>"; the turns numbered in `hold` wait for the gate."""

    def __init__(self, *, hold: set[int] | None = None) -> None:
        """Hold the given turns (by number, from 1) until the gate opens."""
        self.hold = {2} if hold is None else hold
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.inputs: list[conversation.ConversationInput] = []

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Any language."""
        return MATCH_ALL

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer, waiting at the gate when told to."""
        self.inputs.append(user_input)
        number = len(self.inputs)
        if number in self.hold:
            self.waiting.set()
            await self.gate.wait()
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech(f"answer {number}")
        return conversation.ConversationResult(
            response=response, conversation_id=user_input.conversation_id
        )


async def async_setup_delegating_to(
    hass: HomeAssistant, agent: conversation.AbstractConversationAgent, options: dict[str, Any]
) -> MockConfigEntry:
    """Set up Home Agent delegating to `agent` (registered under a test entry)."""
    delegate_entry = MockConfigEntry(domain="test")
    delegate_entry.add_to_hass(hass)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent",
        data={CONF_BACKEND: "agent"},
        options={**options, CONF_AGENT_ID: delegate_entry.entry_id},
    )
    entry.add_to_hass(hass)
    await setup_entry(hass, entry)
    conversation.async_set_agent(hass, delegate_entry, agent)
    return entry


class StreamingAgent(conversation.AbstractConversationAgent):
    """Streams its reply into the turn's chat log piece by piece, as core LLM agents do."""

    def __init__(self, hass: HomeAssistant, pieces: list[str], interval: float) -> None:
        """Stream `pieces`, `interval` seconds apart."""
        self.hass = hass
        self.pieces = pieces
        self.interval = interval

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Any language."""
        return MATCH_ALL

    async def _async_deltas(self) -> AsyncIterator[conversation.AssistantContentDeltaDict]:
        """Yield the reply as it is 'generated'."""
        yield {"role": "assistant"}
        for piece in self.pieces:
            await asyncio.sleep(self.interval)
            yield {"content": piece}

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer in the chat log of the conversation it is given."""
        with (
            chat_session.async_get_chat_session(self.hass, user_input.conversation_id) as session,
            conversation.async_get_chat_log(self.hass, session, user_input) as chat_log,
        ):
            async for _content in chat_log.async_add_delta_content_stream(
                "conversation.streaming", self._async_deltas()
            ):
                pass
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_speech("".join(self.pieces))
            return conversation.ConversationResult(
                response=response, conversation_id=chat_log.conversation_id
            )


class ChatLogAgent(conversation.AbstractConversationAgent):
    """An LLM-like agent: reads the chat log of the id it is given, answers into it.

    Like core LLM agents it sends the model its chat log (the earlier turns) and its
    `extra_system_prompt`; `seen` keeps, per turn, what that model would be given.
    """

    def __init__(
        self, hass: HomeAssistant, replies: list[str] | None = None, *, listen_again: bool = False
    ) -> None:
        """Answer with `replies` in turn (then "reply <n>"); ask to listen again if told to."""
        self.hass = hass
        self.replies = list(replies or [])
        self.listen_again = listen_again
        self.seen: list[AgentView] = []

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Any language."""
        return MATCH_ALL

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer in the chat log of the conversation it is given."""
        with (
            chat_session.async_get_chat_session(self.hass, user_input.conversation_id) as session,
            conversation.async_get_chat_log(self.hass, session, user_input) as chat_log,
        ):
            self.seen.append(
                AgentView(
                    conversation_id=chat_log.conversation_id,
                    extra_system_prompt=user_input.extra_system_prompt,
                    messages=[
                        (content.role, content.content)
                        for content in chat_log.content[1:-1]
                        if content.role in ("user", "assistant") and content.content
                    ],
                )
            )
            speech = self.replies.pop(0) if self.replies else f"reply {len(self.seen)}"
            chat_log.async_add_assistant_content_without_tools(
                conversation.AssistantContent(
                    agent_id="conversation.chat_log_agent", content=speech
                )
            )
            response = intent.IntentResponse(language=user_input.language)
            response.async_set_speech(speech)
            return conversation.ConversationResult(
                response=response,
                conversation_id=chat_log.conversation_id,
                continue_conversation=self.listen_again or chat_log.continue_conversation,
            )


@dataclass(frozen=True, slots=True)
class AgentView:
    """What an LLM agent is given in one turn: its chat log's earlier turns and instructions."""

    conversation_id: str
    extra_system_prompt: str | None
    messages: list[tuple[str, str | None]]

    def mentions(self, text: str) -> int:
        """Return how often the model is told `text`: in its messages and its instructions."""
        in_messages = sum(1 for _role, said in self.messages if said and text in said)
        return in_messages + (self.extra_system_prompt or "").count(text)
