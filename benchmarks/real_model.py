"""Home Agent against a real local model: prompt tokens the server evaluates per turn.

    scripts/bench --real-model [--turns 40]

Starts llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct
(scripts/local-model; built on first use, never in CI) and runs one session of N turns
through a real assist pipeline (websocket `assist_pipeline/run`, intent stage, one device
id), Home Agent's `openai` backend with the default prompt and the Assist API. Between
Home Agent and the server sits a recording pass-through on 127.0.0.1 that keeps every
request and, from the server's log, what the server did with it:

- "prompt eval time = … / N tokens" (llama.cpp's timings, printed per request with
  `--verbose true`): N is the prompt tokens this request evaluated, i.e. after the prefix
  the server reused from the previous request (the rest of the prompt cost nothing);
- `usage.prompt_tokens` of the reply: the whole prompt, reused prefix included
  (llama-cpp-python reports no cached-token count in `usage`).

For each turn: evaluated prompt tokens (all requests of the turn: tool rounds too), the new
user text's tokens, and the history's tokens (every message between the system prompt and
the new user message, counted with the server's own tokenizer, `/extras/tokenize/count`,
plus ChatML's five wrapper tokens per message).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
import contextlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import platform
import re
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any
from unittest.mock import patch

from aiohttp import ClientSession, ClientTimeout, web
from homeassistant import loader
from homeassistant.const import Platform, __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_HISTORY_MAX_TURNS,
    CONF_LLM_HASS_API,
    CONF_MODEL,
    DEFAULT_HISTORY_MAX_TOKENS,
    DOMAIN,
    MAX_HISTORY_MAX_TURNS,
)

from .fake_endpoints import async_listen
from .harness import home_assistant, plain_resolver
from .websocket import async_connect, async_serving

ROOT = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("HOME_AGENT_MODEL_ALIAS", "smollm2-135m-instruct")
DEVICE_ID = "kitchen-satellite"
CHATML_TOKENS_PER_MESSAGE = 5  # <|im_start|> role \n … <|im_end|> \n
TARGET_EXTRA_TOKENS = 64
HISTORY_POINTS = (1, 5, 10)
# Devices in the prompt (Assist lists the exposed ones): what makes a real prompt's size.
DEMO_PLATFORMS = [Platform.LIGHT, Platform.SWITCH, Platform.COVER, Platform.CLIMATE, Platform.LOCK]
SENTENCES = (
    "My name is Ada.",
    "What is the weather like today?",
    "Turn on the kitchen light.",
    "How many lights are on?",
    "Tell me a short fact about the moon.",
    "What did I ask you to do a moment ago?",
    "Set the living room to a cozy mood.",
    "What is my name?",
)
_EVALUATED = re.compile(r"prompt eval time\s*=\s*([\d.]+) ms\s*/\s*(\d+) tokens")
_PREFIX = re.compile(r"(\d+) prefix-match hit, remaining (\d+) prompt tokens to eval")


@dataclass(slots=True)
class Exchange:
    """One request through the pass-through, and what the server said about it."""

    body: dict[str, Any]
    evaluated: int | None = None  # prompt tokens the server evaluated (its log)
    reused: int | None = None  # prompt tokens it took from its cache (its log)
    prompt_tokens: int | None = None  # usage.prompt_tokens of the reply
    prompt_ms: float | None = None  # the server's prompt evaluation time (its log)
    log: str = ""


@dataclass(slots=True)
class Turn:
    """One pipeline turn: its requests and the sizes that matter."""

    number: int
    seconds: float
    exchanges: list[Exchange]
    history_exchanges: int
    history_tokens: int
    new_text_tokens: int
    speech: str

    @property
    def evaluated(self) -> int | None:
        """Return the prompt tokens the server evaluated for the whole turn."""
        counts = [e.evaluated for e in self.exchanges]
        return None if None in counts or not counts else sum(c or 0 for c in counts)


@dataclass(slots=True)
class Recorder:
    """A pass-through to the model server on 127.0.0.1 that records every chat request."""

    upstream: str
    log_path: Path
    exchanges: list[Exchange] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _port: int = 0
    _session: ClientSession | None = None
    _busy: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """Return the base URL to give Home Agent."""
        return f"http://127.0.0.1:{self._port}/v1"

    async def __aenter__(self) -> Recorder:
        """Start listening."""
        self._session = ClientSession(timeout=ClientTimeout(total=600))
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner, self._port = await async_listen(app)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def settled(self) -> None:
        """Wait until every request passed on so far is recorded."""
        while self._busy:
            self._idle.clear()
            await self._idle.wait()

    async def count_tokens(self, text: str) -> int:
        """Return how many tokens the server's tokenizer makes of a text."""
        assert self._session is not None
        async with self._session.post(
            f"{self.upstream}/extras/tokenize/count", json={"input": text}
        ) as response:
            response.raise_for_status()
            count: int = (await response.json())["count"]
            return count

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Pass a request on; for chat requests, keep it with the server's log lines."""
        self._busy += 1
        try:
            return await self._pass_on(request)
        finally:
            self._busy -= 1
            self._idle.set()

    async def _pass_on(self, request: web.Request) -> web.StreamResponse:
        """Forward one request and stream the reply back."""
        assert self._session is not None
        raw = await request.read()
        chat = request.path.endswith("/chat/completions")
        offset = self.log_path.stat().st_size
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        url = f"{self.upstream}{request.path}"
        async with self._session.request(
            request.method, url, data=raw or None, headers=headers
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={"Content-Type": upstream.headers.get("Content-Type", "")},
            )
            await response.prepare(request)
            received = bytearray()
            # A client may close as soon as it has read `[DONE]`, before the last chunk's
            # terminator: the reply is complete all the same.
            with contextlib.suppress(ConnectionResetError):
                async for piece in upstream.content.iter_any():
                    received += piece
                    await response.write(piece)
                await response.write_eof()
        if chat:
            await asyncio.sleep(0.2)  # the server logs its timings as the reply ends
            self.exchanges.append(_exchange(json.loads(raw), bytes(received), self._log(offset)))
        return response

    def _log(self, offset: int) -> str:
        """Return what the server logged since an offset."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def _exchange(body: dict[str, Any], reply: bytes, log: str) -> Exchange:
    """Read the server's figures for one request from its reply and its log."""
    exchange = Exchange(body=body, log=log)
    if evaluated := _EVALUATED.findall(log):
        exchange.prompt_ms = float(evaluated[-1][0])
        exchange.evaluated = int(evaluated[-1][1])
    if prefix := _PREFIX.findall(log):
        exchange.reused = int(prefix[-1][0])
        exchange.evaluated = exchange.evaluated or int(prefix[-1][1])
    text = reply.decode(errors="replace")
    for chunk in [text] if not text.startswith("data:") else text.split("data: ")[1:]:
        try:
            usage = json.loads(chunk).get("usage")
        except ValueError:
            continue
        if usage:
            exchange.prompt_tokens = usage.get("prompt_tokens")
    return exchange


