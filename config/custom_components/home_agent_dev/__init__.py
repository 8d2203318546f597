"""Dev instance only: create a Home Agent agent on first start and make Assist use it.

Configured by environment variables read by scripts/develop:
HOME_AGENT_BASE_URL (+ HOME_AGENT_MODEL, HOME_AGENT_API_KEY) selects the OpenAI-compatible
backend; without them the agent delegates to the built-in Assist agent.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from homeassistant.components.assist_pipeline import async_get_pipeline, async_update_pipeline
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.typing import ConfigType

_LOGGER = logging.getLogger(__name__)
DOMAIN = "home_agent_dev"
AGENT_DOMAIN = "home_agent"


def _answers() -> dict[str, Any]:
    """Return the values to give the config flow, by field name."""
    if base_url := os.environ.get("HOME_AGENT_BASE_URL"):
        answers: dict[str, Any] = {
            "name": "Home Agent",
            "backend": "openai",
            "base_url": base_url,
            "api_key": os.environ.get("HOME_AGENT_API_KEY", ""),
        }
        if model := os.environ.get("HOME_AGENT_MODEL"):
            answers["model"] = model
        return answers
    return {
        "name": "Home Agent",
        "backend": "agent",
        "agent_id": "conversation.home_assistant",
    }


async def _async_create_agent(hass: HomeAssistant) -> None:
    """Walk the real config flow, step by step, with the answers that fit each form."""
    answers = _answers()
    result = await hass.config_entries.flow.async_init(
        AGENT_DOMAIN, context={"source": SOURCE_USER}
    )
    for _ in range(10):
        if result["type"] is not FlowResultType.FORM:
            break
        if result.get("errors"):
            _LOGGER.error("Home Agent set-up stopped at %s: %s", result["step_id"], result)
            return
        schema = result["data_schema"]
        fields = {str(key) for key in schema.schema} if schema is not None else set()
        user_input = {key: value for key, value in answers.items() if key in fields}
        result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    if result["type"] is not FlowResultType.CREATE_ENTRY:
        _LOGGER.error("Home Agent set-up ended with %s", result)
        return
    _LOGGER.info("Created the Home Agent agent %s", result["title"])


async def _async_use_agent_in_assist(hass: HomeAssistant) -> None:
    """Make the preferred voice assistant answer with Home Agent."""
    registry = er.async_get(hass)
    agents = [
        entry.entity_id
        for entry in registry.entities.values()
        if entry.platform == AGENT_DOMAIN and entry.domain == "conversation"
    ]
    if not agents:
        return
    pipeline = async_get_pipeline(hass)
    if pipeline.conversation_engine != agents[0]:
        await async_update_pipeline(hass, pipeline, conversation_engine=agents[0])
        _LOGGER.info("Assist pipeline %s now answers with %s", pipeline.name, agents[0])


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set things up once Home Assistant has started."""

    async def _at_started(hass: HomeAssistant) -> None:
        if not hass.config_entries.async_entries(AGENT_DOMAIN):
            await _async_create_agent(hass)
            await hass.async_block_till_done()
        await _async_use_agent_in_assist(hass)

    async_at_started(hass, _at_started)
    return True
