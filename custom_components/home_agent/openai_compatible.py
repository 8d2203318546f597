"""Backend `openai`: any OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.conversation import ConversationInput
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from homeassistant.helpers.json import json_dumps

from .api import (
    ModelClient,
    TurnStats,
    UnreadableToolInput,
    tool_arguments_text,
    translated_error,
)
from .backend import Answer, asks_back, speech_response
from .compat import llm_context
from .const import (
    CONF_API_KEY,
    CONF_BASE_URL,
    CONF_MAX_TOKENS,
    CONF_MODEL,
    CONF_PROMPT,
    CONF_TEMPERATURE,
    DOMAIN,
    LOGGER,
)
from .llm_tools import ToolBox, async_get_toolbox
from .prompt import async_system_prompt
from .session import Session
from .settings import llm_api_ids

# Model replies per turn that may ask for tools before the turn is given up.
MAX_TOOL_ITERATIONS = 10


def history_messages(session: Session) -> list[dict[str, Any]]:
    """Return the session's earlier exchanges as chat messages, oldest first."""
    messages: list[dict[str, Any]] = []
    for exchange in session.transcript:
        messages.append({"role": "user", "content": exchange.user})
        messages.append({"role": "assistant", "content": exchange.assistant})
    return messages


class OpenAICompatibleBackend:
    """Answer with a model behind an OpenAI-compatible endpoint."""

    def __init__(
        self,
        hass: HomeAssistant,
        settings: Mapping[str, Any],
        client: ModelClient | None = None,
    ) -> None:
        """Remember the endpoint settings and the client that talks to it."""
        self._hass = hass
        self._settings = settings
        self._client = client or ModelClient(
            hass, settings[CONF_BASE_URL], settings.get(CONF_API_KEY)
        )

    async def async_answer(self, user_input: ConversationInput, session: Session) -> Answer:
        """Answer one turn, calling Home Assistant tools as the model asks."""
        context = llm_context(DOMAIN, user_input)
        toolbox = await async_get_toolbox(self._hass, llm_api_ids(self._settings), context)
        system_prompt = await async_system_prompt(
            self._hass,
            self._settings[CONF_PROMPT],
            context,
            api_prompts=toolbox.prompts,
            tool_names=toolbox.tool_names,
            extra_system_prompt=user_input.extra_system_prompt,
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt},
            *history_messages(session),
            {"role": "user", "content": user_input.text},
        ]
        LOGGER.debug("Asking the model, %d messages: %s", len(messages), messages)
        text = await self._async_run(messages, toolbox)
        LOGGER.debug("Model answered: %s", text)
        return Answer(
            response=speech_response(user_input.language, text),
            speech=text,
            continue_conversation=asks_back(text),
        )

    async def _async_run(self, messages: list[dict[str, Any]], toolbox: ToolBox) -> str:
        """Ask the model until it answers without tool calls; return its text."""
        request: dict[str, Any] = {
            "temperature": self._settings[CONF_TEMPERATURE],
            "max_tokens": self._settings[CONF_MAX_TOKENS],
        }
        if model := self._settings.get(CONF_MODEL):
            request["model"] = model
        if tools := toolbox.schemas():
            request["tools"] = tools
        stats = TurnStats()
        for _ in range(MAX_TOOL_ITERATIONS):
            # Collected into one reply until the turn runs in Home Assistant's chat log.
            text: list[str] = []
            calls: list[llm.ToolInput] = []
            async for delta in self._client.async_stream_chat(
                {**request, "messages": messages}, stats
            ):
                text.append(delta.get("content") or "")
                calls.extend(delta.get("tool_calls") or [])
            if not calls:
                return "".join(text).strip()
            messages = [*messages, *await _async_run_tools("".join(text) or None, calls, toolbox)]
        raise translated_error("model_tool_loop")


async def _async_run_tools(
    content: str | None, calls: list[llm.ToolInput], toolbox: ToolBox
) -> list[dict[str, Any]]:
    """Run the tools the model asked for; return the messages that report back."""
    messages: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": content,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.tool_name, "arguments": tool_arguments_text(call)},
                }
                for call in calls
            ],
        }
    ]
    for call in calls:
        result = await _async_call(call, toolbox)
        LOGGER.debug("Tool %s(%s) returned %s", call.tool_name, call.tool_args, result)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json_dumps(result)})
    return messages


async def _async_call(call: llm.ToolInput, toolbox: ToolBox) -> Any:
    """Call one tool; arguments the model garbled are reported back to it."""
    if isinstance(call, UnreadableToolInput):
        return {"error": "InvalidArguments", "error_text": call.problem}
    return await toolbox.async_call(call.id, call.tool_name, call.tool_args)
