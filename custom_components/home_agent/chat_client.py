"""One Chat Completions request over Home Assistant's shared HTTP session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
import json
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import DOMAIN, LOGGER
from .models_api import auth_headers, normalize_base_url

# Seconds a model may take for one reply before the turn is given up.
REQUEST_TIMEOUT = 60.0


@dataclass(slots=True, frozen=True)
class ToolCall:
    """A function the model wants called."""

    id: str
    name: str
    # The raw JSON text the model produced (it may be invalid).
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """Return the arguments as an object; garbled ones are passed on for the tool to refuse."""
        try:
            parsed = json.loads(self.arguments) if self.arguments.strip() else {}
        except ValueError:
            return {"invalid_arguments": self.arguments}
        return parsed if isinstance(parsed, dict) else {"invalid_arguments": self.arguments}


@dataclass(slots=True, frozen=True)
class ChatReply:
    """The model's message: text, tool calls, or both."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]

    def as_message(self) -> dict[str, Any]:
        """Return the assistant message to send back with the tool results."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


def llm_error(key: str, **placeholders: str) -> HomeAssistantError:
    """Return a translated error whose message is spoken to the user."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders or None,
    )


@contextmanager
def translated_transport_errors() -> Iterator[None]:
    """Turn what can go wrong on the way to the server into a spoken reason."""
    try:
        yield
    except TimeoutError as err:  # also aiohttp's ServerTimeoutError
        raise llm_error("model_timeout") from err
    except aiohttp.ClientError as err:
        LOGGER.debug("Request to the model server failed: %r", err)
        raise llm_error("model_cannot_connect") from err


class ModelAuthError(HomeAssistantError):
    """The endpoint refused the API key (re-authentication is needed)."""


def _error_for_status(status: int) -> HomeAssistantError:
    """Return the spoken reason for an HTTP error status."""
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return ModelAuthError(translation_domain=DOMAIN, translation_key="model_invalid_auth")
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return llm_error("model_rate_limited")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return llm_error("model_server_error", status=str(status))
    return llm_error("model_request_rejected", status=str(status))


def parse_reply(body: bytes) -> ChatReply:
    """Read the first choice of a Chat Completions response; raise if malformed."""
    try:
        message = json.loads(body)["choices"][0]["message"]
        content = message.get("content")
        raw_calls = message.get("tool_calls") or []
        calls = tuple(
            ToolCall(
                id=str(call.get("id") or f"call_{index}"),
                name=str(call["function"]["name"]),
                arguments=_arguments_text(call["function"].get("arguments")),
            )
            for index, call in enumerate(raw_calls)
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise llm_error("model_bad_response") from err
    if content is not None and not isinstance(content, str):
        raise llm_error("model_bad_response")
    if content is None and not calls:
        raise llm_error("model_bad_response")
    return ChatReply(content=content, tool_calls=calls)


def _arguments_text(arguments: Any) -> str:
    """Return tool arguments as JSON text (some servers send an object)."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments)


async def async_chat_completion(
    hass: HomeAssistant, base_url: str, api_key: str | None, payload: dict[str, Any]
) -> ChatReply:
    """POST {base_url}/chat/completions and return the model's message."""
    headers = auth_headers(api_key)
    url = f"{normalize_base_url(base_url)}/chat/completions"
    session = async_get_clientsession(hass)
    with translated_transport_errors():
        async with session.post(
            url,
            json=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as response:
            body = await response.read()
    if response.status >= HTTPStatus.BAD_REQUEST:
        LOGGER.debug("Model server answered %s: %r", response.status, body[:500])
        raise _error_for_status(response.status)
    return parse_reply(body)
