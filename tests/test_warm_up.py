"""Warming the model up while a satellite listens: the coming turn's prefix, ahead of it.

The satellite is a real `assist_satellite` entity of the registry whose state turns
`listening` (as speech-to-text starts); its assistant is the preferred pipeline, answered by
Home Agent. Turns run through the real assist pipeline with the satellite's device.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
import logging
import socket
import time
from typing import Any
from unittest.mock import patch

from aiohttp.abc import AbstractResolver, ResolveResult
from homeassistant.core import HomeAssistant
from homeassistant.helpers import aiohttp_client, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import CONF_MEMORY, CONF_WARM_UP
from custom_components.home_agent.redact import is_local_address

from .fake_openai import FakeOpenAI
from .helpers import (
    AGENT_ENTITY_ID,
    async_add_agent,
    make_device,
    openai_agent_data,
    setup_entry,
)
from .memory.household import prompt_notes, remember
from .pipeline_runs import Voice, async_voice

# A public-looking host name; _PublicName resolves it to the fake server.
PUBLIC_HOST = "api.example.com"


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent on the fake server (on this machine: warm-up on)."""
    return openai_agent_data(fake_openai.base_url)


async def _preferred_voice(hass: HomeAssistant, hass_ws_client: WebSocketGenerator) -> Voice:
    """Return a voice pipeline answered by Home Agent, made the preferred assistant."""
    voice = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    await voice.client.send_json_auto_id(
        {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": voice.pipeline_id}
    )
    assert (await voice.client.receive_json())["success"]
    return voice


def _satellite(hass: HomeAssistant, name: str) -> tuple[str, str]:
    """Register a satellite entity on a device of its own; return (entity id, device id)."""
    device_id = make_device(hass, name)
    entry = er.async_get(hass).async_get_or_create(
        "assist_satellite", "test", name, device_id=device_id, suggested_object_id=name
    )
    hass.states.async_set(entry.entity_id, "idle")
    return entry.entity_id, device_id


async def _kitchen(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator
) -> tuple[Voice, str, str]:
    """Make Home Agent the preferred assistant; add the kitchen satellite.

    Returns the voice pipeline, the satellite's entity id and its device id.
    """
    voice = await _preferred_voice(hass, hass_ws_client)
    kitchen, kitchen_device = _satellite(hass, "kitchen")
    return voice, kitchen, kitchen_device


async def _kitchen_then_bedroom(hass: HomeAssistant, voice: Voice, kitchen_device: str) -> None:
    """Have a turn on the kitchen satellite, then one on another (the server's cache holds that)."""
    await voice.say("remember the milk", kitchen_device)
    await voice.say("what time is it", make_device(hass, "Bedroom"))


async def _listen(hass: HomeAssistant, satellite: str) -> None:
    """Let the satellite start listening (its speech-to-text starts); wait for a warm-up."""
    hass.states.async_set(satellite, "listening")
    await hass.async_block_till_done(wait_background_tasks=True)
    hass.states.async_set(satellite, "processing")


async def test_a_satellite_that_starts_listening_warms_the_coming_prefix(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The warm-up is the coming request up to its new words, byte for byte."""
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)
    await _kitchen_then_bedroom(hass, voice, kitchen_device)

    await _listen(hass, kitchen)
    await voice.say("and the eggs", kitchen_device)

    [warm_up] = fake_openai.warm_ups
    turn = fake_openai.chat_requests[-1]
    assert turn.raw.decode().startswith(turn.raw.decode()[: turn.raw.index(b'"tools"')])
    assert turn.prompt_text.startswith(warm_up.prompt_text)
    assert turn.messages[:-1] == warm_up.messages
    assert [text for role, text in warm_up.dialogue if role == "user"] == ["remember the milk"]


async def test_a_satellite_without_a_session_warms_a_new_sessions_prefix(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The first turn of a session shares the start a new session sends."""
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)

    await _listen(hass, kitchen)
    await voice.say("hello there", kitchen_device)

    [warm_up] = fake_openai.warm_ups
    [turn] = fake_openai.chat_requests
    assert [m["role"] for m in warm_up.messages] == ["system"]
    assert turn.prompt_text.startswith(warm_up.prompt_text)


async def test_no_warm_up_when_the_server_holds_the_prefix_already(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """A follow-up after this satellite's own turn: the server has read it all already."""
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)
    await voice.say("remember the milk", kitchen_device)

    await _listen(hass, kitchen)
    hass.states.async_set(kitchen, "idle")
    await _listen(hass, kitchen)

    assert fake_openai.warm_ups == []


async def test_at_most_one_warm_up_per_satellite_at_a_time(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """Listening again while a slow warm-up is in flight sends no second one."""
    _voice, kitchen, _device = await _kitchen(hass, hass_ws_client)
    fake_openai.warm_up_answer(delay=0.5)

    hass.states.async_set(kitchen, "listening")
    await asyncio.sleep(0.05)
    hass.states.async_set(kitchen, "idle")
    hass.states.async_set(kitchen, "listening")
    await hass.async_block_till_done(wait_background_tasks=True)

    assert len(fake_openai.warm_ups) == 1


async def test_no_warm_up_while_a_turn_of_the_session_runs(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The satellite listens again while its session's turn is still being answered."""
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)
    await _kitchen_then_bedroom(hass, voice, kitchen_device)
    fake_openai.slow(0.5)

    turn = asyncio.create_task(voice.say("and the eggs", kitchen_device))
    await fake_openai.requested(3)
    await _listen(hass, kitchen)
    await turn

    assert fake_openai.warm_ups == []


@pytest.mark.parametrize(("status", "delay"), [(500, 0.0), (200, 1.0)], ids=["fails", "slow"])
async def test_a_failing_or_slow_warm_up_leaves_the_turn_as_it_was(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    status: int,
    delay: float,
) -> None:
    """The turn is answered as without a warm-up, and not held back by one in flight."""
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)
    fake_openai.warm_up_answer(status=status, delay=delay)
    fake_openai.reply("Noted.")

    hass.states.async_set(kitchen, "listening")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    run = await voice.say("remember the milk", kitchen_device)
    took = time.monotonic() - started
    await hass.async_block_till_done(wait_background_tasks=True)

    assert run.speech == "Noted."
    assert took < delay or delay == 0
    assert len(fake_openai.warm_ups) == 1
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("custom_components.home_agent") and r.levelno >= logging.WARNING
    ]


