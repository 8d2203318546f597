"""On-disk persistence of an agent's sessions: one versioned Store, debounced writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
import shutil
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import (
    DOMAIN,
    LOGGER,
    SAVE_DELAY,
    SAVE_RETRY_DELAY,
    STORAGE_MINOR_VERSION,
    STORAGE_VERSION,
)

type StoredData = dict[str, Any]


class UnsupportedStorageError(HomeAssistantError):
    """The stored data was written by a newer Home Agent."""


class _VersionedStore(Store[StoredData]):
    """Store that refuses newer data and remembers whether its last write failed."""

    write_error: Exception | None = None

    async def _async_migrate_func(
        self, old_major_version: int, old_minor_version: int, old_data: StoredData
    ) -> StoredData:
        """Accept older minor versions; refuse data from a newer major version."""
        if old_major_version > STORAGE_VERSION:
            raise UnsupportedStorageError(
                f"version {old_major_version} is newer than {STORAGE_VERSION}"
            )
        return old_data

    async def _async_write_data(self, *args: Any) -> None:
        """Write as Store does, remembering a failure (Store itself only logs it)."""
        self.write_error = None
        try:
            await super()._async_write_data(*args)
        except Exception as err:
            self.write_error = err
            raise


class SessionStore:
    """Load and save one agent's sessions, coalescing writes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        snapshot: Callable[[], StoredData],
        delay: float = SAVE_DELAY,
    ) -> None:
        """Prepare the store; `snapshot` builds the data to write, in the loop."""
        self._hass = hass
        self._entry_id = entry_id
        self._snapshot = snapshot
        self._delay = delay
        self._store = _VersionedStore(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.{entry_id}",
            minor_version=STORAGE_MINOR_VERSION,
            private=True,
            atomic_writes=True,
        )
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_final_write: CALLBACK_TYPE | None = None
        self._flush_job = HassJob(self._async_timer_flush, "home_agent_save")
        self.writes = 0
        self._closed = False

    @property
    def path(self) -> str:
        """Return the file the sessions live in."""
        return str(self._store.path)

    async def async_load(self) -> StoredData | None:
        """Return the stored data; None (reported) when it cannot be read."""
        try:
            return await self._store.async_load()
        except (HomeAssistantError, NotImplementedError, ValueError, KeyError, TypeError) as err:
            await self.async_keep_aside(str(err) or type(err).__name__)
            return None

    async def async_keep_aside(self, reason: str) -> None:
        """Copy the unreadable file aside untouched and raise a repair issue."""
        stamp = dt_util.utcnow().strftime("%Y%m%dT%H%M%S")
        backup = f"{self.path}.unreadable.{stamp}"
        try:
            await self._hass.async_add_executor_job(shutil.copy2, self.path, backup)
        except OSError as err:
            LOGGER.error(
                "Could not read Home Agent sessions (%s) or keep them aside: %s", reason, err
            )
            backup = self.path
        else:
            LOGGER.error(
                "Could not read Home Agent sessions from %s (%s); starting without them. "
                "The file was kept as %s",
                self.path,
                reason,
                backup,
            )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            f"storage_unreadable_{self._entry_id}",
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="storage_unreadable",
            translation_placeholders={"path": backup, "reason": reason},
        )

    @callback
    def async_schedule_save(self) -> None:
        """Write the current data within the save delay (once per burst of changes).

        Nothing is scheduled after shutdown: a reloaded agent owns the file by then.
        """
        if self._closed:
            return
        if self._unsub_timer is None:
            self._unsub_timer = async_call_later(self._hass, self._delay, self._flush_job)
        if self._unsub_final_write is None:
            self._unsub_final_write = self._hass.bus.async_listen_once(
                EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
            )

    @property
    def save_pending(self) -> bool:
        """Return whether changes wait to be written."""
        return self._unsub_timer is not None

    async def _async_timer_flush(self, _now: datetime) -> None:
        """Write once the delay has passed."""
        self._unsub_timer = None
        await self.async_flush()

    async def _async_final_write(self, _event: Event) -> None:
        """Write what is pending before Home Assistant stops."""
        self._unsub_final_write = None
        if self._unsub_timer is not None:
            await self.async_flush()

    def _cancel_timer(self) -> None:
        """Forget a scheduled write."""
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    async def async_flush(self) -> None:
        """Write now; on failure keep the data in memory and try again later."""
        self._cancel_timer()
        data = self._snapshot()
        await self._store.async_save(data)
        self.writes += 1
        if (error := self._store.write_error) is not None:
            if self._closed:
                LOGGER.error("Could not save Home Agent sessions while stopping: %s", error)
                return
            LOGGER.warning(
                "Could not save Home Agent sessions (%s); retrying in %d s",
                error,
                SAVE_RETRY_DELAY,
            )
            self._unsub_timer = async_call_later(self._hass, SAVE_RETRY_DELAY, self._flush_job)

    async def async_shutdown(self) -> None:
        """Write pending changes; start no more timers."""
        self._closed = True
        if self._unsub_timer is not None:
            await self.async_flush()
        self._cancel_timer()
        if self._unsub_final_write is not None:
            self._unsub_final_write()
            self._unsub_final_write = None

    async def async_remove(self) -> None:
        """Delete the file (the entry was removed)."""
        self._cancel_timer()
        await self._store.async_remove()
