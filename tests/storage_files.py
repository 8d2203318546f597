"""The agent's storage files as they are on disk: seed them, read them back."""

from __future__ import annotations

from collections.abc import Callable
import errno
import json
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant

from custom_components.home_agent.const import DOMAIN


def index_path(hass: HomeAssistant, entry_id: str) -> Path:
    """Return the index file of an agent (the whole storage in version 1)."""
    return Path(hass.config.path(".storage", f"{DOMAIN}.{entry_id}"))


def transcripts_path(hass: HomeAssistant, entry_id: str) -> Path:
    """Return the transcripts file of an agent."""
    return Path(f"{index_path(hass, entry_id)}.transcripts")


def v1_record(
    conversation_id: str, key: str, last_activity: str, transcript: list[list[Any]]
) -> dict[str, Any]:
    """Return a session record as storage version 1 (the release before) wrote it."""
    return {
        "conversation_id": conversation_id,
        "session_key": key,
        "device_id": key.removeprefix("device:"),
        "satellite_id": None,
        "user_id": None,
        "started_at": last_activity,
        "last_activity": last_activity,
        "expires_at": last_activity,
        "turns": len(transcript),
        "transcript": transcript,
    }


def write_v1(hass: HomeAssistant, entry_id: str, sessions: list[Any]) -> Path:
    """Write a storage version 1 file, as the release before wrote it."""
    path = index_path(hass, entry_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = f"{DOMAIN}.{entry_id}"
    path.write_text(
        json.dumps(
            {"version": 1, "minor_version": 1, "key": key, "data": {"sessions": sessions}},
            indent=4,
        )
    )
    return path


def stored_sessions(hass: HomeAssistant, entry_id: str) -> list[dict[str, Any]]:
    """Return the stored sessions, each with its stored transcript, in index order."""
    index = json.loads(index_path(hass, entry_id).read_text())
    assert index["version"] == 2
    lines = transcripts_path(hass, entry_id).read_text().splitlines()
    assert json.loads(lines[0])["generation"] == index["data"]["generation"]
    transcripts = {item[0]: item for item in map(json.loads, lines[1:])}
    names = ("conversation_id", "session_key", "device_id", "satellite_id", "user_id")
    names += ("started_at", "last_activity", "turns")
    sessions = []
    for row in index["data"]["sessions"]:
        # Everyone who took part follows, unless it is just the session's user.
        session = dict(zip((*names, "participants"), row, strict=False))
        _, session["summary"], session["transcript"] = transcripts[row[0]]
        sessions.append(session)
    return sessions


def stored_text(hass: HomeAssistant, entry_id: str) -> str:
    """Return everything the agent has on disk, as text."""
    return "".join(
        path.read_text(errors="replace")
        for path in (index_path(hass, entry_id), transcripts_path(hass, entry_id))
        if path.exists()
    )


class FullDiskOnce:
    """A file replace that fails once as on a full disk, then replaces as `replace` does.

    Patched in for the replace a save ends with; `failures` counts the refusals.
    """

    def __init__(self, replace: Callable[[str, str], None]) -> None:
        """Fail the first call; pass the later ones on to `replace`."""
        self._replace = replace
        self.failures = 0

    def __call__(self, source: str, destination: str) -> None:
        """Refuse with ENOSPC the first time, then replace."""
        if self.failures == 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self._replace(source, destination)
