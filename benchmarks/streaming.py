"""(f) Time to first text and to the complete reply through a real assist pipeline.

One Home Assistant, three agents, each with a text pipeline run over a real websocket
(`assist_pipeline/run`, intent stage, a satellite's device id), as the Assist dialog runs
it. Every model endpoint speaks the same 121-character reply in 16 chunks 80 ms apart
(benchmarks/fake_endpoints.py):

- Home Agent, `openai` backend, against an OpenAI-compatible server that streams
  server-sent events when the request asks for `stream`;
- Home Agent against the same server ignoring `stream` (the whole body after 1.28 s):
  streaming off;
- Home Assistant's core `ollama` agent (the peer a user would pick instead) against a fake
  Ollama server streaming `/api/chat`, through a real config entry of the integration.

The runs are interleaved, so load on the machine hits all of them alike. "First text" is
the first `intent-progress` event carrying `chat_log_delta` content, "complete" is
`intent-end`, both from sending the run command to the event reaching the client.
"""

from __future__ import annotations

from dataclasses import dataclass
import statistics
from types import MappingProxyType
from typing import Any

from homeassistant import config_entries, loader
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MODEL,
    DOMAIN,
)

from .fake_endpoints import CHUNKS, INTERVAL, MODEL, REPLY, FakeOllama, FakeOpenAIStream
from .harness import home_assistant, plain_resolver
from .websocket import TimedEvent, Websocket, async_connect, async_serving

TEXT = "what is the state of the house"
DEVICE_ID = "kitchen-satellite"
HOME_AGENT_STREAMING = "Home Agent, streaming"
HOME_AGENT_OFF = "Home Agent, streaming off"
OLLAMA = "core ollama agent"
ROWS = (HOME_AGENT_STREAMING, HOME_AGENT_OFF, OLLAMA)


@dataclass(frozen=True, slots=True)
class Timing:
    """Medians of one agent's runs, in seconds after the run was sent."""

    first_text: float | None  # None: no text before intent-end
    complete: float
    first_chunk: float  # when the endpoint wrote its first chunk (same clock)
    streamed_text: str
    speech: str
    runs: int
    asked_to_stream: bool  # the agent's last request asked for a streamed reply


async def async_measure(runs: int) -> dict[str, Timing]:
    """Run `runs` interleaved turns of each agent; return the medians by row."""
    with plain_resolver():
        async with (
            home_assistant() as hass,
            FakeOpenAIStream() as streaming,
            FakeOpenAIStream(ignore_stream=True) as ignoring,
            FakeOllama() as ollama,
        ):
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # let custom_components load
            assert await async_setup_component(hass, "homeassistant", {})
            async with async_serving(hass) as port:
                assert await async_setup_component(hass, "assist_pipeline", {})
                agents = {
                    HOME_AGENT_STREAMING: await _async_home_agent(hass, "Streaming", streaming),
                    HOME_AGENT_OFF: await _async_home_agent(hass, "Streaming off", ignoring),
                    OLLAMA: await _async_core_ollama(hass, ollama),
                }
                servers: dict[str, FakeOpenAIStream | FakeOllama] = {
                    HOME_AGENT_STREAMING: streaming,
                    HOME_AGENT_OFF: ignoring,
                    OLLAMA: ollama,
                }
                async with async_connect(hass, port) as socket:
                    return await _async_runs(socket, agents, servers, runs)


async def _async_runs(
    socket: Websocket,
    agents: dict[str, str],
    servers: dict[str, FakeOpenAIStream | FakeOllama],
    runs: int,
) -> dict[str, Timing]:
    """Interleave the agents' runs, one satellite each, every run continuing its session."""
    pipelines = {row: await socket.create_pipeline(agent) for row, agent in agents.items()}
    samples: dict[str, list[tuple[TimedEvent | None, TimedEvent, float, str, str]]] = {
        row: [] for row in agents
    }
    asked: dict[str, bool] = {}
    conversations: dict[str, str | None] = dict.fromkeys(agents)
    for _ in range(runs + 1):  # the first run of each warms up (imports, templates)
        for row in agents:
            server = servers[row]
            run = await socket.run_text(
                pipelines[row], TEXT, f"{DEVICE_ID}-{row}", conversations[row]
            )
            events = run.events
            end = next(e for e in events if e.type == "intent-end")
            output = end.data["intent_output"]
            conversations[row] = output["conversation_id"]
            deltas = [e for e in events if e.type == "intent-progress" and _delta_text(e)]
            # Ollama's chat streams unless told not to; an OpenAI request must ask.
            asked[row] = bool(server.requests[-1].get("stream", isinstance(server, FakeOllama)))
            samples[row].append(
                (
                    deltas[0] if deltas else None,
                    end,
                    server.served[-1].first_chunk - run.sent,
                    "".join(_delta_text(e) for e in deltas),
                    output["response"]["speech"]["plain"]["speech"],
                )
            )
    return {row: _timing(values[1:], asked[row]) for row, values in samples.items()}


