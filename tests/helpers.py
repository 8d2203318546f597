"""Helpers shared by the tests: real conversation turns, the agent's tracker."""

from __future__ import annotations

from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.tracker import SessionTracker

AGENT_ENTITY_ID = "conversation.home_agent"


async def converse(
    hass: HomeAssistant,
    conversation_id: str | None = None,
    *,
    text: str = "what time is it",
    device_id: str | None = None,
    user_id: str | None = None,
    agent_id: str = AGENT_ENTITY_ID,
) -> conversation.ConversationResult:
    """Send one turn to an agent the way the REST/websocket API does."""
    return await conversation.async_converse(
        hass,
        text,
        conversation_id,
        Context(user_id=user_id),
        agent_id=agent_id,
        device_id=device_id,
    )


def tracker_of(entry: ConfigEntry) -> SessionTracker:
    """Return the session tracker of a loaded entry."""
    tracker: SessionTracker = entry.runtime_data.tracker
    return tracker


def make_device(hass: HomeAssistant, name: str) -> str:
    """Register a device of another integration (a voice satellite, say); return its id."""
    owner = MockConfigEntry(domain="test")
    owner.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", name)}, name=name
    )
    return device.id


async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Set up Home Assistant's conversation stack and one agent entry."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
