"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, scripted answers, every request kept."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
import json
import re
from typing import Any, Self

from aiohttp import web

# The facts of one turn (the time, on releases without a date/time tool) that Home Agent
# adds to that turn's user message only.
TURN_FACTS = re.compile(r"\n\n\(Current time is [^)]*\)\Z")


@dataclass(slots=True, frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""

    @property
    def is_warm_up(self) -> bool:
        """Tell whether this is a warm-up: the start of a turn, asking for one token."""
        return isinstance(self.body, dict) and self.body.get("max_tokens") == 1

    @property
    def prompt_text(self) -> str:
        """Return the request's tools and messages as sent, up to where the messages end.

        A later request that starts the same way begins with this text.
        """
        text = self.raw.decode()
        start = text.index('"tools":') if '"tools":' in text else text.index('"messages":')
        end = text.rindex("]")
        return text[start:end]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Return the chat messages of a Chat Completions request."""
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages

    @property
    def system_prompt(self) -> str:
        """Return the system message."""
        assert self.messages[0]["role"] == "system"
        content: str = self.messages[0]["content"]
        return content

    @property
    def dialogue(self) -> list[tuple[str, str]]:
        """Return the user/assistant messages after the system prompt, as (role, text)."""
        return [
            (message["role"], TURN_FACTS.sub("", message["content"]))
            for message in self.messages[1:]
            if message["role"] in ("user", "assistant") and not message.get("tool_calls")
        ]


@dataclass(slots=True, frozen=True)
class Scripted:
    """What the server answers to one request.

    A `message` is served as a whole completion, or as server-sent events when the request
    streams; `events` are raw event data lines, served as a stream whatever was asked.
    """

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    message: dict[str, Any] | None = None
    chunks: int = 1
    interval: float = 0.0
    usage: dict[str, Any] | None = None
    events: tuple[bytes, ...] | None = None
    # Stream this many events, then drop the connection.
    cut_after: int | None = None
    # A stream's pause before its first event, and how often `: keep-alive` comments fill
    # its pauses (0: silence).
    lead: float = 0.0
    keep_alive: float = 0.0
    # Answer with this many bytes of an endless JSON text (not streamed).
    huge: int = 0


def completion(message: dict[str, Any]) -> bytes:
    """Return a Chat Completions response carrying one message."""
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": "fake-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }
    ).encode()


DEFAULT_USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 16,
    "prompt_tokens_details": {"cached_tokens": 100},
}


def _pieces(text: str, count: int) -> list[str]:
    """Split text into `count` pieces of about equal length (none empty unless text is)."""
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _timings_event(usage: dict[str, Any]) -> bytes:
    """Return llama.cpp's closing `timings` for a prompt: 8 tokens evaluated, the rest cached."""
    prompt = usage["prompt_tokens"]
    evaluated = min(8, prompt)
    timings = {
        "prompt_n": evaluated,
        "cache_n": prompt - evaluated,
        "predicted_n": usage["completion_tokens"],
    }
    return json.dumps({"id": "chatcmpl-fake", "choices": [], "timings": timings}).encode()


def stream_events(
    message: dict[str, Any], chunks: int, usage: dict[str, Any] | None
) -> list[bytes]:
    """Return a message as Chat Completions stream chunks, tool calls in pieces, `[DONE]` last."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        """Return one chunk's event data."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return json.dumps(
            {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "choices": [choice]}
        ).encode()

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _pieces(message.get("content") or "", chunks)]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        arguments = function["arguments"]
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        first = {"index": index, "type": "function", "function": {"name": function["name"]}}
        if "id" in call:
            first["id"] = call["id"]
        events.append(chunk({"tool_calls": [first]}))
        for piece in _pieces(arguments, 3):
            events.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    events.append(chunk({}, "tool_calls" if message.get("tool_calls") else "stop"))
    if usage is not None:
        events.append(json.dumps({"id": "chatcmpl-fake", "choices": [], "usage": usage}).encode())
    events.append(b"[DONE]")
    return events


