"""Helpers of the household-memory tests: people linked to users, actions, the notes file."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Context, HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockUser, async_fire_time_changed
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import (
    CONF_HISTORY_MAX_TURNS,
    CONF_MEMORY,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
    SAVE_DELAY,
)
from custom_components.home_agent.notes_prompt import NOTES_HEADER
from custom_components.home_agent.notes_store import NOTES_KEY

from ..fake_openai import FakeOpenAI
from ..helpers import AGENT_ENTITY_ID, make_device
from ..pipeline_runs import Satellite, Voice, async_voice

MEMORY_OPTIONS: dict[str, Any] = {
    CONF_SESSION_TIMEOUT: 3600,
    CONF_SESSION_SCOPE: "device",
    CONF_HISTORY_MAX_TURNS: 10,
    CONF_MEMORY: True,
}
MEMORY_EVENTS = (
    "home_agent_memory_added",
    "home_agent_memory_updated",
    "home_agent_memory_forgotten",
)


async def async_people(hass: HomeAssistant, **users: MockUser | None) -> dict[str, str]:
    """Set up the person integration with one person per name, linked to its user (if any).

    Returns the person entity id by name.
    """
    persons = [
        {"id": name.lower(), "name": name, **({"user_id": user.id} if user else {})}
        for name, user in users.items()
    ]
    assert await async_setup_component(hass, "person", {"person": persons})
    await hass.async_block_till_done()
    return {name: f"person.{name.lower()}" for name in users}


async def act(
    hass: HomeAssistant, service: str, user: MockUser | None = None, **data: Any
) -> dict[str, Any]:
    """Call a memory action as `user` (None: an automation) and return its response."""
    response = await hass.services.async_call(
        DOMAIN,
        service,
        data,
        blocking=True,
        return_response=True,
        context=Context(user_id=user.id if user else None),
    )
    assert response is not None
    return dict(response)


async def remember(
    hass: HomeAssistant, text: str, user: MockUser | None = None, **data: Any
) -> str:
    """Remember a note through the action; return its id."""
    memory_id: str = (await act(hass, "remember", user, text=text, **data))["memory_id"]
    return memory_id


async def listed(hass: HomeAssistant, user: MockUser | None = None, **data: Any) -> list[str]:
    """Return the texts `list_memories` shows `user`."""
    return [m["text"] for m in (await act(hass, "list_memories", user, **data))["memories"]]


def notes_file(hass: HomeAssistant) -> Path:
    """Return the household's notes file."""
    return Path(hass.config.path(".storage", NOTES_KEY))


def stored(hass: HomeAssistant) -> bytes:
    """Return the bytes of the notes file (empty when there is none)."""
    path = notes_file(hass)
    return path.read_bytes() if path.exists() else b""


async def async_later(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Let time pass; wait for what fell due, background work (extractions) included.

    A second more passes after that, for what the first wave scheduled at once.
    """
    for step in (seconds, 1):
        freezer.tick(timedelta(seconds=step))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)


async def async_saved(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let the save delay pass, so what changed is on disk."""
    await async_later(hass, freezer, SAVE_DELAY)


async def assert_nothing_kept(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, text: bytes
) -> None:
    """Check that no note is listed and, once the save delay passed, `text` is not on disk."""
    assert await listed(hass) == []
    await async_saved(hass, freezer)
    assert text not in stored(hass)


def prompt_notes(system_prompt: str) -> list[str]:
    """Return the notes a system prompt holds, in order ([] without a notes section)."""
    if NOTES_HEADER not in system_prompt:
        return []
    notes = []
    for line in system_prompt.split(NOTES_HEADER, 1)[1].split("\n")[1:]:
        if not line.startswith("- "):
            break
        notes.append(line[2:])
    return notes


async def async_voices_of_ada_and_bob(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, bobs_token: str
) -> tuple[Voice, Voice]:
    """Return Ada's voice (the test's admin user) and Bob's (his token), on one pipeline."""
    ada = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    bob = Voice(await hass_ws_client(hass, bobs_token), ada.pipeline_id)
    return ada, bob


def voice_satellite(hass: HomeAssistant, name: str) -> Satellite:
    """Return a voice satellite (no user) named `name`, talking to the agent."""
    return Satellite(hass, AGENT_ENTITY_ID, make_device(hass, name))


def tool_results(fake: FakeOpenAI) -> list[dict[str, Any]]:
    """Return every tool result the model was sent in the last request, parsed."""
    return [
        json.loads(message["content"])
        for message in fake.chat_requests[-1].messages
        if message["role"] == "tool"
    ]
