"""The HTTP client of an OpenAI-compatible endpoint: model list and streamed chat replies.

Bounds, so that no server can exhaust memory or hold a turn forever:
- a non-streamed body is read up to `MAX_BODY_BYTES`, a streamed one up to
  `MAX_STREAM_BYTES`, one server-sent-event line up to `MAX_LINE_BYTES`;
- the text of one reply (content plus tool arguments) is capped at `MAX_REPLY_CHARS`:
  beyond it the reply fails with `model_reply_too_long` rather than being cut, since a cut
  reply would be remembered as if the model had meant it;
- `CONNECT_TIMEOUT` to open a connection; `READ_TIMEOUT` from the request to the first
  event that carries data and for each gap between two of them (comments such as
  `: keep-alive` are neither an answer nor progress), and for the first byte and each gap
  of an answer that is not streamed; no total per request (a long reply that keeps coming
  is fine; the caller bounds a whole turn).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
import json
import time
from typing import Any

import aiohttp
from homeassistant.components.conversation import AssistantContentDeltaDict
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from .const import DOMAIN, LOGGER
from .llm_tools import tool_input
from .metrics import TurnStats
from .redact import redact_url
from .session import sanitize_text

CONNECT_TIMEOUT = 60.0
# Time to the first data of an answer, and the longest wait between two pieces of data.
READ_TIMEOUT = 60.0
LIST_MODELS_TIMEOUT = 10.0
SETUP_PROBE_TIMEOUT = 5.0
MAX_BODY_BYTES = 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
MAX_STREAM_BYTES = 16 * 1024 * 1024
MAX_REPLY_CHARS = 64 * 1024
_READ_CHUNK = 64 * 1024
# What a streamed request adds to its body: the token counts come in a last chunk.
_STREAM_MEMBERS = '"stream":true,"stream_options":{"include_usage":true}'

# Error keys of the config flow for the translated errors of this module.
_FLOW_ERRORS = {
    "model_cannot_connect": "cannot_connect",
    "model_timeout": "cannot_connect",
    "model_server_error": "cannot_connect",
    "model_invalid_auth": "invalid_auth",
}


class ModelError(HomeAssistantError):
    """The model server could not give an answer; the message says why, translated."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Build the error from its translation key."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders=placeholders or None,
        )

    @property
    def flow_error(self) -> str:
        """Return the config flow's error key for this failure."""
        return _FLOW_ERRORS.get(self.translation_key or "", "unknown")


class ModelAuthError(ModelError):
    """The server refused the API key (401/403): re-authentication is needed."""


def error_for_status(status: int) -> ModelError:
    """Return the error for an HTTP error status (the one table of this integration)."""
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return ModelAuthError("model_invalid_auth")
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return ModelError("model_rate_limited")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return ModelError("model_server_error", status=str(status))
    return ModelError("model_request_rejected", status=str(status))


@contextmanager
def _translated_transport_errors() -> Iterator[None]:
    """Turn what can go wrong on the way to the server into a spoken reason."""
    try:
        yield
    except TimeoutError as err:  # also aiohttp's ServerTimeoutError
        raise ModelError("model_timeout") from err
    except aiohttp.ClientError as err:  # refused, reset, or a body cut short
        # Only the kind of failure: some aiohttp errors carry the URL with its credentials.
        LOGGER.debug("Request to the model server failed: %s", type(err).__name__)
        raise ModelError("model_cannot_connect") from err


def normalize_base_url(base_url: str) -> str:
    """Return the base URL the way it is stored: no blanks, no trailing slash."""
    return base_url.strip().rstrip("/")


