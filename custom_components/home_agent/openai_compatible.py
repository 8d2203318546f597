"""Backend `openai`: any OpenAI-compatible Chat Completions endpoint."""

from __future__ import annotations

from collections.abc import Mapping
import json
from typing import Any

from homeassistant.components.conversation import ConversationInput
from homeassistant.core import HomeAssistant
from homeassistant.helpers.json import json_dumps

from .backend import Answer, asks_back, speech_response
from .chat_client import ChatReply, ToolCall, async_chat_completion, llm_error
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

    def __init__(self, hass: HomeAssistant, settings: Mapping[str, Any]) -> None:
        """Remember the endpoint settings."""
        self._hass = hass
        self._settings = settings

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
        for _ in range(MAX_TOOL_ITERATIONS):
            reply = await async_chat_completion(
                self._hass,
                self._settings[CONF_BASE_URL],
                self._settings.get(CONF_API_KEY),
                {**request, "messages": messages},
            )
            if not reply.tool_calls:
                return (reply.content or "").strip()
            messages = [*messages, *await _async_run_tools(reply, toolbox)]
        raise llm_error("model_tool_loop")


async def _async_run_tools(reply: ChatReply, toolbox: ToolBox) -> list[dict[str, Any]]:
    """Run the tools the model asked for; return the messages that report back."""
    messages = [reply.as_message()]
    for call in reply.tool_calls:
        result = await _async_call(call, toolbox)
        LOGGER.debug("Tool %s(%s) returned %s", call.name, call.arguments, result)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json_dumps(result)})
    return messages


async def _async_call(call: ToolCall, toolbox: ToolBox) -> Any:
    """Call one tool; arguments the model garbled are reported back to it."""
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError as err:
        return {"error": "InvalidArguments", "error_text": f"Arguments are not JSON: {err}"}
    if not isinstance(arguments, dict):
        return {"error": "InvalidArguments", "error_text": "Arguments must be a JSON object"}
    return await toolbox.async_call(call.id, call.name, arguments)