class FakeOpenAI:
    """Serves /v1/chat/completions and /v1/models from a queue of scripted answers.

    Without a scripted answer it replies "Reply <n>." (n counts chat requests), so
    every turn's text is distinct and can be found in later requests.
    """

    def __init__(self) -> None:
        """Prepare an empty script."""
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._warm_up_script: deque[Scripted] = deque()
        self._arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._closing = asyncio.Event()
        # "ignore": answer JSON even to streamed requests; "refuse": 400 to them.
        self.stream_mode = "serve"
        # Prompt tokens reported per request: DEFAULT_USAGE's, or characters / this.
        self.chars_per_token: float | None = None
        # True: report counts as llama.cpp's server does (`timings`, the prompt all but a
        # few tokens taken from its cache) instead of OpenAI's `usage`.
        self.llama_cpp_timings = False
        self.huge_bytes_sent = 0
        self.models_status = 200
        # Plays the model when nothing is scripted: the assistant message for a request, or
        # None for the default "Reply <n>.".
        self.responder: Callable[[Recorded], dict[str, Any] | None] | None = None

    @property
    def base_url(self) -> str:
        """Return the base URL to configure (…/v1)."""
        return self.url_on("127.0.0.1")

    def url_on(self, host: str) -> str:
        """Return the base URL under another host name (one that resolves to this machine)."""
        return f"http://{host}:{self._port}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        """Return the Chat Completions requests received so far (warm-ups aside)."""
        return [r for r in self.requests if r.path == "/v1/chat/completions" and not r.is_warm_up]

    @property
    def warm_ups(self) -> list[Recorded]:
        """Return the warm-up requests received so far."""
        return [r for r in self.requests if r.path == "/v1/chat/completions" and r.is_warm_up]

    async def requested(self, count: int) -> None:
        """Wait until `count` chat requests (warm-ups aside) have arrived."""
        while len(self.chat_requests) < count:
            self._arrived.clear()
            await self._arrived.wait()

    def warm_up_answer(self, status: int = 200, delay: float = 0.0) -> None:
        """Answer the next warm-up with this status, after this delay."""
        self._warm_up_script.append(Scripted(status=status, body=b"{}", delay=delay))

    def reply(self, text: str) -> None:
        """Script a plain text answer."""
        self._script.append(Scripted(message={"role": "assistant", "content": text}))

    def stream_reply(
        self,
        text: str,
        chunks: int = 16,
        interval: float = 0.08,
        usage: dict[str, Any] | None = DEFAULT_USAGE,
    ) -> None:
        """Script a text answer streamed in `chunks` pieces, `interval` seconds apart."""
        self._script.append(
            Scripted(
                message={"role": "assistant", "content": text},
                chunks=chunks,
                interval=interval,
                usage=usage,
            )
        )

    def tool_calls(self, calls: list[dict[str, Any]], text: str | None = None) -> None:
        """Script one answer asking for several calls: dicts of id, name and arguments."""
        message = {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
                for call in calls
            ],
        }
        self._script.append(Scripted(message=message, chunks=4))

    def events(
        self,
        events: list[bytes],
        interval: float = 0.0,
        cut_after: int | None = None,
        *,
        lead: float = 0.0,
        keep_alive: float = 0.0,
    ) -> None:
        """Script a raw event stream (each item one event's data), maybe cut off.

        `lead` seconds pass before the first event; with `keep_alive`, comments are sent
        that often during every pause, as proxies and some servers do.
        """
        self._script.append(
            Scripted(
                events=tuple(events),
                interval=interval,
                cut_after=cut_after,
                lead=lead,
                keep_alive=keep_alive,
            )
        )

    def cut_stream(self, text: str, after: int, chunks: int = 8) -> None:
        """Script a streamed answer whose connection drops after `after` events."""
        events = stream_events({"role": "assistant", "content": text}, chunks, None)
        self._script.append(Scripted(events=tuple(events), cut_after=after))

    def huge(self, size: int, streamed: bool = False) -> None:
        """Script a 200 answer of `size` bytes, as one JSON body or one endless event line."""
        if streamed:
            self._script.append(Scripted(events=(), huge=size))
        else:
            self._script.append(Scripted(huge=size))

    def tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str,
        call_id: str = "call_1",
        delay: float = 0.0,
    ) -> None:
        """Script an answer that asks for one tool call (arguments as text are sent as is)."""
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": text},
        }
        self._script.append(
            Scripted(
                message={"role": "assistant", "content": None, "tool_calls": [call]},
                delay=delay,
            )
        )

    def status(self, status: int, body: str = '{"error": {"message": "scripted"}}') -> None:
        """Script an HTTP error."""
        self._script.append(Scripted(status=status, body=body.encode()))

    def raw(self, body: bytes) -> None:
        """Script a 200 JSON answer with any body (garbage, wrong shape), never streamed."""
        self._script.append(Scripted(body=body))

    def slow(self, seconds: float) -> None:
        """Script an answer that only comes after a delay (or when the server closes)."""
        self._script.append(
            Scripted(message={"role": "assistant", "content": "Too late."}, delay=seconds)
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        """Record a Chat Completions request and answer from the script."""
        await self._record(request)
        if self.requests[-1].is_warm_up:
            return await self._warm_up()
        streams = bool(self.requests[-1].body.get("stream"))
        if streams and self.stream_mode == "refuse":
            return web.json_response({"error": {"message": "stream not supported"}}, status=400)
        if self._script:
            scripted = self._script.popleft()
        elif self.responder is not None and (message := self.responder(self.requests[-1])):
            scripted = Scripted(message=message, chunks=4)
        else:
            text = f"Reply {len(self.chat_requests)}."
            scripted = Scripted(message={"role": "assistant", "content": text})
        if scripted.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), scripted.delay)
        if scripted.huge:
            return await self._huge(request, scripted)
        if scripted.events is not None:
            return await self._stream(request, scripted, list(scripted.events))
        if scripted.message is not None:
            if streams and self.stream_mode == "serve":
                events, closing = self._message_events(scripted)
                return await self._stream(request, scripted, events, len(events) - closing)
            body = completion(scripted.message)
        else:
            body = scripted.body
        return web.Response(status=scripted.status, body=body, content_type="application/json")

    async def _warm_up(self) -> web.Response:
        """Answer a warm-up as scripted, else with one token (the script is not used)."""
        scripted = self._warm_up_script.popleft() if self._warm_up_script else None
        if scripted is not None and scripted.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), scripted.delay)
        if scripted is not None and scripted.status != 200:
            return web.json_response({"error": {"message": "scripted"}}, status=scripted.status)
        body = completion({"role": "assistant", "content": "."})
        return web.Response(body=body, content_type="application/json")

    async def _stream(
        self,
        request: web.Request,
        scripted: Scripted,
        events: list[bytes],
        paced: int | None = None,
    ) -> web.StreamResponse:
        """Send server-sent events (the first `paced` ones `interval` apart), maybe cut off."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client gave up
            await self._pause(response, scripted.lead, scripted.keep_alive)
            for number, data in enumerate(events):
                if scripted.cut_after is not None and number >= scripted.cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                if number and scripted.interval and (paced is None or number < paced):
                    await self._pause(response, scripted.interval, scripted.keep_alive)
                await response.write(b"data: " + data + b"\n\n")
            await response.write_eof()
        return response

    async def _pause(self, response: web.StreamResponse, seconds: float, keep_alive: float) -> None:
        """Wait `seconds` (less if the server stops), sending comments every `keep_alive` s."""
        if not keep_alive:
            if seconds > 0:
                await asyncio.sleep(seconds)
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0 and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), min(left, keep_alive))
            await response.write(b": keep-alive\n\n")

    async def _huge(self, request: web.Request, scripted: Scripted) -> web.StreamResponse:
        """Send `huge` bytes of one endless JSON string (or event line) without a length."""
        streamed = scripted.events is not None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream" if streamed else "application/json"}
        )
        await response.prepare(request)
        block = b"x" * 65536
        sent = 0
        self.huge_bytes_sent = 0
        with contextlib.suppress(ConnectionError):
            await response.write(
                b'data: {"choices": [{"delta": {"content": "'
                if streamed
                else b'{"choices": [{"message": {"content": "'
            )
            while sent < scripted.huge:
                await response.write(block)
                sent += len(block)
                self.huge_bytes_sent = sent
            await response.write(b'"}}]}\n\n' if streamed else b'"}}]}')
            await response.write_eof()
        return response

    def _message_events(self, scripted: Scripted) -> tuple[list[bytes], int]:
        """Return a scripted message's stream events and how many close it.

        The closing chunks (finish, counts, [DONE]) follow the last piece at once.
        """
        usage = scripted.usage
        if usage is None and self.requests[-1].body.get("stream_options"):
            usage = self._usage(self.requests[-1])
        if usage is None:
            return stream_events(scripted.message or {}, scripted.chunks, None), 2
        if not self.llama_cpp_timings:
            return stream_events(scripted.message or {}, scripted.chunks, usage), 3
        events = stream_events(scripted.message or {}, scripted.chunks, None)
        events.insert(-1, _timings_event(usage))
        return events, 3

    def _usage(self, request: Recorded) -> dict[str, Any]:
        """Return the usage of a request: fixed, or counted like a tokenizer would."""
        if self.chars_per_token is None:
            return DEFAULT_USAGE
        chars = len(json.dumps(request.messages, separators=(",", ":")))
        return {**DEFAULT_USAGE, "prompt_tokens": round(chars / self.chars_per_token)}

    async def _models(self, request: web.Request) -> web.Response:
        """List one model."""
        await self._record(request)
        if self.models_status != 200:
            return web.json_response({"error": "scripted"}, status=self.models_status)
        return web.json_response(
            {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
        )

    async def _record(self, request: web.Request) -> None:
        """Keep the request for the test to inspect."""
        raw = await request.read()
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=json.loads(raw) if raw else None,
                raw=raw,
            )
        )
        self._arrived.set()

    async def start(self) -> None:
        """Listen on 127.0.0.1: a free port at first, the same port when started again."""
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Release delayed answers and stop listening (connections are then refused)."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the server."""
        await self.stop()
