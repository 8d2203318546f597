"""Fake model servers that speak on a fixed chunk schedule: OpenAI-compatible and Ollama.

Real HTTP on 127.0.0.1. Each reply is the same 121-character sentence in 16 chunks, one
every 80 ms (the first after 80 ms, the last after 1.28 s), the pace of a small local model
on a home CPU. The OpenAI-compatible server streams server-sent events when asked to
(`"stream": true`) and can be told to ignore `stream` and send the whole JSON body after
the same total time ("streaming off"); the Ollama server streams NDJSON from `/api/chat`.
Every reply records when its request arrived and when its first and last chunk left.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
import time
from typing import Any, Self

from aiohttp import web

REPLY = (
    "The kitchen light is on, the hallway light is off, and the front door is locked. "
    "Is there anything else I can do for you?"
)
CHUNKS = 16
INTERVAL = 0.080
MODEL = "bench-model"


def chunks(text: str = REPLY, count: int = CHUNKS) -> list[str]:
    """Split a text into `count` pieces of (nearly) equal length, in order."""
    bounds = [round(i * len(text) / count) for i in range(count + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(count)]


async def async_listen(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free port of 127.0.0.1; return its runner and the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port: int = runner.addresses[0][1]
    return runner, port


@dataclass(slots=True)
class Served:
    """When one reply's request arrived and its first and last chunk were written."""

    arrived: float
    first_chunk: float = 0.0
    last_chunk: float = 0.0
    streamed: bool = False


@dataclass(slots=True)
class _Base:
    """A server on a free port of 127.0.0.1 that keeps the timing of every reply."""

    served: list[Served] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int = 0

    def _routes(self, app: web.Application) -> None:
        """Add the server's routes."""
        raise NotImplementedError

    async def _paced(
        self, response: web.StreamResponse, lines: list[bytes], served: Served
    ) -> None:
        """Write one line per interval, noting when the first and the last left."""
        for line in lines:
            await asyncio.sleep(INTERVAL)
            await response.write(line)
            now = time.perf_counter()
            served.first_chunk = served.first_chunk or now
            served.last_chunk = now

    async def __aenter__(self) -> Self:
        """Start listening."""
        app = web.Application()
        self._routes(app)
        self._runner, self._port = await async_listen(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _arrived(self, request: web.Request) -> tuple[dict[str, Any], Served]:
        """Record a request's body and its arrival."""
        served = Served(arrived=time.perf_counter())
        body: dict[str, Any] = await request.json()
        self.requests.append(body)
        self.served.append(served)
        return body, served


@dataclass(slots=True)
class FakeOpenAIStream(_Base):
    """`/v1/chat/completions` and `/v1/models`; streams SSE unless `ignore_stream` is set."""

    ignore_stream: bool = False

    @property
    def base_url(self) -> str:
        """Return the base URL to configure (…/v1)."""
        return f"http://127.0.0.1:{self._port}/v1"

    def _routes(self, app: web.Application) -> None:
        """Serve the two endpoints Home Agent uses."""
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, _request: web.Request) -> web.Response:
        """List the one model."""
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        """Answer with the reply: as events on the schedule, or whole at the schedule's end."""
        body, served = await self._arrived(request)
        if self.ignore_stream or not body.get("stream"):
            await asyncio.sleep(INTERVAL * CHUNKS)
            served.first_chunk = served.last_chunk = time.perf_counter()
            message = {"role": "assistant", "content": REPLY}
            return web.json_response(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "model": MODEL,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": _usage(),
                }
            )
        served.streamed = True
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = [
            _event({"role": "assistant", "content": piece} if i == 0 else {"content": piece})
            for i, piece in enumerate(chunks())
        ]
        await self._paced(response, events, served)
        tail = [_event({}, finish_reason="stop")]
        if (body.get("stream_options") or {}).get("include_usage"):
            tail.append(_sse({"id": "chatcmpl-bench", "choices": [], "usage": _usage()}))
        await response.write(b"".join(tail) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _usage() -> dict[str, int]:
    """Return a plausible usage record."""
    return {"prompt_tokens": 900, "completion_tokens": 28, "total_tokens": 928}


def _sse(data: dict[str, Any]) -> bytes:
    """Return one server-sent event."""
    return f"data: {json.dumps(data)}\n\n".encode()


def _event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    """Return one `chat.completion.chunk` event."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return _sse(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [choice],
        }
    )


@dataclass(slots=True)
class FakeOllama(_Base):
    """`GET /api/tags` and streaming `POST /api/chat` (NDJSON), as the Ollama server."""

    @property
    def url(self) -> str:
        """Return the URL to configure."""
        return f"http://127.0.0.1:{self._port}"

    def _routes(self, app: web.Application) -> None:
        """Serve what Home Assistant's ollama integration calls."""
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)

    async def _tags(self, _request: web.Request) -> web.Response:
        """List the one model."""
        model = {
            "name": f"{MODEL}:latest",
            "model": f"{MODEL}:latest",
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 1,
            "digest": "0" * 64,
            "details": {"format": "gguf", "family": "bench", "parameter_size": "1M"},
        }
        return web.json_response({"models": [model]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        """Stream the reply as NDJSON lines on the schedule."""
        body, served = await self._arrived(request)
        served.streamed = True
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        lines = [_ndjson({"role": "assistant", "content": piece}) for piece in chunks()]
        await self._paced(response, lines, served)
        await response.write(
            _ndjson(
                {"role": "assistant", "content": ""},
                done=True,
                done_reason="stop",
                prompt_eval_count=900,
                eval_count=28,
            )
        )
        await response.write_eof()
        del body
        return response


def _ndjson(message: dict[str, Any], *, done: bool = False, **extra: Any) -> bytes:
    """Return one line of Ollama's streamed chat reply."""
    line = {
        "model": f"{MODEL}:latest",
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": done,
        **extra,
    }
    return (json.dumps(line) + "\n").encode()
