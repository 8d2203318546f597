"""Diagnostics as downloaded from the integration page: useful, and nothing anyone said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_PROMPT,
)

from .helpers import converse, make_device, session_of

MANIFEST = Path(__file__).parent.parent / "custom_components" / "home_agent" / "manifest.json"
API_KEY = "sk-live-0123456789abcdef"
PROMPT = "You help Anna, who lives at 12 Elm Street with her cat Mochi."
# Understood by the built-in agent, so the turn is remembered in the transcript.
SAID = "what is the date today"


@pytest.fixture
def agent_data() -> dict[str, Any]:
    """Return an agent switched from an endpoint to delegation (old key and prompt kept)."""
    return {
        CONF_BACKEND: "agent",
        CONF_AGENT_ID: "conversation.home_assistant",
        CONF_API_KEY: API_KEY,
        CONF_PROMPT: PROMPT,
    }


async def test_diagnostics_redact_secrets_and_leave_out_transcripts(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_admin_user: MockUser,
) -> None:
    """Versions, settings and session summaries; no key, prompt, transcript text or id."""
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text=SAID, device_id=kitchen)
    await converse(hass, text=SAID, device_id=kitchen)
    await converse(hass, text=SAID, device_id=make_device(hass, "Bedroom satellite"))
    admins = await converse(hass, text=SAID, user_id=hass_admin_user.id)
    kitchen_session = session_of(setup_integration, first.conversation_id)
    answer = kitchen_session.transcript[0].assistant
    assert answer

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, setup_integration)

    dump = json.dumps(diagnostics)
    for private in (API_KEY, "Mochi", SAID, answer):
        assert private not in dump
    assert diagnostics["home_assistant_version"] == HA_VERSION
    assert diagnostics["integration_version"] == json.loads(MANIFEST.read_text())["version"]
    assert diagnostics["entry"]["data"] == {
        CONF_BACKEND: "agent",
        CONF_AGENT_ID: "conversation.home_assistant",
        CONF_API_KEY: "**REDACTED**",
        CONF_PROMPT: "**REDACTED**",
    }
    assert diagnostics["entry"]["options"] == dict(setup_integration.options)
    assert diagnostics["agent_id"] == "conversation.home_agent"
    assert diagnostics["settings"] == {
        "session_scope": "device",
        "session_timeout": 3600.0,
        "history_max_turns": 10,
    }
    assert diagnostics["active_sessions"] == 3
    kitchen_summary = next(s for s in diagnostics["sessions"] if s["device_id"] == kitchen)
    for private in (first.conversation_id, admins.conversation_id, hass_admin_user.id):
        assert private not in dump
    assert kitchen_summary == {
        "belongs_to": "device",
        "device_id": kitchen,
        "satellite_id": None,
        "started_at": kitchen_session.started_at.isoformat(),
        "last_activity": kitchen_session.last_activity.isoformat(),
        "expires_at": kitchen_session.expires_at.isoformat(),
        "turns": kitchen_session.turns,
        "remembered_turns": 2,
        # What the built-in agent did is remembered as tool calls on newer releases.
        "tool_calls_remembered": sum(
            len(round_.calls) for e in kitchen_session.transcript for round_ in e.rounds
        ),
        "local_turns_remembered": 0,
        "has_summary": False,
        "waiting_for_summary": 0,
    }
    # The last turn's cost, never its words.
    assert set(diagnostics["last_turn"]) == {
        "first_text",
        "reply",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
    }
    assert set(diagnostics["storage"]) == {"save_pending", "writes"}
    assert diagnostics["storage"]["save_pending"] is True
