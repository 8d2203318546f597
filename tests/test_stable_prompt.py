"""A stable prompt: consecutive requests of a session share their prefix up to the last turn."""

from __future__ import annotations

from datetime import timedelta
import itertools
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_HISTORY_MAX_TURNS,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
)

from .fake_openai import FakeOpenAI
from .helpers import async_advance, converse, make_device, openai_agent_data
from .pipeline_runs import async_voice_with_lights

# What may differ after the shared prefix beyond the new words and the previous reply:
# JSON punctuation of two messages and this turn's facts (the time, on releases without a
# date/time tool).
SLACK = 300


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent with the Assist API and a prompt that uses templates."""
    return openai_agent_data(
        fake_openai.base_url, prompt="You are {{ ha_name }}'s voice assistant."
    )


def _shared_prefix(a: str, b: str) -> int:
    """Return the length of the common prefix of two texts."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


async def test_six_turns_share_their_prefix_and_tools(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Each request adds only the new user text, the previous reply and a little more."""
    voice, kitchen = await async_voice_with_lights(hass, hass_ws_client)
    sentences = [
        "good morning",
        "what lights are on",
        "is the kitchen warm",
        "remind me what I asked first",
        "and what did you answer",
        "thank you",
    ]
    runs = []
    for sentence in sentences:
        runs.append(await voice.say(sentence, kitchen))
        await async_advance(hass, freezer, timedelta(seconds=90))

    assert len({run.conversation_id for run in runs}) == 1
    requests = fake_openai.chat_requests
    assert len(requests) == 6
    for previous, current, run, sentence in zip(
        requests, requests[1:], runs, sentences[1:], strict=False
    ):
        assert current.body["tools"] == previous.body["tools"]
        before = json.dumps(previous.messages)
        after = json.dumps(current.messages)
        shared = _shared_prefix(before, after)
        added = len(after) - shared
        assert added <= len(sentence) + len(run.speech) + SLACK, (added, after[shared:])
        # The shared part covers the whole earlier conversation, not just the system prompt.
        assert shared >= len(before) - len(previous.messages[-1]["content"]) - SLACK


@pytest.mark.parametrize(
    "agent_options",
    [{CONF_SESSION_TIMEOUT: 3600, CONF_SESSION_SCOPE: "device", CONF_HISTORY_MAX_TURNS: 8}],
)
async def test_a_full_history_drops_a_quarter_at_once(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """The oldest exchanges leave in a group, so the history's start rarely changes."""
    kitchen = make_device(hass, "Kitchen satellite")
    for n in range(16):
        await converse(hass, text=f"sentence {n}", device_id=kitchen)

    firsts = [r.messages[1]["content"] for r in fake_openai.chat_requests[1:]]
    changes = sum(1 for a, b in itertools.pairwise(firsts) if a != b)
    # One exchange leaving per turn would change it on each of the last 7 steps.
    assert changes <= 4
    assert all(len(r.messages) - 2 <= 2 * 8 for r in fake_openai.chat_requests)
