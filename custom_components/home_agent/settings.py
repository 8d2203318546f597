"""An agent's effective settings: defaults, then data, then options — typed, stated once.

`AgentSettings` is built once when an agent is set up; the flows work on the raw mapping
(`entry_settings`), which forms are filled from. Every default is in DEFAULTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm

from .const import (
    CONF_AGENT_ID,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_HISTORY_MAX_TOKENS,
    CONF_HISTORY_MAX_TURNS,
    CONF_HISTORY_SUMMARY,
    CONF_LLM_HASS_API,
    CONF_MAX_TOKENS,
    CONF_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS,
    CONF_MODEL,
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
    """Return every setting of an entry by its key, defaults filled in (for the flows)."""
    return {**DEFAULTS, **entry.data, **entry.options}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSettings:
    """What an agent was set up with."""

    backend: Backend
    # Backend `openai`.
    base_url: str
    api_key: str | None
    model: str | None
    prompt: str
    # The Home Assistant LLM APIs the user chose for the model's tools.
    llm_apis: tuple[str, ...]
    temperature: float
    max_tokens: int
    history_max_tokens: int
    history_summary: bool
    warm_up: bool
    # Backend `agent`.
    agent_id: str
    # Sessions.
    session_timeout: timedelta
    session_scope: SessionScope
    history_max_turns: int
    # Household memory.
    memory: bool
    memory_prompt_tokens: int

    @classmethod
    def of(cls, entry: ConfigEntry) -> AgentSettings:
        """Return an entry's settings."""
        return cls.of_mapping(entry_settings(entry))

    @classmethod
    def of_mapping(cls, settings: Mapping[str, Any]) -> AgentSettings:
        """Return the settings of a mapping by key (defaults filled in)."""
        return cls(
            backend=Backend(settings[CONF_BACKEND]),
            base_url=str(settings[CONF_BASE_URL]),
            api_key=settings.get(CONF_API_KEY) or None,
            model=settings.get(CONF_MODEL) or None,
            prompt=str(settings[CONF_PROMPT]),
            llm_apis=tuple(llm_api_ids(settings)),
            temperature=float(settings[CONF_TEMPERATURE]),
            max_tokens=int(settings[CONF_MAX_TOKENS]),
            history_max_tokens=int(settings[CONF_HISTORY_MAX_TOKENS]),
            history_summary=bool(settings[CONF_HISTORY_SUMMARY]),
            warm_up=warm_up(settings),
            agent_id=str(settings[CONF_AGENT_ID]),
            session_timeout=timedelta(seconds=int(settings[CONF_SESSION_TIMEOUT])),
            session_scope=SessionScope(settings[CONF_SESSION_SCOPE]),
            history_max_turns=int(settings[CONF_HISTORY_MAX_TURNS]),
            memory=bool(settings[CONF_MEMORY]),
            memory_prompt_tokens=int(settings[CONF_MEMORY_PROMPT_TOKENS]),
        )

    @property
    def uses_model(self) -> bool:
        """Tell whether the agent asks a model of its own (backend `openai`)."""
        return self.backend is Backend.OPENAI

    @property
    def summarize(self) -> bool:
        """Tell whether exchanges that leave the history join a running summary."""
        return self.uses_model and self.history_summary

    @property
    def model_apis(self) -> list[str]:
        """Return the LLM APIs whose tools the model gets: the chosen ones, and memory if on."""
        apis = list(self.llm_apis)
        if self.memory and MEMORY_API_ID not in apis:
            apis.append(MEMORY_API_ID)
        return apis


def warm_up(settings: Mapping[str, Any]) -> bool:
    """Tell whether the model is warmed up while a satellite listens (see warmup.py)."""
    if (chosen := settings.get(CONF_WARM_UP)) is not None:
        return bool(chosen)
    return is_local_address(str(settings.get(CONF_BASE_URL) or ""))


def llm_api_ids(settings: Mapping[str, Any]) -> list[str]:
    """Return the Home Assistant LLM APIs whose tools the model may use."""
    value = settings.get(CONF_LLM_HASS_API) or []
    return [value] if isinstance(value, str) else list(value)


def memory_entry_ids(hass: HomeAssistant) -> set[str]:
    """Return the agents that have memory on (loaded or not)."""
    return {
        entry.entry_id
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry_settings(entry)[CONF_MEMORY]
    }
