"""The envelope of Home Agent's own files, `{"version": n, "data": {...}}`, read and checked.

Both stores (an agent's sessions, the household's notes) write their data in it; reading
one says why a file cannot be used, never what it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.util.json import json_loads


class Unreadable(ValueError):
    """A stored file or record cannot be read; the message says what and where, never a value."""


def read_envelope(path: Path, newest_version: int) -> tuple[int, dict[str, Any]] | None:
    """Return (version, data) of the file at `path`, or None when there is no file.

    Raise Unreadable when it cannot be read, is not JSON, has no data or no version, or was
    written by a newer Home Agent (a version above `newest_version`).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise Unreadable(f"the file could not be read ({reason})") from None
    try:
        envelope = json_loads(raw)
    except ValueError:
        raise Unreadable("the file is not valid JSON") from None
    if not isinstance(envelope, dict) or not isinstance(data := envelope.get("data"), dict):
        raise Unreadable("the file has no data")
    version = envelope.get("version")
    if type(version) is not int or version < 1:
        raise Unreadable("the file has no storage version")
    if version > newest_version:
        raise Unreadable(f"written by a newer Home Agent (storage version {version})")
    return version, data
