"""Smoke test: the agent loads and keeps one conversation per device."""

from __future__ import annotations

from pytest_homeassistant_custom_component.common import MockConfigEntry

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr


async def test_two_turns_same_device(
    hass: HomeAssistant, setup_integration: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    device = device_registry.async_get_or_create(
        config_entry_id=setup_integration.entry_id, identifiers={("test", "sat1")}
    )
    first = await conversation.async_converse(
        hass, "what time is it", None, Context(), agent_id="conversation.home_agent",
        device_id=device.id,
    )
    second = await conversation.async_converse(
        hass, "what time is it", "01JXXXXXXXXXXXXXXXXXXXXXXX", Context(),
        agent_id="conversation.home_agent", device_id=device.id,
    )
    assert first.conversation_id == second.conversation_id
    print(first.response.speech, second.response.as_dict())
