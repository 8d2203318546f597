"""Sessions and transcripts on disk: restart, downtime, corrupt files, failing writes."""

from __future__ import annotations

from datetime import timedelta
import json
import os
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.home_agent.const import (
    DOMAIN,
    EVENT_SESSION_EXPIRED,
    SAVE_DELAY,
    SAVE_RETRY_DELAY,
)

from .helpers import (
    async_advance,
    async_restarted,
    async_transcripts_read,
    background_work,
    conversation_ids,
    converse,
    make_device,
    said,
    session_of,
    sessions_of,
    setup_entry,
)
from .storage_files import FullDiskOnce, index_path, stored_sessions, v1_record, write_v1

TIMEOUT = timedelta(hours=1)
_stored_session = v1_record


def _seed(hass: HomeAssistant, entry: MockConfigEntry, sessions: list[Any]) -> None:
    """Put stored sessions (storage version 1) in place before the entry is set up."""
    write_v1(hass, entry.entry_id, sessions)


async def test_restart_continues_with_the_remaining_time(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A second Home Assistant on the same storage continues the session and its timer."""
    kitchen = make_device(hass, "Kitchen satellite")
    first = await converse(hass, text="what time is it", device_id=kitchen)
    started = dt_util.utcnow()
    freezer.tick(timedelta(minutes=20))
    async with async_restarted(hass, setup_integration) as (hass2, entry):
        expired = async_capture_events(hass2, EVENT_SESSION_EXPIRED)
        await setup_entry(hass2, entry)
        await async_transcripts_read(entry)  # as a turn would wait for them

        session = session_of(entry, first.conversation_id)
        assert session is not None
        assert session.expires_at == started + TIMEOUT
        assert said(session.transcript) == [
            ("what time is it", first.response.speech["plain"]["speech"])
        ]
        # A fresh pipeline id from the same device joins the restored session.
        again = await converse(hass2, "01JRESTARTFRESHID000000000", device_id=kitchen)
        assert again.conversation_id == first.conversation_id
        assert session.turns == 2

        await async_advance(hass2, freezer, TIMEOUT - timedelta(seconds=1))
        assert expired == []
        await async_advance(hass2, freezer, timedelta(seconds=1))
        assert len(expired) == 1


async def test_sessions_that_ran_out_while_stopped_expire_once(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A session that timed out during downtime fires `expired` once, after start-up."""
    now = dt_util.utcnow()
    stale = (now - timedelta(hours=2)).isoformat()
    fresh = (now - timedelta(minutes=10)).isoformat()
    _seed(
        hass,
        config_entry,
        [
            _stored_session("01JSTALE000000000000000000", "device:dev-old", stale, [["a", "b"]]),
            _stored_session("01JFRESH000000000000000000", "device:dev-new", fresh, [["c", "d"]]),
        ],
    )
    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    hass.set_state(CoreState.starting)
    await setup_entry(hass, config_entry)
    assert expired == []  # not before Home Assistant has started

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    hass.set_state(CoreState.running)
    await hass.async_block_till_done()
    assert len(expired) == 1
    assert expired[0].data["conversation_id"] == "01JSTALE000000000000000000"
    assert expired[0].data["reason"] == "timeout"
    # It expired when it should have, while Home Assistant was down.
    assert expired[0].data["expires_at"] == (now - timedelta(hours=1)).isoformat()
    assert conversation_ids(config_entry) == ["01JFRESH000000000000000000"]

    # Reloading does not announce it again: it is gone from disk too.
    assert await hass.config_entries.async_reload(config_entry.entry_id)
    await hass.async_block_till_done()
    assert len(expired) == 1
    stored = stored_sessions(hass, config_entry.entry_id)
    assert [s["conversation_id"] for s in stored] == ["01JFRESH000000000000000000"]

    await async_advance(hass, freezer, timedelta(minutes=50))
    assert len(expired) == 2


async def test_changes_are_written_once_per_save_delay(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A burst of turns is one write, after the save delay — not one write per turn."""
    saving = background_work(setup_integration)
    for device in ("dev-a", "dev-b", "dev-c"):
        await converse(hass, device_id=make_device(hass, device))
    assert not index_path(hass, setup_integration.entry_id).exists()
    await async_advance(hass, freezer, timedelta(seconds=SAVE_DELAY))
    assert len(stored_sessions(hass, setup_integration.entry_id)) == 3
    assert saving.saves_written == 1


async def test_failed_write_is_retried_and_nothing_is_lost(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A disk error while saving is logged and retried; the session stays in memory."""
    failing_once = FullDiskOnce(os.replace)

    first = await converse(hass, device_id=make_device(hass, "dev-a"))
    with patch("custom_components.home_agent.envelope.os.replace", failing_once):
        await async_advance(hass, freezer, timedelta(seconds=SAVE_DELAY))
        assert failing_once.failures == 1
        assert not index_path(hass, setup_integration.entry_id).exists()
        assert "retrying" in caplog.text
        assert session_of(setup_integration, first.conversation_id) is not None

        await async_advance(hass, freezer, timedelta(seconds=SAVE_RETRY_DELAY))
    stored = stored_sessions(hass, setup_integration.entry_id)
    assert [s["conversation_id"] for s in stored] == [first.conversation_id]
    # No temporary file is left behind by the failed write.
    assert not list(index_path(hass, setup_integration.entry_id).parent.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "aside_suffix"),
    [
        pytest.param("{ this is not json", ".unreadable.", id="invalid-json"),
        pytest.param(
            json.dumps({"version": 1, "minor_version": 1, "key": "k", "data": {"sessions": 7}}),
            ".unreadable.",
            id="wrong-shape",
        ),
        pytest.param(
            json.dumps({"version": 9, "minor_version": 1, "key": "k", "data": {"sessions": []}}),
            ".unreadable.",
            id="future-version",
        ),
        pytest.param('{"version": 1, "minor_version": 1', ".unreadable.", id="truncated"),
    ],
)
async def test_unreadable_storage_never_blocks_setup(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
    content: str,
    aside_suffix: str,
) -> None:
    """Home Agent starts empty, keeps the bad file aside untouched, and says so."""
    path = Path(hass.config.path(".storage", f"{DOMAIN}.{config_entry.entry_id}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    try:
        await setup_entry(hass, config_entry)
        assert config_entry.state.recoverable is True or config_entry.state.name == "LOADED"
        assert config_entry.state.name == "LOADED"
        assert sessions_of(config_entry) == []
        kept = list(path.parent.glob(f"{path.name}{aside_suffix}*"))
        assert len(kept) == 1
        assert kept[0].read_text() == content
        assert len(issue_registry.issues) >= 1
        assert "ERROR" in caplog.text
        # And the agent still works.
        result = await converse(hass, device_id=make_device(hass, "dev-a"))
        assert session_of(config_entry, result.conversation_id) is not None
    finally:
        for leftover in path.parent.glob(f"{path.name}*"):
            leftover.unlink()


async def test_one_bad_record_keeps_the_others(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A malformed session record is reported; the readable sessions are kept."""
    recent = (dt_util.utcnow() - timedelta(minutes=1)).isoformat()
    _seed(
        hass,
        config_entry,
        [
            _stored_session("01JGOOD0000000000000000000", "device:dev-a", recent, [["q", "a"]]),
            {"conversation_id": 42, "transcript": "nonsense"},
        ],
    )
    await setup_entry(hass, config_entry)
    assert conversation_ids(config_entry) == ["01JGOOD0000000000000000000"]
    assert (DOMAIN, f"storage_unreadable_{config_entry.entry_id}") in issue_registry.issues
