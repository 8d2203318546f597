"""Helpers shared by the tests: real conversation turns, the agent as a test sees it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
import inspect
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_test_home_assistant,
    mock_device_registry,
)

from custom_components.home_agent.const import (
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MODEL,
    CONF_PROMPT,
    DOMAIN,
    SessionScope,
)
from custom_components.home_agent.session import Exchange, Session
from custom_components.home_agent.tracker import SessionTracker

AGENT_ENTITY_ID = "conversation.home_agent"
# What every session event carries (the public contract); expired/cleared add "reason".
SUMMARY_KEYS = frozenset(
    {
        "conversation_id",
        "session_key",
        "device_id",
        "satellite_id",
        "user_id",
        "started_at",
        "last_activity",
        "expires_at",
        "turns",
    }
)
EVENT_KEYS = SUMMARY_KEYS | {"entry_id", "agent_id"}


async def converse(
    hass: HomeAssistant,
    conversation_id: str | None = None,
    *,
    text: str = "what time is it",
    device_id: str | None = None,
    user_id: str | None = None,
    agent_id: str = AGENT_ENTITY_ID,
) -> conversation.ConversationResult:
    """Send one turn to an agent the way the REST/websocket API does."""
    return await conversation.async_converse(
        hass,
        text,
        conversation_id,
        Context(user_id=user_id),
        agent_id=agent_id,
        device_id=device_id,
    )


def tracker_of(entry: ConfigEntry) -> SessionTracker:
    """Return the session tracker of a loaded entry (the helpers below are what tests use)."""
    tracker: SessionTracker = entry.runtime_data.tracker
    return tracker


# --- the agent as a test sees it ----------------------------------------------------------
# Tests ask these, never the tracker behind them: what a user could check (the agent's
# sessions, what was said in one) and the few ways in that no real turn offers.


def sessions_of(entry: ConfigEntry) -> list[Session]:
    """Return the agent's active sessions, in the order they started (or were restored)."""
    return tracker_of(entry).sessions


def conversation_ids(entry: ConfigEntry) -> list[str]:
    """Return the conversation ids of the agent's active sessions, in the same order."""
    return [session.conversation_id for session in sessions_of(entry)]


def session_of(entry: ConfigEntry, conversation_id: str) -> Session | None:
    """Return the agent's active session with this conversation id, if there is one."""
    return tracker_of(entry).get(conversation_id)


def session_of_key(entry: ConfigEntry, session_key: str) -> Session | None:
    """Return the active session of a key (`device:<id>`, `user:<id>`, ...), if any."""
    return tracker_of(entry).session_for_key(session_key)


def said_in(entry: ConfigEntry, conversation_id: str) -> list[tuple[str, str]] | None:
    """Return what was said in the agent's session (see `said`); None without that session."""
    session = session_of(entry, conversation_id)
    return None if session is None else said(session.transcript)


def start_session(
    entry: ConfigEntry,
    conversation_id: str | None = None,
    *,
    device_id: str | None = None,
    satellite_id: str | None = None,
    user_id: str | None = None,
) -> Session:
    """Return the session a turn with these ids belongs to, starting it without a turn.

    A turn resolves its session this way first. For thousands of sessions at once, and
    for ids no registry knows (a turn keys only devices and satellites Home Assistant has).
    """
    return tracker_of(entry).async_resolve(
        conversation_id, device_id=device_id, satellite_id=satellite_id, user_id=user_id
    )


def record_exchange(entry: ConfigEntry, session: Session, exchange: Exchange) -> None:
    """Record an answered turn in a session, as the agent does at a turn's end (no model)."""
    tracker_of(entry).async_record_turn(session, exchange)


async def async_transcripts_read(entry: ConfigEntry) -> None:
    """Wait until the agent has read the transcripts stored before it started."""
    await tracker_of(entry).async_transcripts_loaded()


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session settings an agent runs with: its options, with the defaults filled in."""

    timeout: timedelta
    scope: SessionScope
    max_turns: int


def session_settings(entry: ConfigEntry) -> SessionSettings:
    """Return the session settings the loaded agent runs with."""
    tracker = tracker_of(entry)
    return SessionSettings(tracker.timeout, tracker.scope, tracker.max_turns)


def loaded_agent(entry: ConfigEntry) -> object:
    """Return what the loaded agent holds: a reload (new options) replaces it, a turn does not."""
    loaded: object = entry.runtime_data
    return loaded


class BackgroundWork:
    """What an agent does between turns: saving its sessions and timing them out.

    Of the agent as loaded when `background_work` was called: still there after it unloads.
    """

    def __init__(self, tracker: SessionTracker) -> None:
        """Look at one tracker's store and timers."""
        self._tracker = tracker

    @property
    def save_pending(self) -> bool:
        """Tell whether changes wait to be written."""
        return self._tracker.store.save_pending

    @property
    def saves_written(self) -> int:
        """Return how many saves reached the disk since the agent started."""
        return self._tracker.store.writes

    @property
    def expiry_timers(self) -> int:
        """Return how many session expiry timers are armed."""
        return len(self._tracker._timers)

    def schedule_save(self) -> None:
        """Ask for a save after the save delay, as any change to a session does."""
        self._tracker.store.async_schedule_save()

    async def async_save_now(self) -> bool:
        """Write every session now; tell whether it reached the disk."""
        return await self._tracker.store.async_flush()


