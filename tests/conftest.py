"""Shared fixtures: a real Home Assistant with Home Agent set up from a config entry."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
import logging
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    CONF_HISTORY_MAX_TURNS,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
)

from .fake_openai import FakeOpenAI
from .helpers import setup_entry

# pytest-homeassistant-custom-component sets SQLAlchemy's engine logger to INFO; the
# recorder thread used by the logbook tests would print every statement.
logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    enable_custom_integrations: None,
) -> Generator[None]:
    """Let Home Assistant load custom_components/home_agent in every test."""
    return


@pytest.fixture(autouse=True)
def private_config_dir(hass: HomeAssistant, tmp_path: Path) -> None:
    """Give each test its own configuration folder: the agents write real files there."""
    hass.config.config_dir = str(tmp_path)


@pytest.fixture
def agent_options() -> dict[str, Any]:
    """Options of the agent under test (override in a test module to change them)."""
    return {
        CONF_SESSION_TIMEOUT: 3600,
        CONF_SESSION_SCOPE: "device",
        CONF_HISTORY_MAX_TURNS: 10,
    }


@pytest.fixture
def agent_data() -> dict[str, Any]:
    """Return the agent's data: delegate to the built-in Assist agent."""
    return {CONF_BACKEND: "agent", CONF_AGENT_ID: "conversation.home_assistant"}


@pytest.fixture
def config_entry(
    hass: HomeAssistant, agent_data: dict[str, Any], agent_options: dict[str, Any]
) -> MockConfigEntry:
    """Return a Home Agent config entry added to Home Assistant (not yet set up)."""
    entry = MockConfigEntry(
        domain=DOMAIN, title="Home Agent", data=agent_data, options=agent_options
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def setup_integration(hass: HomeAssistant, config_entry: MockConfigEntry) -> MockConfigEntry:
    """Set up Home Assistant's conversation stack and the agent."""
    await setup_entry(hass, config_entry)
    return config_entry


@pytest.fixture
async def fake_openai(socket_enabled: None) -> AsyncGenerator[FakeOpenAI]:
    """Run a fake OpenAI-compatible server on 127.0.0.1 for the test, then close it."""
    async with FakeOpenAI() as server:
        yield server
