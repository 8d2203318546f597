"""What every measurement needs: a real Home Assistant, statistics, a write counter, a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
import datetime as dt
import os
from pathlib import Path
import statistics
import tempfile
from typing import Any, Literal
from unittest.mock import patch

from aiohttp.resolver import AsyncResolver
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory, StepTickTimeFactory, TickingDateTimeFactory
from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import aiohttp_client, event as event_helper, frame
from homeassistant.helpers.storage import Store
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_test_home_assistant,
)

from custom_components.home_agent import disk_format, storage as home_agent_storage
from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    CONF_HISTORY_MAX_TURNS,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
)
from custom_components.home_agent.session import Session

type Clock = FrozenDateTimeFactory | StepTickTimeFactory | TickingDateTimeFactory

# The agent the session benchmarks measure: delegating to the built-in agent, sessions of
# an hour per device, 10 exchanges kept.
DELEGATING = {CONF_BACKEND: "agent", CONF_AGENT_ID: "conversation.home_assistant"}
SESSION_OPTIONS = {
    CONF_SESSION_TIMEOUT: 3600,
    CONF_SESSION_SCOPE: "device",
    CONF_HISTORY_MAX_TURNS: 10,
}


class AnyLanguageAgent(conversation.ConversationEntity):
    """A conversation agent of the benchmarks: it answers in any language."""

    @property
    def supported_languages(self) -> Literal["*"]:
        """Answer in any language."""
        return MATCH_ALL


@asynccontextmanager
async def home_assistant() -> AsyncIterator[HomeAssistant]:
    """Yield a running Home Assistant whose Stores write real files to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="home-agent-bench-") as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            # As the `hass` fixture does: integrations report through the frame helper.
            frame.async_setup(hass)
            try:
                yield hass
            finally:
                await hass.async_stop(force=True)


async def async_agent_entry(
    hass: HomeAssistant,
    data: dict[str, Any] = DELEGATING,
    options: dict[str, Any] = SESSION_OPTIONS,
) -> MockConfigEntry:
    """Set up Home Assistant's conversation stack and add a Home Agent entry (not set up)."""
    # What the tests' enable_custom_integrations does: custom integrations are found.
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    entry = MockConfigEntry(domain=DOMAIN, title="Home Agent", data=data, options=options)
    entry.add_to_hass(hass)
    return entry


async def async_store_sessions(hass: HomeAssistant, entry_id: str, sessions: list[Session]) -> None:
    """Write sessions to an agent's files as a loaded agent saves them (through its store).

    Not through a set-up entry: it would register a sensor per key (which the set-ups
    measured would then find) and cannot date sessions back.
    """
    store = home_agent_storage.SessionStore(hass, entry_id, lambda: sessions)
    assert await store.async_flush()


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and 99th percentile of a series of timings, in microseconds."""

    median: float
    p99: float
    samples: int

    @classmethod
    def of(cls, nanoseconds: list[int]) -> Spread:
        """Summarize timings taken with time.perf_counter_ns."""
        micro = [value / 1000 for value in nanoseconds]
        return cls(statistics.median(micro), statistics.quantiles(micro, n=100)[98], len(micro))


@dataclass(slots=True)
class Writes:
    """Files written through Home Assistant's Store, and their size."""

    count: int = 0
    bytes: int = 0


@contextmanager
def counting_writes(store_key: str | None = None) -> Iterator[Writes]:
    """Count every save of the sessions that reached the disk, and the bytes of the files written.

    Home Agent writes its index and transcripts itself (one save = both files); the naive
    plan writes through the Store `store_key`. Home Assistant's own stores (the registries,
    restored states: a set-up entry has them written too) are not counted.
    """
    writes = Writes()
    original = Store._async_write_data
    original_save = disk_format.write_files

    async def counted(store: Store[Any], *args: Any) -> None:
        await original(store, *args)
        if store.key != store_key:
            return
        writes.count += 1
        writes.bytes += await store.hass.async_add_executor_job(os.path.getsize, store.path)

    def counted_save(path: Path, *args: Any) -> None:
        original_save(path, *args)  # in the executor: plain file sizes are safe to read
        writes.count += 1
        transcripts = disk_format.transcripts_path(path)
        writes.bytes += path.stat().st_size + transcripts.stat().st_size

    with (
        patch.object(Store, "_async_write_data", counted),
        patch.object(home_agent_storage, "write_files", counted_save),
    ):
        yield writes


def _frozen_utcnow() -> dt.datetime:
    """Return the time freezegun says it is (dt_util.utcnow is a partial it cannot see)."""
    return dt.datetime.now(dt.UTC)


@contextmanager
def simulated_clock(start: dt.datetime) -> Iterator[Clock]:
    """Freeze wall and loop time at `start`; advance it with `advance`, as the tests do."""
    with (
        freeze_time(start) as clock,
        patch.object(dt_util, "utcnow", _frozen_utcnow),
        patch.object(event_helper, "time_tracker_utcnow", _frozen_utcnow),
    ):
        yield clock


async def advance(hass: HomeAssistant, clock: Clock, seconds: float) -> None:
    """Move the simulated clock on, fire the timers that fell due and wait for their work."""
    clock.tick(dt.timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


@contextmanager
def plain_resolver() -> Iterator[None]:
    """Resolve host names without zeroconf, which a bare Home Assistant lacks (127.0.0.1)."""

    def resolver(_hass: HomeAssistant) -> AsyncResolver:
        made = AsyncResolver()
        made.real_close = made.close  # type: ignore[attr-defined]
        return made

    with patch.object(aiohttp_client, "_async_make_resolver", resolver):
        yield