def _delta_text(event: TimedEvent) -> str:
    """Return the text a chat-log delta carries, if any."""
    delta = event.data.get("chat_log_delta") or {}
    content = delta.get("content")
    return content if isinstance(content, str) else ""


def _timing(
    values: list[tuple[TimedEvent | None, TimedEvent, float, str, str]], asked_to_stream: bool
) -> Timing:
    """Summarize one agent's runs."""
    firsts = [first.at for first, *_ in values if first is not None]
    return Timing(
        first_text=statistics.median(firsts) if len(firsts) == len(values) else None,
        complete=statistics.median(end.at for _, end, *_ in values),
        first_chunk=statistics.median(chunk for _, _, chunk, *_ in values),
        streamed_text=values[-1][3],
        speech=values[-1][4],
        runs=len(values),
        asked_to_stream=asked_to_stream,
    )


async def _async_home_agent(hass: HomeAssistant, title: str, server: FakeOpenAIStream) -> str:
    """Add a Home Agent (openai backend, Assist API) for a server; return its entity id."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home Agent {title}",
        data={
            CONF_BACKEND: "openai",
            CONF_BASE_URL: server.base_url,
            CONF_API_KEY: "sk-bench",
            CONF_MODEL: MODEL,
            CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return _conversation_entity(hass, entry.entry_id)


async def _async_core_ollama(hass: HomeAssistant, server: FakeOllama) -> str:
    """Add Home Assistant's ollama integration for a server; return its agent's entity id."""
    from homeassistant.components.ollama import config_flow  # noqa: PLC0415 (bench-only dep)

    flow = config_flow.OllamaConfigFlow
    agent = {CONF_MODEL: f"{MODEL}:latest", CONF_LLM_HASS_API: [llm.LLM_API_ASSIST]}
    shape: dict[str, Any]
    if "async_get_supported_subentry_types" in vars(flow):
        # 2025.7+: the entry holds the server, a "conversation" subentry each agent.
        subentry = config_entries.ConfigSubentryData(
            data=MappingProxyType(agent),
            subentry_type="conversation",
            title="Ollama bench",
            unique_id=None,
        )
        shape = {"data": {"url": server.url}, "subentries_data": [subentry]}
    else:
        # Earlier: one entry per agent, the model in data, the rest in options.
        shape = {
            "data": {"url": server.url, CONF_MODEL: agent[CONF_MODEL]},
            "options": {CONF_LLM_HASS_API: llm.LLM_API_ASSIST},  # one API, not a list
        }
    entry = MockConfigEntry(
        domain="ollama",
        title="Ollama bench",
        version=flow.VERSION,
        minor_version=getattr(flow, "MINOR_VERSION", 1),
        **shape,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id), entry.state
    await hass.async_block_till_done()
    return _conversation_entity(hass, entry.entry_id)


def _conversation_entity(hass: HomeAssistant, entry_id: str) -> str:
    """Return the conversation entity a config entry created."""
    registry = er.async_get(hass)
    return next(
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry_id)
        if e.domain == "conversation"
    )


def schedule() -> str:
    """Describe the endpoints' chunk schedule."""
    return (
        f"{len(REPLY)}-character reply in {CHUNKS} chunks {INTERVAL * 1000:.0f} ms apart "
        f"(first after {INTERVAL * 1000:.0f} ms, last after {INTERVAL * CHUNKS:.2f} s)"
    )
