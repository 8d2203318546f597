"""Diagnostics: the configuration (secrets redacted), session summaries and note counts.

No text, no ids: nothing anyone said, no note, no conversation or user id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from .const import CONF_API_KEY, CONF_BASE_URL, CONF_PROMPT, DOMAIN
from .data import HomeAgentConfigEntry
from .keys import key_parts
from .redact import redact_url

# The prompt can describe the household; the API key is a secret.
TO_REDACT = {CONF_API_KEY, CONF_PROMPT}


def _redacted(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return settings without secrets; an address keeps its host, not its credentials."""
    redacted: dict[str, Any] = async_redact_data(settings, TO_REDACT)
    if isinstance(url := redacted.get(CONF_BASE_URL), str):
        redacted[CONF_BASE_URL] = redact_url(url)
    return redacted


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HomeAgentConfigEntry
) -> dict[str, Any]:
    """Return what helps with a bug report, without what anyone said."""
    integration = await async_get_integration(hass, DOMAIN)
    tracker = entry.runtime_data.tracker
    sessions = tracker.sessions
    return {
        "home_assistant_version": HA_VERSION,
        "integration_version": str(integration.version),
        "entry": {
            "title": entry.title,
            "data": _redacted(entry.data),
            "options": _redacted(entry.options),
        },
        "agent_id": tracker.agent_id,
        "settings": {
            "session_scope": str(tracker.scope),
            "session_timeout": tracker.timeout.total_seconds(),
            "history_max_turns": tracker.max_turns,
        },
        "active_sessions": len(sessions),
        "sessions": [
            {
                # What the session belongs to, by kind: no conversation or user id (on
                # some releases any signed-in user may download diagnostics).
                "belongs_to": "|".join(key_parts(session.session_key)) or None,
                "device_id": session.device_id,
                "satellite_id": session.satellite_id,
                "started_at": session.started_at.isoformat(),
                "last_activity": session.last_activity.isoformat(),
                "expires_at": session.expires_at.isoformat(),
                "turns": session.turns,
                "remembered_turns": len(session.transcript),
                "tool_calls_remembered": sum(
                    len(round_.calls)
                    for exchange in session.transcript
                    for round_ in exchange.rounds
                ),
                "local_turns_remembered": sum(e.local for e in session.transcript),
                # Whether there is a summary, and how much waits for it; never its text.
                "has_summary": session.summary is not None,
                "waiting_for_summary": len(session.summary_pending),
            }
            for session in sessions
        ],
        "last_turn": dataclasses.asdict(entry.runtime_data.metrics.last),
        "storage": {
            "save_pending": tracker.store.save_pending,
            "writes": tracker.store.writes,
        },
        "memory": _memory(entry),
    }


def _memory(entry: HomeAgentConfigEntry) -> dict[str, Any] | None:
    """Return counts of the household's notes: never a note's text nor whose it is."""
    if (notes := entry.runtime_data.notes) is None:
        return None
    notebook = notes.notebook
    current = [note for note in notebook.notes.values() if note.active]
    return {
        "prompt_tokens": notes.budget,
        "notes": len(current),
        "household_notes": sum(1 for note in current if note.person is None),
        "rules": sum(1 for note in current if note.rule),
        "earlier_versions": len(notebook.notes) - len(current),
        "by_origin": dict(Counter(str(note.origin) for note in current)),
        "session_frames": sum(1 for key in notebook.frames if key[0] == entry.entry_id),
        "pending_extractions": sum(
            1 for pending in notebook.pending.values() if pending.entry_id == entry.entry_id
        ),
        "storage": {"save_pending": notebook.store.save_pending, "writes": notebook.store.writes},
    }
