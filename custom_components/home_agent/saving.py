"""Writing a file soon after a change: once per burst, again when the disk refused, at the stop.

Both of Home Agent's stores (an agent's sessions, the household's notes) write their files
themselves rather than through `Store`, which logs a failed write instead of reporting it:
a clear or a forget must know whether the words left the disk. This is their common part.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from homeassistant.const import EVENT_HOMEASSISTANT_FINAL_WRITE
from homeassistant.core import CALLBACK_TYPE, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .const import LOGGER, SAVE_DELAY, SAVE_RETRY_DELAY


class DelayedSave:
    """Run a write within a delay of a change, one at a time, retried until it succeeds.

    `write` raises OSError when the disk refused; the data stays in memory and the write is
    tried again after SAVE_RETRY_DELAY. Nothing is written after `async_shutdown`, nor after
    Home Assistant's final write (which writes what is pending).
    """

    def __init__(
        self,
        hass: HomeAssistant,
        what: str,
        write: Callable[[], Awaitable[None]],
    ) -> None:
        """Save `what` (for the log) with `write`, SAVE_DELAY seconds after a change."""
        self._hass = hass
        self._what = what
        self._write = write
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_final_write: CALLBACK_TYPE | None = None
        self._job = HassJob(self._async_timer_fired, f"home_agent save {what}")
        self._lock = asyncio.Lock()
        self._closed = False
        self.writes = 0

    @property
    def pending(self) -> bool:
        """Return whether changes wait to be written."""
        return self._unsub_timer is not None

    @callback
    def async_schedule(self) -> None:
        """Write within the delay (once per burst of changes); nothing after shutdown."""
        if self._closed:
            return
        if self._unsub_timer is None:
            self._unsub_timer = async_call_later(self._hass, SAVE_DELAY, self._job)
        if self._unsub_final_write is None:
            self._unsub_final_write = self._hass.bus.async_listen_once(
                EVENT_HOMEASSISTANT_FINAL_WRITE, self._async_final_write
            )

    async def async_flush(self) -> bool:
        """Write now; on failure keep the data in memory, retry later and return False."""
        self._cancel_timer()
        async with self._lock:
            try:
                await self._write()
            except OSError as err:
                self._failed(err)
                return False
            self.writes += 1
            return True

    async def async_shutdown(self) -> None:
        """Write what is pending and wait for a write in progress; write nothing after."""
        self._closed = True
        if self._unsub_timer is not None:
            await self.async_flush()
        self._cancel_timer()
        async with self._lock:
            pass  # a write the timer started before is done by now
        if self._unsub_final_write is not None:
            self._unsub_final_write()
            self._unsub_final_write = None

    async def _async_timer_fired(self, _now: datetime) -> None:
        """Write once the delay has passed."""
        self._unsub_timer = None
        await self.async_flush()

    async def _async_final_write(self, _event: Event) -> None:
        """Write what is pending before Home Assistant stops; nothing is written after it."""
        self._unsub_final_write = None
        self._closed = True
        if self._unsub_timer is not None:
            await self.async_flush()

    def _cancel_timer(self) -> None:
        """Forget a scheduled write."""
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    def _failed(self, err: OSError) -> None:
        """Log a refused write and try again later."""
        what = err.strerror or type(err).__name__
        if self._closed:
            LOGGER.error("Could not save %s while stopping (%s)", self._what, what)
            return
        LOGGER.warning(
            "Could not save %s (%s); retrying in %d s", self._what, what, SAVE_RETRY_DELAY
        )
        self._cancel_timer()
        self._unsub_timer = async_call_later(self._hass, SAVE_RETRY_DELAY, self._job)


def problems_summary(problems: list[str]) -> str:
    """Return the problems found in a file in one line (the first few)."""
    shown = "; ".join(problems[:3])
    more = len(problems) - 3
    return f"{shown}; and {more} more" if more > 0 else shown
