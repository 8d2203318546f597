"""Home Agent's own files: the envelope `{"version": n, "data": {...}}`, read and written.

Both stores (an agent's sessions, the household's notes) write their data in it; reading
one says why a file cannot be used, never what it holds. Both write all or nothing with
`write_atomic`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import suppress
import glob
import os
from pathlib import Path
import tempfile
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


def write_atomic(path: Path, lines: Iterable[bytes]) -> None:
    """Write a private file all or nothing, each chunk a line; raise OSError on failure.

    The lines go to a temporary file beside it (see `temporary_files`), which is fsynced and
    renamed into place; the directory is fsynced too, so the rename survives a power loss.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            for line in lines:
                file.write(line if line.endswith(b"\n") else line + b"\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def temporary_files(path: Path) -> Iterator[Path]:
    """Yield the temporary files that saves of `path` (and of files named after it) left."""
    return path.parent.glob(f"{glob.escape(path.name)}.*.tmp")
