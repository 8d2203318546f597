"""The reset-on-button blueprint, imported and used the way a user does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.blueprint import Blueprint, BlueprintInputs
from homeassistant.components.event import EventEntity
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.setup import async_setup_component
from homeassistant.util.yaml import load_yaml_dict
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockPlatform,
    async_capture_events,
    mock_platform,
)

from custom_components.home_agent.const import DOMAIN, EVENT_SESSION_CLEARED

from .helpers import converse, make_device, sessions_of

BLUEPRINT_NAME = "reset_conversation_on_button.yaml"
BLUEPRINT = Path(__file__).parent.parent / "blueprints" / "automation" / DOMAIN / BLUEPRINT_NAME
BLUEPRINT_PATH = f"{DOMAIN}/{BLUEPRINT_NAME}"
KITCHEN_SENSOR = "sensor.home_agent_kitchen_satellite_conversation"


class RemoteButton(EventEntity):
    """A button of a remote control: an event entity with two kinds of press."""

    _attr_name = "Remote button"
    _attr_unique_id = "remote-button"

    def __init__(self) -> None:
        """Offer a short and a long press."""
        self._attr_event_types = ["short_press", "long_press"]

    def press(self, event_type: str) -> None:
        """Press the button as its integration reports it."""
        self._trigger_event(event_type)
        self.async_write_ha_state()

    def set_available(self, available: bool) -> None:
        """Lose or regain the connection to the remote."""
        self._attr_available = available
        self.async_write_ha_state()


@pytest.fixture
async def kitchen(hass: HomeAssistant, setup_integration: MockConfigEntry) -> str:
    """Return a satellite device with an active conversation."""
    device_id = make_device(hass, "Kitchen satellite")
    await converse(hass, device_id=device_id)
    await hass.async_block_till_done()
    assert hass.states.get(KITCHEN_SENSOR).state == "active"
    return device_id


@pytest.fixture
def blueprint_installed(hass: HomeAssistant, tmp_path: Path) -> None:
    """Put the blueprint where an import puts it: <config>/blueprints/automation/home_agent/."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / DOMAIN
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target / BLUEPRINT_NAME)


async def create_automation(hass: HomeAssistant, **inputs: Any) -> None:
    """Create an automation from the blueprint, as the blueprint editor does."""
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "alias": "Kitchen reset button",
                "use_blueprint": {"path": BLUEPRINT_PATH, "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get("automation.kitchen_reset_button").state == "on"


def test_blueprint_is_valid() -> None:
    """Home Assistant accepts the blueprint and knows what it asks for."""
    blueprint = Blueprint(
        load_yaml_dict(str(BLUEPRINT)),
        expected_domain="automation",
        path=BLUEPRINT_PATH,
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )

    assert blueprint.validate() is None
    assert set(blueprint.inputs) == {"reset_button", "satellite", "event_types"}
    assert blueprint.metadata["homeassistant"]["min_version"] == "2025.4.0"
    config = BlueprintInputs(
        blueprint,
        {
            "use_blueprint": {
                "path": BLUEPRINT_PATH,
                "input": {"reset_button": "input_button.reset", "satellite": "device-1"},
            }
        },
    )
    config.validate()
    substituted = config.async_substitute()
    assert substituted["actions"] == [
        {"action": "home_agent.clear_conversation", "data": {"device_id": "device-1"}}
    ]


@pytest.mark.usefixtures("blueprint_installed")
async def test_pressing_a_button_helper_clears_the_satellites_conversation(
    hass: HomeAssistant, setup_integration: MockConfigEntry, kitchen: str
) -> None:
    """The real action runs: the session ends, the event fires, the sensor goes idle."""
    bedroom = make_device(hass, "Bedroom satellite")
    await converse(hass, device_id=bedroom)
    assert await async_setup_component(
        hass, "input_button", {"input_button": {"reset": {"name": "Reset"}}}
    )
    await create_automation(hass, reset_button="input_button.reset", satellite=kitchen)
    cleared = async_capture_events(hass, EVENT_SESSION_CLEARED)

    await hass.services.async_call(
        "input_button", "press", {"entity_id": "input_button.reset"}, blocking=True
    )
    await hass.async_block_till_done()

    assert [event.data["device_id"] for event in cleared] == [kitchen]
    assert cleared[0].data["reason"] == "service"
    assert hass.states.get(KITCHEN_SENSOR).state == "idle"
    assert [s.device_id for s in sessions_of(setup_integration)] == [bedroom]

    # Pressed again with nothing to clear: no error, nothing else happens.
    await hass.services.async_call(
        "input_button", "press", {"entity_id": "input_button.reset"}, blocking=True
    )
    await hass.async_block_till_done()
    assert len(cleared) == 1


@pytest.mark.usefixtures("blueprint_installed")
async def test_remote_event_entity_clears_on_the_chosen_press_only(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    kitchen: str,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A remote's long press resets; its short press and reconnecting do not."""
    remote = RemoteButton()

    async def async_setup_platform(
        hass: HomeAssistant,
        config: dict[str, Any],
        async_add_entities: AddEntitiesCallback,
        discovery_info: Any = None,
    ) -> None:
        async_add_entities([remote])

    mock_platform(
        hass, "remote_test.event", MockPlatform(async_setup_platform=async_setup_platform)
    )
    assert await async_setup_component(hass, "event", {"event": [{"platform": "remote_test"}]})
    await hass.async_block_till_done()
    await create_automation(
        hass,
        reset_button="event.remote_button",
        satellite=kitchen,
        event_types=["long_press"],
    )
    cleared = async_capture_events(hass, EVENT_SESSION_CLEARED)

    remote.press("short_press")
    await hass.async_block_till_done()
    assert cleared == []
    assert hass.states.get(KITCHEN_SENSOR).state == "active"

    # The state is the press time in milliseconds: two presses within one would be one change.
    freezer.tick(timedelta(seconds=1))
    remote.press("long_press")
    await hass.async_block_till_done()
    assert [event.data["device_id"] for event in cleared] == [kitchen]
    assert hass.states.get(KITCHEN_SENSOR).state == "idle"

    # Reconnecting shows the last press again (a long one): that is not a new press.
    await converse(hass, device_id=kitchen)
    remote.set_available(False)
    remote.set_available(True)
    await hass.async_block_till_done()
    assert len(cleared) == 1
    assert hass.states.get(KITCHEN_SENSOR).state == "active"