async def test_a_satellite_answered_by_another_assistant_warms_nothing(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """Its assistant (the pipeline select) is another pipeline, not answered by Home Agent."""
    _voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)
    select = er.async_get(hass).async_get_or_create(
        "select", "test", "kitchen-pipeline", device_id=kitchen_device, translation_key="pipeline"
    )
    hass.states.async_set(select.entity_id, "Home Assistant")

    await _listen(hass, kitchen)

    assert fake_openai.warm_ups == []


async def test_switched_off_it_warms_nothing(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """The option turns it off (the entry reloads)."""
    hass.config_entries.async_update_entry(
        setup_integration, options={**setup_integration.options, CONF_WARM_UP: False}
    )
    await hass.async_block_till_done()
    _voice, kitchen, _device = await _kitchen(hass, hass_ws_client)

    await _listen(hass, kitchen)

    assert fake_openai.warm_ups == []


@pytest.mark.parametrize(
    ("base_url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://192.168.1.20:11434/v1", True),
        ("http://[fd00::5]:8000/v1", True),
        ("http://100.101.102.103:11434/v1", True),
        ("http://ollama:11434/v1", True),
        ("http://llm.local:8080/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://8.8.8.8/v1", False),
        ("not a url", False),
    ],
)
def test_nearby_endpoints_are_told_from_public_ones(base_url: str, local: bool) -> None:
    """What decides the default: this machine and the local network, or the internet."""
    assert is_local_address(base_url) is local


class _PublicName(AbstractResolver):
    """Resolves a public-looking host name to the fake server (there is no internet here)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Answer every name with 127.0.0.1."""
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Nothing to close."""

    async def real_close(self) -> None:
        """Nothing to close (Home Assistant closes its resolver with this)."""


def _public_names() -> AbstractContextManager[Any]:
    """Resolve every host name to the fake server (see _PublicName) while it lasts."""
    return patch.object(aiohttp_client, "_async_make_resolver", lambda _hass: _PublicName())


@pytest.mark.parametrize(("chosen", "sent"), [(None, 0), (True, 1)], ids=["default", "chosen"])
async def test_a_public_endpoint_is_warmed_up_only_when_chosen(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
    agent_options: dict[str, Any],
    chosen: bool | None,
    sent: int,
) -> None:
    """A public service may bill each request: no warm-up unless the option says so."""
    options = agent_options if chosen is None else {**agent_options, CONF_WARM_UP: chosen}
    with _public_names():
        await async_add_agent(hass, openai_agent_data(fake_openai.url_on(PUBLIC_HOST)), options)
        _voice, kitchen, _device = await _kitchen(hass, hass_ws_client)

        await _listen(hass, kitchen)

    assert fake_openai.requests[0].path == "/v1/models"  # the agent reached the server
    assert len(fake_openai.warm_ups) == sent


async def test_moving_to_a_public_endpoint_takes_its_default_again(
    hass: HomeAssistant, fake_openai: FakeOpenAI, agent_options: dict[str, Any]
) -> None:
    """A reconfigure from a nearby server to a public service does not keep warming up."""
    with _public_names():
        entry = await async_add_agent(
            hass,
            openai_agent_data(fake_openai.base_url),
            {**agent_options, CONF_WARM_UP: True},
        )
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"base_url": fake_openai.url_on(PUBLIC_HOST)}
        )
        await hass.async_block_till_done()

    assert result["reason"] == "reconfigure_successful"
    assert CONF_WARM_UP not in entry.options


async def test_the_warm_up_carries_the_notes_the_turn_will_have(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    hass_ws_client: WebSocketGenerator,
    fake_openai: FakeOpenAI,
) -> None:
    """With household memory on, the notes are part of the prefix, the same in both."""
    hass.config_entries.async_update_entry(
        config_entry, options={**config_entry.options, CONF_MEMORY: True}
    )
    await setup_entry(hass, config_entry)
    await remember(hass, "The guest room heater must never go above 20 degrees.")
    voice, kitchen, kitchen_device = await _kitchen(hass, hass_ws_client)

    await _listen(hass, kitchen)
    await voice.say("how warm may the guest room be", kitchen_device)

    [warm_up] = fake_openai.warm_ups
    [turn] = fake_openai.chat_requests
    assert prompt_notes(warm_up.system_prompt) == [
        "The guest room heater must never go above 20 degrees."
    ]
    assert turn.prompt_text.startswith(warm_up.prompt_text)
