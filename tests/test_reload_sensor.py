"""A reload right after a new device's first turn: one session sensor, and it keeps updating."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .helpers import converse, make_device


async def test_a_reload_right_after_a_new_devices_first_turn(
    hass: HomeAssistant, setup_integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """No duplicate entity, and the sensor follows the next turn."""
    kitchen = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=kitchen)
    # No waiting: the sensor of the new key is still being added when the reload starts.
    assert await hass.config_entries.async_reload(setup_integration.entry_id)
    await hass.async_block_till_done()
    await converse(hass, device_id=kitchen)
    await hass.async_block_till_done()

    sensors = [
        entity_id
        for entity_id in hass.states.async_entity_ids("sensor")
        if entity_id.endswith("kitchen_satellite_conversation")
    ]
    assert sensors == ["sensor.home_agent_kitchen_satellite_conversation"]
    state = hass.states.get(sensors[0])
    assert state is not None
    assert state.state == "active"
    assert state.attributes["turns"] == 2
    assert "already exists" not in caplog.text
    assert "does not generate unique IDs" not in caplog.text