def auth_headers(api_key: str | None) -> dict[str, str]:
    """Return the headers that authenticate a request (none without a key)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _record_usage(stats: TurnStats, chunk: dict[str, Any]) -> None:
    """Take token counts from OpenAI's `usage` or, failing that, llama.cpp's `timings`."""
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        stats.add_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), cached)
        return
    timings = chunk.get("timings")
    if isinstance(timings, dict):
        # llama.cpp counts the prompt it evaluated (`prompt_n`) apart from the part its cache
        # held (`cache_n`); the prompt is both, as OpenAI's `prompt_tokens` counts it.
        prompt, cached = timings.get("prompt_n"), timings.get("cache_n")
        if type(prompt) is int and type(cached) is int and cached > 0:
            prompt += cached
        stats.add_usage(prompt, timings.get("predicted_n"), cached)


@dataclass(frozen=True, slots=True)
class ChatBody:
    """A Chat Completions request its caller serialized: its JSON object without the braces.

    The caller serializes each request once and measures it from the same text; the
    client adds `stream` to the text (or not, for a server that refuses to stream)
    instead of serializing the request again.
    """

    members: str
    # Where the prompt (what a server evaluates: the tools and the messages) starts.
    prompt_start: int = 0

    @property
    def prompt(self) -> str:
        """Return the members that make the prompt (the settings before them do not)."""
        return self.members[self.prompt_start :]

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> ChatBody:
        """Return the body of a request given as a mapping."""
        return cls(json.dumps(payload, ensure_ascii=False, separators=(",", ":"))[1:-1])

    def encoded(self, *, streamed: bool) -> bytes:
        """Return the bytes to send, with the streaming members if asked for."""
        members = (self.members, _STREAM_MEMBERS if streamed else "")
        text = "{" + ",".join(member for member in members if member) + "}"
        # Half an emoji (a lone surrogate) has no UTF-8: it goes as JSON's \u escape.
        return text.encode("utf-8", "backslashreplace")


class _TextCleaner:
    """Join text pieces into text JSON can store: halves of an emoji, lone surrogates.

    Servers cut streams mid-character and send half a UTF-16 surrogate pair per chunk;
    a high surrogate is held back until the next piece shows whether its partner follows.
    """

    def __init__(self) -> None:
        """Start with nothing held back."""
        self._held = ""

    def feed(self, piece: str) -> str:
        """Return the text of this piece that is complete."""
        text = self._held + piece
        self._held = ""
        if text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return sanitize_text(text)

    def flush(self) -> str:
        """Return what is held back (a half character becomes U+FFFD)."""
        text, self._held = self._held, ""
        return sanitize_text(text)


class _ReplyBuilder:
    """Turn Chat Completions chunks of one reply into chat-log deltas."""

    def __init__(self, stats: TurnStats) -> None:
        """Start an empty reply."""
        self._stats = stats
        self._text = _TextCleaner()
        self._chars = 0
        self._calls: dict[int, dict[str, str]] = {}
        self.has_text = False
        self.finished = False
        self.emitted_calls = False

    def _count(self, text: str) -> None:
        """Enforce the cap on one reply's text."""
        self._chars += len(text)
        if self._chars > MAX_REPLY_CHARS:
            raise ModelError("model_reply_too_long")

    def content(self, piece: Any) -> AssistantContentDeltaDict | None:
        """Return the delta for a piece of text, or None when nothing is complete yet."""
        if piece is None or piece == "":
            return None
        if not isinstance(piece, str):
            raise ModelError("model_bad_response")
        self._count(piece)
        text = self._text.feed(piece)
        return self._text_delta(text)

    def _text_delta(self, text: str) -> AssistantContentDeltaDict | None:
        """Return a content delta and note the time of the first text."""
        if not text:
            return None
        if self._stats.first_text_at is None:
            self._stats.first_text_at = time.monotonic()
        self.has_text = True
        return {"content": text}

    def tool_call_piece(self, piece: Any) -> None:
        """Add a piece of a streamed tool call (id, name and arguments come in parts)."""
        if not isinstance(piece, dict):
            raise ModelError("model_bad_response")
        index = piece.get("index", len(self._calls))
        function = piece.get("function") or {}
        if not isinstance(index, int) or not isinstance(function, dict):
            raise ModelError("model_bad_response")
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if isinstance(piece.get("id"), str):
            call["id"] = piece["id"]
        for key in ("name", "arguments"):
            part = function.get(key)
            if isinstance(part, dict):  # some servers send the arguments as an object
                part = json.dumps(part)
            if isinstance(part, str):
                self._count(part)
                call[key] += part

    def finish(self) -> list[AssistantContentDeltaDict]:
        """Return the deltas that close the reply: held-back text, complete tool calls."""
        deltas: list[AssistantContentDeltaDict] = []
        if (delta := self._text_delta(self._text.flush())) is not None:
            deltas.append(delta)
        if self._calls and not self.emitted_calls:
            self.emitted_calls = True
            calls = []
            for position, index in enumerate(sorted(self._calls)):
                call = self._calls[index]
                if not call["name"]:
                    raise ModelError("model_bad_response")
                call_id = call["id"] or f"call_{position}"
                calls.append(tool_input(call_id, call["name"], call["arguments"]))
            deltas.append({"tool_calls": calls})
        return deltas


