"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, scripted answers, every request kept."""

from __future__ import annotations

import asyncio
from collections import deque
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
    """What the server answers to one request."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0


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


class FakeOpenAI:
    """Serves /v1/chat/completions and /v1/models from a queue of scripted answers.

    Without a scripted answer it replies "Reply <n>." (n counts chat requests), so
    every turn's text is distinct and can be found in later requests.
    """

    def __init__(self) -> None:
        """Prepare an empty script."""
        self.requests: list[Recorded] = []
        self._script: deque[Scripted] = deque()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._closing = asyncio.Event()

    @property
    def base_url(self) -> str:
        """Return the base URL to configure (…/v1)."""
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def chat_requests(self) -> list[Recorded]:
        """Return the Chat Completions requests received so far."""
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def reply(self, text: str) -> None:
        """Script a plain text answer."""
        self._script.append(Scripted(body=completion({"role": "assistant", "content": text})))

    def tool_call(
        self, name: str, arguments: dict[str, Any] | str, call_id: str = "call_1"
    ) -> None:
        """Script an answer that asks for one tool call (arguments as text are sent as is)."""
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": text},
        }
        self._script.append(
            Scripted(body=completion({"role": "assistant", "content": None, "tool_calls": [call]}))
        )

    def status(self, status: int, body: str = '{"error": {"message": "scripted"}}') -> None:
        """Script an HTTP error."""
        self._script.append(Scripted(status=status, body=body.encode()))

    def raw(self, body: bytes) -> None:
        """Script a 200 answer with an arbitrary body (garbage, wrong shape)."""
        self._script.append(Scripted(body=body))

    def slow(self, seconds: float) -> None:
        """Script an answer that only comes after a delay (or when the server closes)."""
        self._script.append(
            Scripted(body=completion({"role": "assistant", "content": "Too late."}), delay=seconds)
        )

    async def _chat(self, request: web.Request) -> web.Response:
        """Record a Chat Completions request and answer from the script."""
        await self._record(request)
        if self._script:
            scripted = self._script.popleft()
        else:
            text = f"Reply {len(self.chat_requests)}."
            scripted = Scripted(body=completion({"role": "assistant", "content": text}))
        if scripted.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), scripted.delay)
        return web.Response(
            status=scripted.status, body=scripted.body, content_type="application/json"
        )

    async def _models(self, request: web.Request) -> web.Response:
        """List one model."""
        await self._record(request)
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
            )
        )

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
