"""Streaming through a real Assist pipeline: words reach the pipeline while the model talks."""

from __future__ import annotations

import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    DOMAIN,
)

from .delegates import StreamingAgent, async_setup_delegating_to
from .fake_openai import FakeOpenAI
from .helpers import AGENT_ENTITY_ID, make_device, openai_agent_data
from .pipeline_runs import Voice, async_voice

# 121 characters, streamed in 16 chunks 80 ms apart (about 1.3 s in all).
REPLY = (
    "The kitchen lights are on, the oven is preheating to 180 degrees and the pasta "
    "timer will ring in exactly twelve minutes."
)


async def _timed_run(voice: Voice, text: str, device_id: str) -> list[tuple[float, dict[str, Any]]]:
    """Run the intent stage; return each event with the seconds since the run was asked for."""
    await voice.client.send_json_auto_id(
        {
            "type": "assist_pipeline/run",
            "start_stage": "intent",
            "end_stage": "intent",
            "input": {"text": text},
            "pipeline": voice.pipeline_id,
            "device_id": device_id,
        }
    )
    started = time.monotonic()
    assert (await voice.client.receive_json())["success"]
    arrivals: list[tuple[float, dict[str, Any]]] = []
    while not arrivals or arrivals[-1][1]["type"] != "run-end":
        event = (await voice.client.receive_json())["event"]
        arrivals.append((time.monotonic() - started, event))
    return arrivals


def _texts(arrivals: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, str]]:
    """Return the text pieces the pipeline passed on, with when they arrived."""
    return [
        (at, event["data"]["chat_log_delta"]["content"])
        for at, event in arrivals
        if event["type"] == "intent-progress"
        and event["data"].get("chat_log_delta", {}).get("content")
    ]


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent with the Assist API, pointed at the fake server."""
    return openai_agent_data(fake_openai.base_url)


async def test_text_reaches_the_pipeline_while_the_model_is_still_talking(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The first words arrive within 0.5 s; the answer ends after 1 s; the next turn has it."""
    assert len(REPLY) == 121
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.stream_reply(REPLY, chunks=16, interval=0.08)

    arrivals = await _timed_run(voice, "get dinner going", kitchen)

    texts = _texts(arrivals)
    intent_end = next(at for at, event in arrivals if event["type"] == "intent-end")
    assert texts, "no text reached the pipeline before the answer was complete"
    assert texts[0][0] < 0.5
    assert intent_end >= 1.0
    assert "".join(text for _, text in texts) == REPLY
    conversation_id = next(
        event["data"]["intent_output"]["conversation_id"]
        for _, event in arrivals
        if event["type"] == "intent-end"
    )

    fake_openai.reply("You are welcome.")
    follow_up = await voice.say("thanks", kitchen)
    assert follow_up.conversation_id == conversation_id
    assert fake_openai.chat_requests[-1].dialogue[-3:] == [
        ("user", "get dinner going"),
        ("assistant", REPLY),
        ("user", "thanks"),
    ]


async def test_the_last_turn_is_measured_by_sensors(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """Time to the first words and to the answer, and the server's token counts."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")
    fake_openai.stream_reply(REPLY, chunks=8, interval=0.05)

    await voice.say("get dinner going", kitchen)

    registry = er.async_get(hass)

    def state(key: str) -> Any:
        entity_id = registry.async_get_entity_id(
            "sensor", DOMAIN, f"{setup_integration.entry_id}_{key}"
        )
        assert entity_id is not None
        return hass.states.get(entity_id)

    first, reply = float(state("first_text_time").state), float(state("reply_time").state)
    assert 0 < first < reply
    assert reply >= 0.3
    assert state("reply_time").attributes["state_class"] == "measurement"
    assert state("reply_time").attributes["unit_of_measurement"] == "s"
    assert int(state("prompt_tokens").state) == 120
    assert int(state("completion_tokens").state) == 16
    assert int(state("cached_prompt_tokens").state) == 100
    for key in ("first_text_time", "reply_time", "prompt_tokens"):
        assert "dinner" not in str(state(key).attributes)


async def test_a_streaming_delegate_reaches_the_pipeline_as_early_as_directly(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, agent_options: dict[str, Any]
) -> None:
    """A delegate that streams (as core LLM agents do) is heard while it is still talking."""
    pieces = [f"piece {n} " for n in range(16)]
    await async_setup_delegating_to(hass, StreamingAgent(hass, pieces, 0.08), agent_options)
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    kitchen = make_device(hass, "Kitchen satellite")

    arrivals = await _timed_run(voice, "tell me a story", kitchen)

    texts = _texts(arrivals)
    intent_end = next(at for at, event in arrivals if event["type"] == "intent-end")
    assert texts
    assert texts[0][0] < 0.5
    assert intent_end >= 1.0
    assert "".join(text for _, text in texts) == "".join(pieces)
