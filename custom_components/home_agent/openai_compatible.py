"""Backend `openai`: any OpenAI-compatible Chat Completions endpoint, streamed into the chat log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.components.conversation import (
    ChatLog,
    ConversationInput,
    SystemContent,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm

from .backend import Reply, translated_error
from .client import ChatBody, ModelClient, normalize_base_url
from .compat import llm_context
from .const import (
    DOMAIN,
    LOGGER,
)
from .exchanges import exchange_json, json_text, live_messages, with_facts
from .llm_tools import ToolBox, async_get_toolbox
from .metrics import TurnStats
from .notes_prompt import AgentNotes
from .prompt import async_system_prompt, async_turn_facts
from .prompt_cache import prompt_cache
from .session import Exchange, Session
from .settings import AgentSettings
from .summary import SUMMARY_INSTRUCTIONS, summary_request
from .token_budget import TokenEstimator, exchanges_over_budget

# Model replies per turn that may ask for tools before the turn is given up.
MAX_TOOL_ITERATIONS = 10


class OpenAICompatibleBackend:
    """Answer with a model behind an OpenAI-compatible endpoint."""

    def __init__(
        self,
        hass: HomeAssistant,
        settings: AgentSettings,
        client: ModelClient,
        notes: AgentNotes | None = None,
    ) -> None:
        """Remember the settings, the endpoint's client and the notes (memory on)."""
        self._hass = hass
        self._settings = settings
        self._client = client
        self.estimator = TokenEstimator()
        self.prompt_cache = prompt_cache(
            hass, normalize_base_url(settings.base_url), settings.model
        )
        self.notes = notes

    @property
    def can_act(self) -> bool:
        """Tell whether the model may control the home (at least one LLM API)."""
        return bool(self._settings.llm_apis)

    async def async_answer(
        self,
        user_input: ConversationInput,
        chat_log: ChatLog,
        session: Session,
    ) -> Reply:
        """Answer one turn into the chat log, running Home Assistant tools as the model asks."""
        stats = TurnStats()
        context = llm_context(DOMAIN, user_input)
        prefix = await self._async_prefix(context, user_input.extra_system_prompt, session)
        # The chat log runs the tools and shows the turn in the Assist debug view.
        chat_log.llm_api = prefix.toolbox.api_instance(context)
        chat_log.content[0] = SystemContent(content=prefix.system_prompt)
        chat_log.async_trace({"messages": chat_log.content, "tools": prefix.tools})
        facts = await async_turn_facts(self._hass, context, prefix.toolbox.tool_names)
        turn_start = _last_user_index(chat_log)
        requests = prefix.requests
        for _ in range(MAX_TOOL_ITERATIONS):
            live = _with_facts(live_messages(chat_log.content[turn_start:]), facts)
            LOGGER.debug("Asking the model, this turn so far: %s", live)
            body = requests.body(live)
            async for _content in chat_log.async_add_delta_content_stream(
                user_input.agent_id, self._client.async_stream_chat(body, stats)
            ):
                pass
            self.prompt_cache.note(body)
            if not chat_log.unresponded_tool_results:
                break
        else:
            raise translated_error("model_tool_loop")
        if stats.prompt_tokens:
            self.estimator.calibrate(requests.sent_chars, stats.prompt_tokens)
        return Reply(stats=stats, facts=facts, leaving=prefix.leaving)

    async def async_warm_up(
        self, context: llm.LLMContext, session: Session | None
    ) -> ChatBody | None:
        """Have the server evaluate the start of the coming turn's request; return it.

        The request is the coming turn's up to its own words (system prompt, tools, the
        session's history; for a device without a session, a new session's), asking for one
        token: a server with a prompt cache then holds that prefix when the turn arrives.
        None: nothing was sent, the server most likely holds it already.
        """
        prefix = await self._async_prefix(context, None, session, max_tokens=1)
        body = prefix.requests.body([])
        if self.prompt_cache.holds(body):
            return None
        await self._client.async_complete(body)
        self.prompt_cache.note(body)
        return body

    async def _async_prefix(
        self,
        context: llm.LLMContext,
        extra_system_prompt: str | None,
        session: Session | None,
        *,
        max_tokens: int | None = None,
    ) -> _Prefix:
        """Return what every request of a session's next turn starts with.

        Everything before the current turn is the same as in the previous request of the
        session, so a server's prompt cache only evaluates what is new.
        """
        toolbox = await async_get_toolbox(self._hass, self._settings.model_apis, context)
        user_id = context.context.user_id if context.context is not None else None
        system_prompt = await async_system_prompt(
            self._hass,
            self._settings.prompt,
            context,
            api_prompts=toolbox.prompts,
            extra_system_prompt=extra_system_prompt,
            notes=self.notes.async_section(session, user_id) if self.notes else "",
        )
        tools = toolbox.schemas()
        summary = session.summary if session is not None else None
        # Each exchange is serialized once a turn: what it costs of the budget is measured
        # on the text every request of the turn sends.
        history = [exchange_json(e) for e in session.transcript] if session is not None else []
        leaving = exchanges_over_budget(
            [len(text) + 1 for text in history],  # its messages and the comma before them
            self._history_budget(summary),
            self.estimator,
        )
        fields: dict[str, Any] = {
            "temperature": self._settings.temperature,
            "max_tokens": self._settings.max_tokens if max_tokens is None else max_tokens,
        }
        if model := self._settings.model:
            fields["model"] = model
        system = {"role": "system", "content": _with_summary(system_prompt, summary)}
        requests = _TurnRequests(fields, tools, [json_text(system), *history[leaving:]])
        return _Prefix(toolbox, system_prompt, tools, requests, leaving)

    def _history_budget(self, summary: str | None) -> int:
        """Return the tokens the history may take: the budget less the summary sent with it."""
        budget = self._settings.history_max_tokens
        return budget - self.estimator.tokens(len(_summary_section(summary)))

    async def async_summarize(self, summary: str | None, exchanges: list[Exchange]) -> str:
        """Return the model's updated summary of a conversation (no tools)."""
        payload: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": SUMMARY_INSTRUCTIONS},
                {"role": "user", "content": summary_request(summary, exchanges)},
            ],
            "temperature": 0.2,
            "max_tokens": 256,
        }
        if model := self._settings.model:
            payload["model"] = model
        return await self._client.async_text(payload)


