"""Feature detection for the Home Assistant versions Home Agent supports (2025.4+)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from homeassistant.components import conversation
from homeassistant.core import Context
from homeassistant.helpers import chat_session, llm

_CONVERSE_PARAMS = frozenset(inspect.signature(conversation.async_converse).parameters)
_LLM_CONTEXT_FIELDS = frozenset(f.name for f in dataclasses.fields(llm.LLMContext))
_CHAT_SESSION_PARAMS = frozenset(inspect.signature(chat_session.async_get_chat_session).parameters)


def satellite_id_of(user_input: conversation.ConversationInput) -> str | None:
    """Return the satellite entity of a turn (known from Home Assistant 2025.10)."""
    return getattr(user_input, "satellite_id", None)


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


def chat_session_context(context: Context) -> dict[str, Any]:
    """Return the keyword that names a chat session's user (2026.11+ asks for it)."""
    return {"context": context} if "context" in _CHAT_SESSION_PARAMS else {}
