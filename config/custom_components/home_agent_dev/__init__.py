"""Dev instance only: create a Home Agent agent on first start and make Assist use it.

Configured by environment variables read by scripts/develop:
HOME_AGENT_BASE_URL (+ HOME_AGENT_MODEL, HOME_AGENT_API_KEY) selects the OpenAI-compatible
backend; without them the agent delegates to the built-in Assist agent. HOME_AGENT_NAME
names the agent (scripts/develop --local-model: "Home Agent (local model)").

Each kind of agent has its own name, so a run with a model server never silently reuses
the delegating agent of an earlier run (nor the other way round): the agent with the
expected name is created when missing, pointed at the server's current address when that
moved (the local model server takes a free port each run), and made the conversation
agent of the preferred voice assistant.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from homeassistant.components.assist_pipeline import async_update_pipeline
from homeassistant.components.assist_pipeline.pipeline import async_get_pipeline
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigFlowResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.typing import ConfigType

_LOGGER = logging.getLogger(__name__)
DOMAIN = "home_agent_dev"
AGENT_DOMAIN = "home_agent"
DELEGATE_NAME = "Home Agent"
SERVER_NAME = "Home Agent (model server)"


def _answers() -> dict[str, Any]:
    """Return the values to give the config flow, by field name."""
    if base_url := os.environ.get("HOME_AGENT_BASE_URL"):
        answers: dict[str, Any] = {
            "name": os.environ.get("HOME_AGENT_NAME") or SERVER_NAME,
            "backend": "openai",
            "base_url": base_url,
            "api_key": os.environ.get("HOME_AGENT_API_KEY", ""),
        }
        if model := os.environ.get("HOME_AGENT_MODEL"):
            answers["model"] = model
        # HOME_AGENT_LLM_API: comma-separated LLM APIs ("" for a chat-only agent).
        if (apis := os.environ.get("HOME_AGENT_LLM_API")) is not None:
            answers["llm_hass_api"] = [api for api in apis.split(",") if api]
        if temperature := os.environ.get("HOME_AGENT_TEMPERATURE"):
            answers["temperature"] = float(temperature)
        return answers
    return {
        "name": os.environ.get("HOME_AGENT_NAME") or DELEGATE_NAME,
        "backend": "agent",
        "agent_id": "conversation.home_assistant",
    }


async def _async_walk(
    hass: HomeAssistant, result: ConfigFlowResult, answers: dict[str, Any]
) -> ConfigFlowResult:
    """Answer a flow's forms, step by step, with the answers that fit each form."""
    flows = hass.config_entries.flow
    for _ in range(10):
        if result["type"] is not FlowResultType.FORM:
            break
        if result.get("errors"):
            _LOGGER.error("Home Agent set-up stopped at %s: %s", result["step_id"], result)
            return result
        schema = result["data_schema"]
        fields = {str(key) for key in schema.schema} if schema is not None else set()
        user_input = {key: value for key, value in answers.items() if key in fields}
        result = await flows.async_configure(result["flow_id"], user_input)
    return result


async def _async_create_agent(hass: HomeAssistant, answers: dict[str, Any]) -> None:
    """Walk the real config flow with the answers."""
    result = await hass.config_entries.flow.async_init(
        AGENT_DOMAIN, context={"source": SOURCE_USER}
    )
    result = await _async_walk(hass, result, answers)
    if result["type"] is not FlowResultType.CREATE_ENTRY:
        _LOGGER.error("Home Agent set-up ended with %s", result)
        return
    _LOGGER.info("Created the Home Agent agent %s", result["title"])


async def _async_move_server(
    hass: HomeAssistant, entry: ConfigEntry, answers: dict[str, Any]
) -> None:
    """Point an agent at the server's current address through the real reconfigure flow."""
    result = await hass.config_entries.flow.async_init(
        AGENT_DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )
    result = await _async_walk(hass, result, answers)
    if result.get("reason") != "reconfigure_successful":
        _LOGGER.error("Moving %s to %s ended with %s", entry.title, answers["base_url"], result)
        return
    _LOGGER.info("%s now asks %s", entry.title, answers["base_url"])


def _agent_entity(hass: HomeAssistant, entry: ConfigEntry) -> str | None:
    """Return the conversation entity of an agent."""
    registry = er.async_get(hass)
    return next(
        (
            item.entity_id
            for item in er.async_entries_for_config_entry(registry, entry.entry_id)
            if item.domain == "conversation"
        ),
        None,
    )


async def _async_use_agent_in_assist(hass: HomeAssistant, agent: str, name: str) -> None:
    """Make the preferred voice assistant answer with an agent, and name it after the agent.

    The Assist dialog shows the assistant's name, so it says who answers.
    """
    pipeline = async_get_pipeline(hass)
    if pipeline.conversation_engine != agent or pipeline.name != name:
        await async_update_pipeline(hass, pipeline, conversation_engine=agent, name=name)
        _LOGGER.info("Assist pipeline %s now answers with %s", name, agent)


def _named(hass: HomeAssistant, name: str) -> ConfigEntry | None:
    """Return the agent with a name, if there is one."""
    return next(
        (entry for entry in hass.config_entries.async_entries(AGENT_DOMAIN) if entry.title == name),
        None,
    )


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set things up once Home Assistant has started."""

    async def _at_started(hass: HomeAssistant) -> None:
        answers = _answers()
        entry = _named(hass, answers["name"])
        if entry is None:
            await _async_create_agent(hass, answers)
        elif "base_url" in answers and entry.data.get("base_url") != answers["base_url"]:
            await _async_move_server(hass, entry, answers)
        # The flow has set the agent up (or scheduled its reload): its entity is registered.
        # Nothing waits for Home Assistant to be idle, which a stuck integration would prevent.
        entry = _named(hass, answers["name"])
        if entry is not None and (agent := _agent_entity(hass, entry)) is not None:
            await _async_use_agent_in_assist(hass, agent, entry.title)

    async_at_started(hass, _at_started)
    return True
