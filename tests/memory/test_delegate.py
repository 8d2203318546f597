"""A delegating agent with memory: an LLM delegate is told the notes, the same every turn."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockUser
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from ..delegates import ChatLogAgent, async_setup_delegating_to
from ..helpers import AGENT_ENTITY_ID, async_advance, make_device
from ..pipeline_runs import Satellite, async_voice
from .household import async_people, listed, prompt_notes, remember

HEATER = "The guest room heater must never go above 20 degrees."
PARTY = "Ada's surprise party for Bob is on 3 May."


async def test_an_llm_delegate_gets_the_notes_in_an_unchanging_prompt(
    hass: HomeAssistant, agent_options: dict[str, Any], freezer: FrozenDateTimeFactory
) -> None:
    """The notes as the session began, every turn; a new session has the newer ones."""
    agent = ChatLogAgent(hass)
    entry = await async_setup_delegating_to(hass, agent, agent_options)
    await remember(hass, HEATER)
    kitchen = Satellite(hass, AGENT_ENTITY_ID, make_device(hass, "Kitchen"))

    await kitchen.say("hello")
    await remember(hass, "Carla visits on 14 June.")
    await kitchen.say("anything new")

    first, second = agent.seen
    assert first.extra_system_prompt is not None
    assert prompt_notes("\n\n" + first.extra_system_prompt) == [HEATER]
    assert second.extra_system_prompt == first.extra_system_prompt
    await async_advance(hass, freezer, timedelta(seconds=3601))
    await kitchen.say("good evening")
    assert "Carla visits on 14 June." in (agent.seen[-1].extra_system_prompt or "")
    # No model of Home Agent's own: nothing is made of the session that ended.
    assert entry.runtime_data.notes is not None
    assert await listed(hass) == [HEATER, "Carla visits on 14 June."]


async def test_an_llm_delegate_hears_only_the_speakers_notes(
    hass: HomeAssistant,
    agent_options: dict[str, Any],
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
) -> None:
    """Ada's own note goes to the delegate in Ada's turns, not in a satellite's."""
    agent = ChatLogAgent(hass)
    await async_setup_delegating_to(hass, agent, agent_options)
    people = await async_people(hass, Ada=hass_admin_user)
    await remember(hass, HEATER)
    await remember(hass, PARTY, person=people["Ada"])
    ada = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)

    await ada.say("what is planned", make_device(hass, "Study tablet"))
    await Satellite(hass, AGENT_ENTITY_ID, make_device(hass, "Kitchen")).say("what is planned")

    adas, satellites = agent.seen
    assert PARTY in (adas.extra_system_prompt or "")
    assert HEATER in (satellites.extra_system_prompt or "")
    assert "surprise" not in (satellites.extra_system_prompt or "")