def background_work(entry: ConfigEntry) -> BackgroundWork:
    """Return the saving and timing out of the loaded agent (see BackgroundWork)."""
    return BackgroundWork(tracker_of(entry))


async def async_advance(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta
) -> None:
    """Move the clock on and run the timers that fell due (and what they set off)."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


def make_device(hass: HomeAssistant, name: str) -> str:
    """Register a device of another integration (a voice satellite, say); return its id.

    The same name is the same device: a test may name it again for each turn.
    """
    made: dict[str, str] = hass.data.setdefault("home_agent_test_devices", {})
    if name in made:
        return made[name]
    registry = dr.async_get(hass)
    owner = MockConfigEntry(domain="test")
    owner.add_to_hass(hass)
    device = registry.async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("test", name)}, name=name
    )
    made[name] = device.id
    return device.id


async def setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Set up Home Assistant's conversation stack and one agent entry."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "conversation", {})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def async_add_agent(
    hass: HomeAssistant,
    data: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    *,
    title: str = "Home Agent",
    entry_id: str | None = None,
) -> MockConfigEntry:
    """Add a Home Agent entry with this data and these options, and set it up (see setup_entry).

    `entry_id` is the entry's own (for files stored under it before), else a new one.
    """
    entry = MockConfigEntry(
        domain=DOMAIN, title=title, data=data, options=options, entry_id=entry_id
    )
    entry.add_to_hass(hass)
    await setup_entry(hass, entry)
    return entry


@asynccontextmanager
async def async_restarted(
    hass: HomeAssistant, entry: MockConfigEntry
) -> AsyncIterator[tuple[HomeAssistant, MockConfigEntry]]:
    """Stop `hass`, then start a second Home Assistant on the same storage with the entry set up.

    The devices come along (the test harness does not keep registries on disk): a
    satellite is still the same satellite after a restart.
    """
    devices = all_devices(hass)
    await hass.async_stop(force=True)
    async with async_test_home_assistant(config_dir=hass.config.config_dir) as hass2:
        hass2.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # what enable_custom_integrations does
        mock_device_registry(hass2, devices)
        entry2 = MockConfigEntry(
            domain=entry.domain,
            entry_id=entry.entry_id,
            title=entry.title,
            data=dict(entry.data),
            options=dict(entry.options),
        )
        entry2.add_to_hass(hass2)
        try:
            yield hass2, entry2
        finally:
            await hass2.async_stop(force=True)


def said(transcript: object) -> list[tuple[str, str]]:
    """Return what was said in a transcript: (user, assistant) per exchange."""
    return [(exchange.user, exchange.assistant) for exchange in transcript]  # type: ignore[attr-defined]


def known_devices(hass: HomeAssistant, *device_ids: str) -> None:
    """Give the device registry devices with exactly these ids (as stored files name them)."""
    # From 2026.10 a device names its one config entry (before, a set of them).
    owner: dict[str, Any] = (
        {"config_entry_id": None}
        if "config_entry_id" in inspect.signature(dr.DeviceEntry).parameters
        else {}
    )
    devices = all_devices(hass)
    devices.update(
        {
            device_id: dr.DeviceEntry(id=device_id, name=device_id, **owner)
            for device_id in device_ids
        }
    )
    mock_device_registry(hass, devices)


def all_devices(hass: HomeAssistant) -> dict[str, dr.DeviceEntry]:
    """Return the device registry's devices by id (iterating yields entries from 2026.10)."""
    registry = dr.async_get(hass)
    entries = (
        item if isinstance(item, dr.DeviceEntry) else registry.async_get(item)
        for item in registry.devices
    )
    return {entry.id: entry for entry in entries if entry is not None}


def openai_agent_data(
    base_url: str,
    *,
    prompt: str = "You are a helpful voice assistant.",
    apis: list[str] | None = None,
) -> dict[str, Any]:
    """Return the data of an `openai` agent (the Assist API unless told otherwise)."""
    return {
        CONF_BACKEND: "openai",
        CONF_BASE_URL: base_url,
        CONF_MODEL: "fake-model",
        CONF_PROMPT: prompt,
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST] if apis is None else apis,
    }