def _free_port() -> int:
    """Return a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def model_server(log_path: Path) -> AsyncIterator[str]:
    """Run scripts/local-model's server; yield its base URL (without /v1)."""
    port = _free_port()
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: ASYNC220 (started once, stopped below)
            [str(ROOT / "scripts" / "local-model"), "serve", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with ClientSession() as http:
            for _ in range(240):
                if server.poll() is not None:
                    log_text = await asyncio.to_thread(log_path.read_text)
                    raise RuntimeError(f"the model server stopped: {log_text[-2000:]}")
                try:
                    async with http.get(f"{url}/v1/models") as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                await asyncio.sleep(0.5)
            else:
                raise RuntimeError("the model server did not start in 120 s")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _async_history_tokens(recorder: Recorder, body: dict[str, Any]) -> tuple[int, int, int]:
    """Return the history's exchanges and tokens, and the new user text's tokens."""
    messages = body["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    history = [m for m in messages[1:last_user] if m["role"] != "system"]
    tokens = 0
    for message in history:
        text = message.get("content") or ""
        if calls := message.get("tool_calls"):
            text += json.dumps(calls)
        tokens += await recorder.count_tokens(text) + CHATML_TOKENS_PER_MESSAGE
    new_text = await recorder.count_tokens(messages[last_user]["content"] or "")
    exchanges = sum(1 for m in history if m["role"] == "user")
    return exchanges, tokens, new_text


@dataclass(frozen=True, slots=True)
class RealHome:
    """A Home Assistant serving its API on a free port, beside the real model server."""

    hass: HomeAssistant
    recorder: Recorder
    # The model server's address (without /v1), and Home Assistant's HTTP port.
    upstream: str
    port: int


@asynccontextmanager
async def async_real_home(log_path: Path) -> AsyncIterator[RealHome]:
    """Start the model server, its recorder and a Home Assistant with the voice stack."""
    with plain_resolver():
        async with (
            model_server(log_path) as upstream,
            Recorder(upstream, log_path) as recorder,
            home_assistant() as hass,
        ):
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # let custom_components load
            assert await async_setup_component(hass, "homeassistant", {})
            async with async_serving(hass) as port:
                assert await async_setup_component(hass, "assist_pipeline", {})
                yield RealHome(hass, recorder, upstream, port)


async def async_session(turns: int, log_path: Path) -> list[Turn]:
    """Run one session of `turns` turns against the real model; return what each cost."""
    results: list[Turn] = []
    async with async_real_home(log_path) as home:
        hass, recorder = home.hass, home.recorder
        await _async_setup_demo(hass)
        agent = await _async_home_agent(hass, recorder.base_url)
        async with async_connect(hass, home.port) as websocket:
            pipeline_id = await websocket.create_pipeline(agent)
            conversation_id: str | None = None
            for number in range(1, turns + 1):
                before = len(recorder.exchanges)
                text = SENTENCES[(number - 1) % len(SENTENCES)]
                run = await websocket.run_text(pipeline_id, text, DEVICE_ID, conversation_id)
                end = next(e for e in run.events if e.type == "intent-end")
                output = end.data["intent_output"]
                conversation_id = output["conversation_id"]
                await recorder.settled()
                exchanges = recorder.exchanges[before:]
                if not exchanges:
                    raise RuntimeError(f"the model was not asked: {output['response']}")
                sizes = await _async_history_tokens(recorder, exchanges[0].body)
                results.append(
                    Turn(
                        number,
                        end.at,
                        exchanges,
                        *sizes,
                        output["response"]["speech"]["plain"]["speech"],
                    )
                )
                print(_turn_line(results[-1]), flush=True)
    return results


async def _async_setup_demo(hass: HomeAssistant) -> None:
    """Set up the demo devices a home talks about, exposed to Assist as the dev instance's."""
    entry = MockConfigEntry(domain="demo")
    entry.add_to_hass(hass)
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        DEMO_PLATFORMS,
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()


async def _async_home_agent(hass: HomeAssistant, base_url: str) -> str:
    """Add Home Agent (openai backend, default prompt, Assist API); return its entity id."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent (local model)",
        data={
            CONF_BACKEND: "openai",
            CONF_BASE_URL: base_url,
            CONF_API_KEY: "local",
            CONF_MODEL: MODEL,
            CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        },
        # Many exchanges kept, so the token budget (its default) is what bounds the history.
        options={CONF_HISTORY_MAX_TURNS: MAX_HISTORY_MAX_TURNS},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    return next(
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.domain == "conversation"
    )


def _turn_line(turn: Turn) -> str:
    """Describe one turn in a line."""
    figures = ", ".join(
        f"evaluated {e.evaluated} of {e.prompt_tokens} (reused {e.reused})" for e in turn.exchanges
    )
    return (
        f"turn {turn.number:>2}: {turn.seconds:5.2f} s, {len(turn.exchanges)} request(s): "
        f"{figures}; history {turn.history_exchanges} exchanges / {turn.history_tokens} tokens,"
        f" new text {turn.new_text_tokens} tokens; said {turn.speech[:60]!r}"
    )


def _report(turns: list[Turn]) -> str:
    """Render the summary as markdown."""
    lines = [
        "| measurement | Home Agent | target | met? |",
        "|---|---:|---|---|",
    ]
    first = turns[0]
    prompt_ms = first.exchanges[0].prompt_ms
    lines.append(
        f"| first turn: prompt tokens evaluated / their evaluation time (server log) / time to"
        f" the complete reply | {first.evaluated} / "
        f"{'?' if prompt_ms is None else f'{prompt_ms / 1000:.2f} s'} / {first.seconds:.2f} s"
        " | — | — |"
    )
    for exchanges in HISTORY_POINTS:
        turn = next((t for t in turns if t.history_exchanges == exchanges), None)
        if turn is None or turn.evaluated is None:
            continue
        # What must be evaluated at the least: the new user text and the previous reply
        # (it was generated, not evaluated), plus the allowance.
        limit = turn.new_text_tokens + TARGET_EXTRA_TOKENS
        lines.append(
            f"| follow-up turn {turn.number}, {exchanges} exchange(s) of history: prompt tokens "
            f"evaluated (new text {turn.new_text_tokens} tokens) | {turn.evaluated} | "
            f"≤ new text + {TARGET_EXTRA_TOKENS} ({limit}) | "
            f"{'yes' if turn.evaluated <= limit else '**no**'} |"
        )
    peak = max(turns, key=lambda t: t.history_tokens)
    fits = "yes" if peak.history_tokens <= DEFAULT_HISTORY_MAX_TOKENS else "**no**"
    lines.append(
        f"| history tokens over {len(turns)} turns: largest (turn {peak.number}, "
        f"{peak.history_exchanges} exchanges) / last | {peak.history_tokens} / "
        f"{turns[-1].history_tokens} | ≤ {DEFAULT_HISTORY_MAX_TOKENS:,} (the default "
        f"`history_max_tokens`) | {fits} |"
    )
    follow_ups = [t.evaluated for t in turns[1:] if t.evaluated is not None]
    if follow_ups:
        lines.append(
            f"| follow-up turns: prompt tokens evaluated (median / largest) | "
            f"{statistics.median(follow_ups):,.0f} / {max(follow_ups):,} | — | — |"
        )
    return "\n".join(lines)


async def async_main(turns: int, warm_up_runs: int | None, memory: bool) -> None:
    """Run the session (or the warm-up runs, or the memory questions) and print the table."""
    from . import memory_real, warm_up  # noqa: PLC0415 - they import this module

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("haffmpeg").setLevel(logging.CRITICAL)
    started = time.monotonic()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="home-agent-real-model-") as folder:
        log_path = Path(folder) / "server.log"
        if memory:
            answers, in_prompt = await memory_real.async_measure(log_path)
            what = f"{len(answers)} questions about planted household notes."
            table = memory_real.report(answers, in_prompt)
        elif warm_up_runs is None:
            results = await async_session(turns, log_path)
            what, table = f"{turns} turns of one session.", _report(results)
        else:
            measured = await warm_up.async_measure(warm_up_runs, log_path)
            what = f"{warm_up_runs} interleaved runs with and without the warm-up."
            table = warm_up.report(*measured)
    print()
    print(
        f"Home Assistant {HA_VERSION}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
        f" (load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end); model "
        f"{MODEL} on llama-cpp-python's server; {what}"
    )
    print()
    print(table)
    print(f"Measured in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument(
        "--warm-up",
        type=int,
        nargs="?",
        const=7,
        metavar="RUNS",
        help="measure a session's first turn with and without the warm-up (RUNS each)",
    )
    parser.add_argument(
        "--memory", action="store_true", help="ask about 20 planted household notes"
    )
    arguments = parser.parse_args()
    asyncio.run(async_main(arguments.turns, arguments.warm_up, arguments.memory))