def _summary_section(summary: str | None) -> str:
    """Return what the summary of older exchanges adds to the system prompt."""
    return f"\n\nSummary of the earlier conversation: {summary}" if summary else ""


def _with_summary(system_prompt: str, summary: str | None) -> str:
    """Return the system prompt, followed by the summary of older exchanges if any."""
    return system_prompt + _summary_section(summary)


@dataclass(slots=True)
class _Prefix:
    """What the requests of a turn start with, ready to send."""

    toolbox: ToolBox
    system_prompt: str
    tools: list[dict[str, Any]]
    requests: _TurnRequests
    # Oldest exchanges that no longer fit the history (they leave with the turn).
    leaving: int


class _TurnRequests:
    """The requests of one turn (one per tool round), each serialized once.

    What every request of the turn repeats (settings, tools, system prompt, history) is
    serialized once a turn; a request adds only the turn's own messages. The client sends
    the text as it is, and its length is what the turn is measured by.
    """

    def __init__(
        self, fields: dict[str, Any], tools: list[dict[str, Any]], earlier: list[str]
    ) -> None:
        """Serialize what the turn's requests share; `earlier` are messages as JSON."""
        tools_text = json_text(tools) if tools else ""
        self._tools_chars = len(tools_text)
        members = json_text(fields)[1:-1]
        self._prompt_start = len(members) + 1  # after the comma
        self._members = f'{members},"tools":{tools_text}' if tools else members
        self._earlier = ",".join(earlier)
        # Characters sent this turn (the server counts the tools' definitions too).
        self.sent_chars = 0

    def body(self, live: list[dict[str, Any]]) -> ChatBody:
        """Return the next request, given the turn's messages so far."""
        messages = "[" + ",".join([self._earlier, *map(json_text, live)]) + "]"
        self.sent_chars += len(messages) + self._tools_chars
        return ChatBody(f'{self._members},"messages":{messages}', self._prompt_start)


def _with_facts(messages: list[dict[str, Any]], facts: str | None) -> list[dict[str, Any]]:
    """Add this turn's facts (such as the time) to its user message, not to the system prompt."""
    if not facts or not messages or messages[0]["role"] != "user":
        return messages
    first = messages[0]
    return [{**first, "content": with_facts(first["content"], facts)}, *messages[1:]]


def _last_user_index(chat_log: ChatLog) -> int:
    """Return where the current turn starts in the chat log (its user message)."""
    for index in range(len(chat_log.content) - 1, -1, -1):
        if chat_log.content[index].role == "user":
            return index
    return len(chat_log.content)
