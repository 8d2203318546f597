"""Persistence of an agent's sessions: restored at start-up, saved debounced, damage reported.

The files and their format are disk_format.py's; this module decides when they are read
and written. A restore is two steps: the small index first (the tracker arms the expiry
timers of the sessions it gets), then, in the background, the transcripts, each attached
to the very session restored from its index row (never to a session started since that
happens to have the same id). No save is written before the transcripts are attached: it
would leave out what was not read yet.

A store never writes over a file it has not wholly read. Whatever could not be read is
left out of the restore, and the file is copied aside untouched (`<file>.unreadable.<time>`)
before anything is written, with one repair issue naming every copy and why (never a
stored value). A damaged index (not JSON, an unreadable row, a newer storage version, or
missing next to a transcripts file) costs no transcript: the sessions whose rows can be
read are restored with their transcripts, and the transcripts file is copied aside with
the index, since it holds what the other sessions said and the next save drops it. A
file that cannot be copied aside is the only copy: nothing is written until Home
Assistant restarts.

Shutting down waits for a save in progress, so that removing the agent (which deletes
every file it made: both files, copies kept aside, temporary files) never races one.

The files are written here rather than through `Store`, which logs a failed write instead
of reporting it: a clear must know whether the transcript left the disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from homeassistant.core import (
    DOMAIN as HOMEASSISTANT_DOMAIN,
    HomeAssistant,
    callback,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .disk_format import (
    StoredSession,
    StoredTranscripts,
    copy_aside,
    parse_lines,
    read_index,
    read_lines,
    remove_files,
    snapshot,
    transcripts_path,
    write_files,
)
from .saving import DelayedSave, problems_summary
from .session import Session

# Transcript lines parsed, and sessions given their transcript, per event-loop iteration
# at start-up: a start-up with thousands of sessions never holds the loop for long.
PARSE_CHUNK = 200
ATTACH_CHUNK = 250
ISSUE_UNREADABLE = "storage_unreadable"
ISSUE_NOT_KEPT = "storage_unreadable_not_kept"


@dataclass(slots=True)
class Restored:
    """The sessions read from the index, for the tracker to take over."""

    live: list[StoredSession]
    # Sessions whose time ran out while Home Assistant was stopped.
    ran_out: list[StoredSession]
    duplicates: int
    # What is on disk differs from what was restored: write it again soon.
    rewrite: bool


class SessionStore:
    """Load and save one agent's sessions, coalescing writes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        sessions: Callable[[], Iterable[Session]],
    ) -> None:
        """Prepare the store; `sessions` returns the sessions a save writes."""
        self._hass = hass
        self._entry_id = entry_id
        self._sessions = sessions
        self._key = f"{DOMAIN}.{entry_id}"
        self._path = Path(hass.config.path(".storage", self._key))
        self._saving = DelayedSave(hass, "Home Agent sessions", self._async_write)
        # The restored sessions still waiting for their transcripts, and the task that
        # reads them (writes wait for it).
        self._unattached: list[StoredSession] = []
        self._transcripts_task: asyncio.Task[None] | None = None
        self._max_turns = 1
        self._generation = 0
        # File -> its copy kept aside in this run, and why files were kept aside.
        self._kept: dict[str, str] = {}
        self._reasons: list[str] = []
        # Set when an unreadable file could not be copied aside: it is the only copy, so
        # nothing is written over it until Home Assistant restarts (the repair says so).
        self._suspended = False

    @property
    def path(self) -> str:
        """Return the index file."""
        return str(self._path)

    @property
    def transcripts_path(self) -> str:
        """Return the transcripts file."""
        return str(transcripts_path(self._path))

    # --- loading ----------------------------------------------------------

    async def async_restore(self, session_timeout: timedelta, max_turns: int) -> Restored:
        """Read the index (in the executor); report what cannot be read.

        The transcripts follow with `async_read_transcripts`, once the caller has taken
        the sessions over.
        """
        self._max_turns = max_turns
        now = dt_util.utcnow()
        index = await self._hass.async_add_executor_job(
            read_index, self._path, now, session_timeout, max_turns
        )
        self._generation = index.generation
        # The transcripts of sessions whose rows could not be read would be gone with the
        # next save: the transcripts file is kept aside with the index.
        await self._async_report_damage(
            index.unreadable, index.problems, self.path, self.transcripts_path
        )
        live, ran_out = index.live, index.ran_out
        if not index.transcripts_inline:
            self._unattached = live
        if index.index_stale:
            # The last index write failed after its transcripts were written: sessions the
            # newer transcripts file no longer lists were cleared or expired since.
            stored = await self._async_load_transcripts()
            live = [s for s in live if s.conversation_id in stored.by_id]
            ran_out = [s for s in ran_out if s.conversation_id in stored.by_id]
            self._unattached = live
            await self._async_attach(stored)
        # A damaged file is written anew once it is kept aside, so that the next start
        # does not report (and copy) it again.
        rewrite = bool(
            index.unreadable
            or index.problems
            or ran_out
            or index.duplicates
            or index.transcripts_inline
        )
        return Restored(live, ran_out, index.duplicates, rewrite)

    @callback
    def async_read_transcripts(self) -> None:
        """Read the transcripts in the background; no save is written before they are in."""
        if self._unattached:
            self._transcripts_task = self._hass.async_create_background_task(
                self._async_read_and_attach(), f"{DOMAIN} transcripts {self._entry_id}"
            )

    async def async_transcripts_loaded(self) -> None:
        """Wait until the stored transcripts are attached (at once after start-up)."""
        if (task := self._transcripts_task) is not None and not task.done():
            await asyncio.wait([task])

    async def _async_read_and_attach(self) -> None:
        """Read the transcripts file and give each restored session its own."""
        await self._async_attach(await self._async_load_transcripts())

    async def _async_load_transcripts(self) -> StoredTranscripts:
        """Read the transcripts file (in the executor); report what cannot be read."""
        stored = StoredTranscripts()
        # Only the file is read in the executor; its lines are parsed here, a few at a
        # time, so no thread holds the interpreter (and the event loop) for long.
        lines = await self._hass.async_add_executor_job(
            read_lines, transcripts_path(self._path), stored
        )
        for start in range(0, len(lines), PARSE_CHUNK):
            parse_lines(lines, start, min(start + PARSE_CHUNK, len(lines)), self._max_turns, stored)
            await asyncio.sleep(0)
        await self._async_report_damage(stored.unreadable, stored.problems, self.transcripts_path)
        return stored

    async def _async_attach(self, stored: StoredTranscripts) -> None:
        """Put stored transcripts in front of what the restored sessions recorded since."""
        sessions, self._unattached = self._unattached, []
        by_id = stored.by_id
        for number, session in enumerate(sessions, 1):
            if number % ATTACH_CHUNK == 0:
                await asyncio.sleep(0)
            if (line := by_id.get(session.conversation_id)) is not None:
                session.attach(*line)
        if stored.problems or stored.unreadable:
            self.async_schedule_save()

    async def _async_report_damage(
        self, unreadable: str | None, problems: list[str], *paths: str
    ) -> None:
        """Keep the files aside if a file (or some of its records) could not be read."""
        if unreadable is not None:
            await self._async_keep_aside(unreadable, paths)
        elif problems:
            await self._async_keep_aside(problems_summary(problems), paths)

    async def _async_keep_aside(self, reason: str, paths: tuple[str, ...]) -> None:
        """Copy files that were not wholly read aside, untouched, and raise a repair issue.

        The next save writes over both files, so each is copied first; a file that
        cannot be copied is the only copy of what it holds, and nothing is written over
        it. `reason` says what and where, never a stored value (they are what people
        said). One repair tells everything kept aside in this run.
        """
        stamp = dt_util.utcnow().strftime("%Y%m%dT%H%M%S")
        for path in paths:
            if path in self._kept:
                continue  # copied earlier in this run, and not written since
            backup = f"{path}.unreadable.{stamp}"
            try:
                if await self._hass.async_add_executor_job(copy_aside, path, backup):
                    self._kept[path] = backup
            except OSError as err:
                self._suspended = True
                error = err.strerror or type(err).__name__
                LOGGER.error(
                    "Could not read Home Agent sessions from %s (%s) nor copy %s aside "
                    "(%s); nothing is saved over it until Home Assistant restarts",
                    paths[0],
                    reason,
                    path,
                    error,
                )
                self._report(ISSUE_NOT_KEPT, {"path": path, "reason": reason, "error": error})
                return
        LOGGER.error(
            "Could not read Home Agent sessions from %s (%s); started without what could "
            "not be read. Copied aside as they were: %s",
            paths[0],
            reason,
            ", ".join(self._kept[path] for path in paths if path in self._kept),
        )
        self._reasons.append(reason)
        self._report(
            ISSUE_UNREADABLE,
            {
                "path": " and ".join(f"`{backup}`" for backup in self._kept.values()),
                "reason": "; ".join(self._reasons),
            },
        )

    def _report(self, translation_key: str, placeholders: dict[str, str]) -> None:
        """Raise the agent's repair issue about its unreadable storage."""
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            _unreadable_issue_id(self._entry_id),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=translation_key,
            translation_placeholders=placeholders,
        )

    # --- saving -----------------------------------------------------------

    @callback
    def async_schedule_save(self) -> None:
        """Write the current data within the save delay (once per burst of changes).

        Nothing is scheduled after shutdown: a reloaded agent owns the file by then.
        """
        self._saving.async_schedule()

    @property
    def save_pending(self) -> bool:
        """Return whether changes wait to be written."""
        return self._saving.pending

    @property
    def writes(self) -> int:
        """Return how many saves reached the disk."""
        return self._saving.writes

    async def async_flush(self) -> bool:
        """Write now; on failure keep the data in memory, retry later and return False."""
        return await self._saving.async_flush()

    async def _async_write(self) -> None:
        """Write both files (once the transcripts are read); raise OSError on failure."""
        await self.async_transcripts_loaded()
        if self._suspended:
            return  # nothing of this run is on disk, so nothing is left there
        data = snapshot(self._sessions())
        generation = self._generation + 1
        await self._hass.async_add_executor_job(
            write_files, self._path, self._key, data, generation
        )
        self._generation = generation

    async def async_shutdown(self) -> None:
        """Write pending changes and wait for a save in progress; start no more timers.

        Once this returns nothing of this store writes again: removing the agent, or a
        reloaded one reading the files, never races a save.
        """
        await self.async_transcripts_loaded()
        await self._saving.async_shutdown()


async def async_remove_stored(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an agent's stored sessions and transcripts, and the repairs about them."""
    await hass.async_add_executor_job(
        remove_files, Path(hass.config.path(".storage", f"{DOMAIN}.{entry_id}"))
    )
    ir.async_delete_issue(hass, DOMAIN, _unreadable_issue_id(entry_id))
    # Store (which wrote the files before) reports a corrupt file as a core issue named
    # after its key and the time.
    corrupt = f"storage_corruption_{DOMAIN}.{entry_id}_"
    for domain, issue_id in list(ir.async_get(hass).issues):
        if domain == HOMEASSISTANT_DOMAIN and issue_id.startswith(corrupt):
            ir.async_delete_issue(hass, domain, issue_id)


def _unreadable_issue_id(entry_id: str) -> str:
    """Return the id of an agent's repair about its unreadable storage."""
    return f"storage_unreadable_{entry_id}"
