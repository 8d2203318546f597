"""Feature detection for the Home Assistant releases Home Agent supports (2025.4+).

Every difference between releases is handled here, and nowhere else: each shim says with
which minimum release it can go, so raising the minimum is a change to this file.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from functools import cache
import importlib
import inspect
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.conversation import chat_log as chat_log_module
from homeassistant.core import CALLBACK_TYPE, Context
from homeassistant.helpers import chat_session, llm
from homeassistant.util.json import JsonObjectType
import voluptuous as vol

_CONVERSE_PARAMS = frozenset(inspect.signature(conversation.async_converse).parameters)
_LLM_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(llm.LLMContext))
_CHAT_SESSION_PARAMS = frozenset(inspect.signature(chat_session.async_get_chat_session).parameters)


# Drop with a minimum of 2025.10: turns name their satellite.
def satellite_id_of(user_input: conversation.ConversationInput) -> str | None:
    """Return the satellite entity of a turn (known from Home Assistant 2025.10)."""
    return getattr(user_input, "satellite_id", None)


# Drop with a minimum of 2025.10 (`satellite_id`).
async def async_converse(hass: Any, **kwargs: Any) -> conversation.ConversationResult:
    """Call conversation.async_converse, dropping arguments this version lacks."""
    return await conversation.async_converse(
        hass, **{k: v for k, v in kwargs.items() if k in _CONVERSE_PARAMS}
    )


def llm_context(domain: str, user_input: conversation.ConversationInput) -> llm.LLMContext:
    """Build the LLM context of a turn, whatever fields this version has."""
    return llm_context_of(
        domain,
        context=user_input.context,
        language=user_input.language,
        device_id=user_input.device_id,
        agent_id=user_input.agent_id,
        text=user_input.text,
    )


# Drop the `user_prompt` branch with a minimum of 2025.7, `agent_id`'s with 2026.11.
def llm_context_of(
    domain: str,
    *,
    context: Context,
    language: str | None,
    device_id: str | None,
    agent_id: str | None,
    text: str | None,
) -> llm.LLMContext:
    """Build an LLM context from its parts (a turn's, or the one a satellite is about to send).

    2025.4-2025.6 carry the user's words (`user_prompt`, read by tools only); 2026.11+ the
    agent's id.
    """
    fields: dict[str, Any] = {
        "platform": domain,
        "context": context,
        "language": language,
        "assistant": conversation.DOMAIN,
        "device_id": device_id,
    }
    if "user_prompt" in _LLM_CONTEXT_FIELDS:
        fields["user_prompt"] = text
    if "agent_id" in _LLM_CONTEXT_FIELDS:
        fields["agent_id"] = agent_id
    return llm.LLMContext(**fields)


# Drop with a minimum of 2026.11 (then always pass `context`).
def chat_session_context(context: Context) -> dict[str, Any]:
    """Return the keyword that names a chat session's user (2026.11+ asks for it)."""
    return {"context": context} if "context" in _CHAT_SESSION_PARAMS else {}


# Drop with a minimum of 2025.12: every chat log's changes are announced.
async_subscribe_chat_logs: Callable[..., CALLBACK_TYPE] | None = getattr(
    chat_log_module, "async_subscribe_chat_logs", None
)

# Drop with a minimum of 2025.5: the date and time a prompt gets unless a tool tells them
# (2025.4 calls it BASE_PROMPT).
DATE_TIME_PROMPT = str(getattr(llm, "DATE_TIME_PROMPT", None) or getattr(llm, "BASE_PROMPT", ""))

# Drop with a minimum of 2025.8 (then `llm.selector_serializer` itself).
SELECTOR_SERIALIZER: Callable[[Any], Any] | None = getattr(llm, "selector_serializer", None)


# Drop with a minimum of 2026.10: a tool result is a ToolResult.
def tool_result_data(content: conversation.ToolResultContent) -> Any:
    """Return the data of a tool result on any release (2026.10 wraps it in a ToolResult)."""
    if (result := getattr(content, "result", None)) is not None:
        return getattr(result, "data", result)
    return content.tool_result


# Drop with a minimum of 2026.10: a tool returns a ToolResult.
def tool_result(data: JsonObjectType) -> Any:
    """Return a tool's result the way this release expects it (a ToolResult from 2026.10)."""
    result = getattr(llm, "ToolResult", None)
    return data if result is None else result(data=data)


# Drop the voluptuous branch with a minimum of 2026.9.
@cache
def schema_converter() -> Callable[..., dict[str, Any]]:
    """Return the function that turns a tool's schema into JSON schema, as core does.

    Home Assistant 2026.9+ replaced voluptuous with probatio (imported here under
    voluptuous's name); voluptuous-openapi is no longer installed there.
    """
    if vol.__name__.startswith("probatio"):
        to_openapi: Callable[..., dict[str, Any]] = importlib.import_module("probatio").to_openapi
        return lambda schema, **kwargs: to_openapi(schema, openapi_version="3.1.0", **kwargs)
    convert: Callable[..., dict[str, Any]] = importlib.import_module("voluptuous_openapi").convert
    return convert
