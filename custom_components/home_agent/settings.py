"""An entry's effective settings: defaults, then data, then options."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm

from .const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_HISTORY_MAX_TOKENS,
    CONF_HISTORY_MAX_TURNS,
    CONF_HISTORY_SUMMARY,
    CONF_LLM_HASS_API,
    CONF_MAX_TOKENS,
    CONF_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS,
    CONF_PROMPT,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    CONF_TEMPERATURE,
    CONF_WARM_UP,
    DEFAULT_AGENT_ID,
    DEFAULT_BASE_URL,
    DEFAULT_HISTORY_MAX_TOKENS,
    DEFAULT_HISTORY_MAX_TURNS,
    DEFAULT_HISTORY_SUMMARY,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MEMORY,
    DEFAULT_MEMORY_PROMPT_TOKENS,
    DEFAULT_SESSION_SCOPE,
    DEFAULT_SESSION_TIMEOUT,
    DEFAULT_TEMPERATURE,
    DOMAIN,
    MEMORY_API_ID,
    Backend,
    SessionScope,
)
from .redact import is_local_address

DEFAULTS: Mapping[str, Any] = {
    CONF_BACKEND: Backend.AGENT,
    CONF_BASE_URL: DEFAULT_BASE_URL,
    CONF_AGENT_ID: DEFAULT_AGENT_ID,
    CONF_PROMPT: llm.DEFAULT_INSTRUCTIONS_PROMPT,
    CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
    CONF_TEMPERATURE: DEFAULT_TEMPERATURE,
    CONF_MAX_TOKENS: DEFAULT_MAX_TOKENS,
    CONF_SESSION_TIMEOUT: DEFAULT_SESSION_TIMEOUT,
    CONF_SESSION_SCOPE: DEFAULT_SESSION_SCOPE,
    CONF_HISTORY_MAX_TURNS: DEFAULT_HISTORY_MAX_TURNS,
    CONF_HISTORY_MAX_TOKENS: DEFAULT_HISTORY_MAX_TOKENS,
    CONF_HISTORY_SUMMARY: DEFAULT_HISTORY_SUMMARY,
    CONF_MEMORY: DEFAULT_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS: DEFAULT_MEMORY_PROMPT_TOKENS,
}


def entry_settings(entry: ConfigEntry) -> dict[str, Any]:
    """Return every setting of an entry, defaults filled in."""
    return {**DEFAULTS, **entry.data, **entry.options}


def session_timeout(settings: Mapping[str, Any]) -> timedelta:
    """Return the idle time after which a session ends."""
    return timedelta(seconds=int(settings[CONF_SESSION_TIMEOUT]))


def session_scope(settings: Mapping[str, Any]) -> SessionScope:
    """Return what a session belongs to."""
    return SessionScope(settings[CONF_SESSION_SCOPE])


def warm_up(settings: Mapping[str, Any]) -> bool:
    """Tell whether the model is warmed up while a satellite listens (see warmup.py)."""
    if (chosen := settings.get(CONF_WARM_UP)) is not None:
        return bool(chosen)
    return is_local_address(str(settings.get(CONF_BASE_URL) or ""))


def llm_api_ids(settings: Mapping[str, Any]) -> list[str]:
    """Return the Home Assistant LLM APIs whose tools the model may use."""
    value = settings.get(CONF_LLM_HASS_API) or []
    return [value] if isinstance(value, str) else list(value)


def model_api_ids(settings: Mapping[str, Any]) -> list[str]:
    """Return the LLM APIs whose tools the model gets: the chosen ones, and memory if on."""
    ids = llm_api_ids(settings)
    if settings[CONF_MEMORY] and MEMORY_API_ID not in ids:
        ids.append(MEMORY_API_ID)
    return ids


def memory_entry_ids(hass: HomeAssistant) -> set[str]:
    """Return the agents that have memory on (loaded or not)."""
    return {
        entry.entry_id
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry_settings(entry)[CONF_MEMORY]
    }
