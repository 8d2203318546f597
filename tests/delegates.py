"""Conversation agents Home Agent can delegate to in tests, registered like core agents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import chat_session, intent
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import CONF_AGENT_ID, CONF_BACKEND

from .helpers import async_add_agent


@contextmanager
def turn_chat_log(
    hass: HomeAssistant, user_input: conversation.ConversationInput
) -> Iterator[conversation.ChatLog]:
    """Open the chat log of the conversation a turn is given, as core LLM agents do."""
    with (
        chat_session.async_get_chat_session(hass, user_input.conversation_id) as session,
        conversation.async_get_chat_log(hass, session, user_input) as chat_log,
    ):
        yield chat_log


class DelegateAgent(conversation.AbstractConversationAgent):
    """What every delegate here shares: it speaks any language and answers with a text."""

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Any language."""
        return MATCH_ALL

    @staticmethod
    def answer_with(
        user_input: conversation.ConversationInput,
        speech: str | None,
        *,
        conversation_id: str | None = None,
        continue_conversation: bool = False,
    ) -> conversation.ConversationResult:
        """Answer with `speech` in the turn's conversation (or in `conversation_id`).

        None is a response whose speech is null, as some agents give.
        """
        response = intent.IntentResponse(language=user_input.language)
        if speech is None:
            response.speech = {"plain": {"speech": None, "extra_data": None}}
        else:
            response.async_set_speech(speech)
        return conversation.ConversationResult(
            response=response,
            conversation_id=conversation_id or user_input.conversation_id,
            continue_conversation=continue_conversation,
        )


class GateAgent(DelegateAgent):
    """Answers its n-th turn "answer <n>"; the turns numbered in `hold` wait for the gate."""

    def __init__(self, *, hold: set[int] | None = None) -> None:
        """Hold the given turns (by number, from 1) until the gate opens."""
        self.hold = {2} if hold is None else hold
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.inputs: list[conversation.ConversationInput] = []

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer, waiting at the gate when told to."""
        self.inputs.append(user_input)
        number = len(self.inputs)
        if number in self.hold:
            self.waiting.set()
            await self.gate.wait()
        return self.answer_with(user_input, f"answer {number}")


class EchoAgent(DelegateAgent):
    """Repeats what it heard, taking longer for some texts than others."""

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer "echo <text>" after a few loop iterations that depend on the text."""
        # Later turns may finish first unless Home Agent keeps a session's turns in order.
        for _ in range(sum(map(ord, user_input.text)) % 7):
            await asyncio.sleep(0)
        return self.answer_with(user_input, f"echo {user_input.text}")


class FixedReplyAgent(DelegateAgent):
    """Answers every turn with the same speech, whatever it is (even None)."""

    def __init__(self, speech: str | None) -> None:
        """Say `speech` every time."""
        self.speech = speech

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Say the speech."""
        return self.answer_with(user_input, self.speech)


class FailingAgent(DelegateAgent):
    """Fails every turn with an error that quotes what it was told."""

    def __init__(self, error: type[Exception]) -> None:
        """Fail with this kind of error."""
        self.error = error

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Fail, quoting the user."""
        raise self.error(f"could not handle {user_input.text!r}")


async def async_setup_delegating_to(
    hass: HomeAssistant,
    agent: conversation.AbstractConversationAgent,
    options: dict[str, Any],
    *,
    entry_id: str | None = None,
) -> MockConfigEntry:
    """Set up Home Agent delegating to `agent` (registered under a test entry).

    `entry_id` is the agent's own (for files stored under it before), else a new one.
    """
    delegate_entry = MockConfigEntry(domain="test")
    delegate_entry.add_to_hass(hass)
    entry = await async_add_agent(
        hass,
        {CONF_BACKEND: "agent"},
        {**options, CONF_AGENT_ID: delegate_entry.entry_id},
        entry_id=entry_id,
    )
    conversation.async_set_agent(hass, delegate_entry, agent)
    return entry


def register_delegate_again(
    hass: HomeAssistant, entry: MockConfigEntry, agent: conversation.AbstractConversationAgent
) -> None:
    """Register `agent` as the delegate `entry` names, in a Home Assistant started again.

    The test entry it was registered under is not kept across a restart (the agent is).
    """
    delegate_entry = MockConfigEntry(domain="test", entry_id=entry.options[CONF_AGENT_ID])
    delegate_entry.add_to_hass(hass)
    conversation.async_set_agent(hass, delegate_entry, agent)


class StreamingAgent(DelegateAgent):
    """Streams its reply into the turn's chat log piece by piece, as core LLM agents do."""

    def __init__(self, hass: HomeAssistant, pieces: list[str], interval: float) -> None:
        """Stream `pieces`, `interval` seconds apart."""
        self.hass = hass
        self.pieces = pieces
        self.interval = interval

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
        with turn_chat_log(self.hass, user_input) as chat_log:
            async for _content in chat_log.async_add_delta_content_stream(
                "conversation.streaming", self._async_deltas()
            ):
                pass
            return self.answer_with(
                user_input, "".join(self.pieces), conversation_id=chat_log.conversation_id
            )


class ChatLogAgent(DelegateAgent):
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

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Answer in the chat log of the conversation it is given."""
        with turn_chat_log(self.hass, user_input) as chat_log:
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
            return self.answer_with(
                user_input,
                speech,
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
