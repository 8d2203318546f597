"""Constants for Home Agent."""

from __future__ import annotations

from enum import StrEnum
import logging
from typing import Final

DOMAIN: Final = "home_agent"
# The person entities users are linked to (whose name, whose notes).
PERSON_DOMAIN: Final = "person"
LOGGER = logging.getLogger(__package__)

# Config entry keys (the same names in every flow step, see the public contract).
CONF_BACKEND: Final = "backend"
CONF_BASE_URL: Final = "base_url"
CONF_API_KEY: Final = "api_key"
CONF_MODEL: Final = "model"
CONF_PROMPT: Final = "prompt"
CONF_LLM_HASS_API: Final = "llm_hass_api"
CONF_AGENT_ID: Final = "agent_id"
CONF_TEMPERATURE: Final = "temperature"
CONF_MAX_TOKENS: Final = "max_tokens"
CONF_SESSION_TIMEOUT: Final = "session_timeout"
CONF_SESSION_SCOPE: Final = "session_scope"
CONF_HISTORY_MAX_TURNS: Final = "history_max_turns"


class Backend(StrEnum):
    """Where an agent's answers come from."""

    OPENAI = "openai"
    AGENT = "agent"


class SessionScope(StrEnum):
    """What one persistent conversation belongs to."""

    DEVICE = "device"
    USER = "user"
    DEVICE_USER = "device_user"
    NONE = "none"


DEFAULT_SESSION_TIMEOUT: Final = 3600
MIN_SESSION_TIMEOUT: Final = 60
MAX_SESSION_TIMEOUT: Final = 86400
DEFAULT_SESSION_SCOPE: Final = SessionScope.DEVICE
DEFAULT_HISTORY_MAX_TURNS: Final = 10
MIN_HISTORY_MAX_TURNS: Final = 1
MAX_HISTORY_MAX_TURNS: Final = 100

DEFAULT_BASE_URL: Final = "http://localhost:11434/v1"
DEFAULT_TEMPERATURE: Final = 0.7
DEFAULT_MAX_TOKENS: Final = 512
DEFAULT_AGENT_ID: Final = "conversation.home_assistant"

# Bus events (public contract).
EVENT_SESSION_STARTED: Final = "home_agent_session_started"
EVENT_SESSION_EXPIRED: Final = "home_agent_session_expired"
EVENT_SESSION_CLEARED: Final = "home_agent_session_cleared"

SERVICE_CLEAR_CONVERSATION: Final = "clear_conversation"

# How long changes may wait before they are written to disk.
SAVE_DELAY: Final = 10.0
# How long a failed write waits before it is tried again.
SAVE_RETRY_DELAY: Final = 60.0
STORAGE_VERSION: Final = 2
# Minor version 2: an index row may list the session's participants (readers of 1 ignore it).
STORAGE_MINOR_VERSION: Final = 2

# The longest tool result a transcript keeps (longer ones are cut with a marker).
TOOL_RESULT_MAX_CHARS: Final = 1024

# Seconds one turn may take in all (every model request and tool call, or the delegate's
# answer) before it is answered with an apology: a hanging model or delegate never blocks
# the device's later turns.
TURN_TIME_LIMIT: Final = 120.0

# Options of the long-conversation issue: a token budget for the history sent to the
# model, and a running summary of what left it.
CONF_HISTORY_MAX_TOKENS: Final = "history_max_tokens"
CONF_HISTORY_SUMMARY: Final = "history_summary"
# Fits a 4k-token model next to the Assist prompt, its tools and an answer.
DEFAULT_HISTORY_MAX_TOKENS: Final = 1536
MIN_HISTORY_MAX_TOKENS: Final = 256
MAX_HISTORY_MAX_TOKENS: Final = 131072
DEFAULT_HISTORY_SUMMARY: Final = True
# Seconds a session must be idle before its summary is brought up to date.
SUMMARY_IDLE_DELAY: Final = 30.0
# Waiting exchanges folded into the summary per request: a longer backlog (summaries
# that failed for a while, a quarter of a long history) is folded a chunk at a time,
# oldest first, and never dropped.
SUMMARY_CHUNK: Final = 20

# Warm the model up while the person is still talking (on by default for endpoints on this
# machine or the local network, off for others: a warm-up is a request that may be billed).
CONF_WARM_UP: Final = "warm_up"

# Household memory (off by default, per agent): notes kept across sessions.
CONF_MEMORY: Final = "memory"
CONF_MEMORY_PROMPT_TOKENS: Final = "memory_prompt_tokens"
DEFAULT_MEMORY: Final = False
DEFAULT_MEMORY_PROMPT_TOKENS: Final = 300
MIN_MEMORY_PROMPT_TOKENS: Final = 0
MAX_MEMORY_PROMPT_TOKENS: Final = 2000
# The LLM API through which models (Home Agent's and other agents') use the notes.
MEMORY_API_ID: Final = "home_agent_memory"
MEMORY_API_NAME: Final = "Home Agent memory"

EVENT_MEMORY_ADDED: Final = "home_agent_memory_added"
EVENT_MEMORY_UPDATED: Final = "home_agent_memory_updated"
EVENT_MEMORY_FORGOTTEN: Final = "home_agent_memory_forgotten"

SERVICE_REMEMBER: Final = "remember"
SERVICE_FORGET: Final = "forget"
SERVICE_LIST_MEMORIES: Final = "list_memories"