class ModelClient:
    """Talks to one OpenAI-compatible endpoint over Home Assistant's shared HTTP session."""

    def __init__(self, hass: HomeAssistant, base_url: str, api_key: str | None) -> None:
        """Remember where the endpoint is and how to authenticate."""
        self._hass = hass
        self._base_url = normalize_base_url(base_url)
        self._headers = auth_headers(api_key)
        self._post_headers = {**self._headers, "Content-Type": "application/json"}
        # aiohttp refuses a Bearer header beside credentials in the URL: the key wins.
        self._url = URL(self._base_url)
        if api_key and self._url.user is not None:
            self._url = self._url.with_user(None)
        # Set once a server refused a streamed request but answered it unstreamed.
        self.streams = True
        self._chat_url = self._endpoint("chat/completions")
        self._loggable_chat_url = redact_url(str(self._chat_url))

    def _endpoint(self, path: str) -> URL:
        """Return the URL of an API path, keeping a query of the base URL (e.g. api-version)."""
        return self._url.with_path(f"{self._url.path.rstrip('/')}/{path}").with_query(
            self._url.query_string
        )

    @property
    def loggable_base_url(self) -> str:
        """Return the base URL fit for logs."""
        return redact_url(self._base_url)

    async def async_list_models(self, *, max_wait: float = LIST_MODELS_TIMEOUT) -> list[str]:
        """Return the ids of the models the endpoint serves (`GET {base}/models`), sorted."""
        session = async_get_clientsession(self._hass)
        with _translated_transport_errors():
            async with session.get(
                self._endpoint("models"),
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=max_wait),
            ) as response:
                body = await _async_read_body(response)
        try:
            models = json.loads(body)["data"]
            return sorted(
                {
                    model["id"]
                    for model in models
                    if isinstance(model, dict) and isinstance(model.get("id"), str)
                }
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ModelError("model_bad_response") from err

    async def async_complete(self, body: ChatBody) -> None:
        """POST a request unstreamed and read the answer whole, only to have it evaluated.

        The answer itself is not used (a warm-up asks for one token); a failure raises a
        `ModelError`.
        """
        session = async_get_clientsession(self._hass)
        with _translated_transport_errors():
            async with session.post(
                self._chat_url,
                data=body.encoded(streamed=False),
                headers=self._post_headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            ) as response:
                await _async_read_body(response)

    async def async_check(self) -> None:
        """Refuse setup if the endpoint rejects the key; anything else only warns.

        An endpoint that is down must not keep the agent (and its sessions) from loading:
        each turn then apologises until the endpoint is back.
        """
        try:
            await self.async_list_models(max_wait=SETUP_PROBE_TIMEOUT)
        except ModelAuthError as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key="invalid_auth",
                translation_placeholders={"base_url": self.loggable_base_url},
            ) from err
        except ModelError as err:
            LOGGER.warning(
                "The model endpoint %s is not answering yet: %s", self.loggable_base_url, err
            )

    async def async_text(self, payload: Mapping[str, Any]) -> str:
        """Return the whole text of the reply to one request (a summary, an extraction)."""
        deltas = self.async_stream_chat(payload, TurnStats())
        return "".join([delta.get("content") or "" async for delta in deltas])

    async def async_stream_chat(
        self, payload: ChatBody | Mapping[str, Any], stats: TurnStats
    ) -> AsyncGenerator[AssistantContentDeltaDict]:
        """POST `{base}/chat/completions` and yield the reply as chat-log deltas.

        `payload` is the request without `stream` (added here), serialized by the caller
        or as a mapping. Yields `{"role": "assistant"}`, then `{"content": ...}` per piece
        of text, then `{"tool_calls": [...]}` once the calls are complete. Raises a
        `ModelError` (a `ModelAuthError` for a refused key), also after some deltas when
        the stream breaks.
        """
        stats.requests += 1
        body = payload if isinstance(payload, ChatBody) else ChatBody.of(payload)
        url = self._chat_url
        LOGGER.debug("Chat request to %s: {%s}", self._loggable_chat_url, body.members)
        session = async_get_clientsession(self._hass)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=CONNECT_TIMEOUT,
            sock_connect=CONNECT_TIMEOUT,
            sock_read=READ_TIMEOUT,
        )
        loop = asyncio.get_running_loop()
        with _translated_transport_errors():
            for streamed in (True, False) if self.streams else (False,):
                first_data_by = loop.time() + READ_TIMEOUT
                async with session.post(
                    url,
                    data=body.encoded(streamed=streamed),
                    headers=self._post_headers,
                    timeout=timeout,
                ) as response:
                    if streamed and response.status in (
                        HTTPStatus.BAD_REQUEST,
                        HTTPStatus.UNPROCESSABLE_ENTITY,
                    ):
                        LOGGER.debug(
                            "%s refused a streamed request (%s); asking without streaming",
                            self._loggable_chat_url,
                            response.status,
                        )
                        continue
                    async for delta in _async_reply_deltas(response, stats, first_data_by):
                        yield delta
                # Answered unstreamed after a refusal: asked that way from now on.
                self.streams = streamed
                return


async def _async_reply_deltas(
    response: aiohttp.ClientResponse, stats: TurnStats, first_data_by: float
) -> AsyncGenerator[AssistantContentDeltaDict]:
    """Yield the deltas of an answer, streamed or not (a stream's first data by loop time)."""
    if response.status >= HTTPStatus.BAD_REQUEST:
        body = await response.content.read(2048)
        LOGGER.debug("Model server answered %s: %r", response.status, body[:500])
        raise error_for_status(response.status)
    builder = _ReplyBuilder(stats)
    if response.content_type == "text/event-stream":
        async for delta in _async_stream_deltas(response, builder, stats, first_data_by):
            yield delta
    else:
        # A server that ignores `stream` answers with the whole completion.
        for delta in _message_deltas(await _async_read_body(response), builder, stats):
            yield delta
    if not builder.has_text and not builder.emitted_calls:
        raise ModelError("model_bad_response")


async def _async_read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read a whole (non-streamed) body, at most MAX_BODY_BYTES of it."""
    if response.status >= HTTPStatus.BAD_REQUEST:
        LOGGER.debug("Model server answered %s", response.status)
        raise error_for_status(response.status)
    if (response.content_length or 0) > MAX_BODY_BYTES:
        response.close()
        raise ModelError("model_reply_too_long")
    body = bytearray()
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            response.close()  # the rest is never read: drop the connection
            raise ModelError("model_reply_too_long")
    return bytes(body)


def _message_deltas(
    body: bytes, builder: _ReplyBuilder, stats: TurnStats
) -> Iterator[AssistantContentDeltaDict]:
    """Yield the deltas of a whole Chat Completions answer."""
    try:
        answer = json.loads(body)
        message = answer["choices"][0]["message"]
        raw_calls = message.get("tool_calls") or []
        content = message.get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise ModelError("model_bad_response") from err
    if not isinstance(raw_calls, list):
        raise ModelError("model_bad_response")
    _record_usage(stats, answer)
    yield {"role": "assistant"}
    if (delta := builder.content(content)) is not None:
        yield delta
    for index, call in enumerate(raw_calls):
        builder.tool_call_piece({"index": index, **call} if isinstance(call, dict) else call)
    yield from builder.finish()


async def _async_stream_deltas(
    response: aiohttp.ClientResponse,
    builder: _ReplyBuilder,
    stats: TurnStats,
    first_data_by: float,
) -> AsyncGenerator[AssistantContentDeltaDict]:
    """Yield the deltas of a server-sent-events answer as its chunks arrive."""
    yield {"role": "assistant"}
    done = False
    async for data in _async_sse_data(response, first_data_by):
        if data == "[DONE]":
            done = True
            break
        for delta in _chunk_deltas(data, builder, stats):
            yield delta
    if not done and not builder.finished:
        # The connection closed cleanly but before the reply ended.
        raise ModelError("model_cannot_connect")
    for closing in builder.finish():
        yield closing


def _chunk_deltas(
    data: str, builder: _ReplyBuilder, stats: TurnStats
) -> list[AssistantContentDeltaDict]:
    """Return the deltas of one streamed chunk."""
    try:
        chunk = json.loads(data)
    except ValueError as err:
        raise ModelError("model_bad_response") from err
    if not isinstance(chunk, dict) or "error" in chunk:
        LOGGER.debug("Model server sent instead of a chunk: %r", data[:500])
        raise ModelError("model_bad_response")
    _record_usage(stats, chunk)
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise ModelError("model_bad_response")
    deltas: list[AssistantContentDeltaDict] = []
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise ModelError("model_bad_response")
        if (text := builder.content(delta.get("content"))) is not None:
            deltas.append(text)
        for piece in delta.get("tool_calls") or []:
            builder.tool_call_piece(piece)
        if choice.get("finish_reason"):
            builder.finished = True
            # The calls are complete: hand them over while the usage chunk comes.
            deltas.extend(builder.finish())
    return deltas


async def _async_sse_data(
    response: aiohttp.ClientResponse, first_data_by: float
) -> AsyncIterator[str]:
    """Yield the data of each server-sent event, reading line by line within the bounds.

    Lines are split here rather than by aiohttp's readline, which fails on lines over
    its 64 KiB buffer limit; a line may be up to MAX_LINE_BYTES. Only an event with data
    moves the READ_TIMEOUT deadline: aiohttp's read timeout counts any byte, so comments
    sent to keep a connection open would hold a turn until its own limit.
    """
    loop = asyncio.get_running_loop()
    deadline = first_data_by
    line = bytearray()
    data: list[str] = []
    received = 0
    while True:
        async with asyncio.timeout_at(deadline):
            chunk = await response.content.readany()
        if not chunk:
            break
        received += len(chunk)
        if received > MAX_STREAM_BYTES:
            response.close()
            raise ModelError("model_reply_too_long")
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            line += chunk[start:end]
            start = end + 1
            event = _sse_line(bytes(line).rstrip(b"\r"), data)
            line.clear()
            if event:
                deadline = loop.time() + READ_TIMEOUT
                yield event
        line += chunk[start:]
        if len(line) > MAX_LINE_BYTES:
            response.close()
            raise ModelError("model_reply_too_long")
    # A stream may end without the blank line after its last event.
    if line.rstrip(b"\r"):
        _sse_line(bytes(line).rstrip(b"\r"), data)
    if event := _sse_line(b"", data):
        yield event


def _sse_line(line: bytes, data: list[str]) -> str | None:
    """Take one line of an event stream; return an event's data when a blank line ends it."""
    if not line:
        event = "\n".join(data) if data else None
        data.clear()
        return event
    if line.startswith(b"data:"):
        value = line[5:]
        if value.startswith(b" "):
            value = value[1:]
        data.append(value.decode("utf-8", "replace"))
    return None  # comments (":"), `event:`, `id:` and `retry:` lines carry nothing we use
