"""The household's notes on disk: private, crash-safe, kept aside when unreadable, deleted last."""

from __future__ import annotations

from datetime import timedelta
import json
import os
import stat
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import CONF_MEMORY, DOMAIN, SAVE_RETRY_DELAY

from ..helpers import async_advance, setup_entry
from ..storage_files import FullDiskOnce
from .household import MEMORY_OPTIONS, act, async_saved, listed, notes_file, remember, stored

COFFEE = "Bob takes his coffee black."
HEATER = "The guest room heater must never go above 20 degrees."


def memory_agent(hass: HomeAssistant, title: str, **options: Any) -> MockConfigEntry:
    """Add another delegating agent (memory on unless told otherwise)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title,
        data={"backend": "agent"},
        options={**MEMORY_OPTIONS, "agent_id": "conversation.home_assistant", **options},
    )
    entry.add_to_hass(hass)
    return entry


async def test_the_file_is_private_versioned_and_holds_no_more_than_the_notes(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Written within the save delay, readable by Home Assistant's user only."""
    await remember(hass, COFFEE)
    assert stored(hass) == b""

    await async_saved(hass, freezer)

    path = notes_file(hass)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    envelope = json.loads(path.read_bytes())
    assert (envelope["version"], envelope["key"]) == (1, "home_agent.memory")
    assert [row[1] for row in envelope["data"]["notes"]] == [COFFEE]
    assert not list(path.parent.glob("*.tmp"))


async def test_notes_outlive_a_reload_and_a_restart(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """An option change reloads the agent: the notes are read back from disk."""
    await remember(hass, COFFEE)
    hass.config_entries.async_update_entry(
        setup_integration, options={**MEMORY_OPTIONS, "session_timeout": 600}
    )
    await hass.async_block_till_done()

    assert setup_integration.state is ConfigEntryState.LOADED
    assert await listed(hass) == [COFFEE]


async def test_turning_memory_off_keeps_the_notes_for_later(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Off: the actions refuse and the notes stay on disk; on again: they are back."""
    await remember(hass, COFFEE)
    hass.config_entries.async_update_entry(
        setup_integration, options={**MEMORY_OPTIONS, CONF_MEMORY: False}
    )
    await hass.async_block_till_done()
    assert COFFEE.encode() in stored(hass)
    with pytest.raises(Exception, match="No Home Agent agent with household memory"):
        await listed(hass)

    hass.config_entries.async_update_entry(setup_integration, options=MEMORY_OPTIONS)
    await hass.async_block_till_done()
    assert await listed(hass) == [COFFEE]


async def test_notes_kept_for_later_go_only_with_the_last_agent(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Memory off everywhere: removing another agent keeps the notes; the last one takes them."""
    without = memory_agent(hass, "No memory", **{CONF_MEMORY: False})
    await setup_entry(hass, without)
    await remember(hass, COFFEE)
    await async_saved(hass, freezer)
    hass.config_entries.async_update_entry(
        setup_integration, options={**MEMORY_OPTIONS, CONF_MEMORY: False}
    )
    await hass.async_block_till_done()

    assert await hass.config_entries.async_remove(without.entry_id)
    await hass.async_block_till_done()
    assert COFFEE.encode() in stored(hass)

    assert await hass.config_entries.async_remove(setup_integration.entry_id)
    await hass.async_block_till_done()
    assert not notes_file(hass).exists()


async def test_removing_the_last_agent_with_memory_deletes_the_file(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """One agent with memory gone: the notes stay for the other; the last one takes them."""
    other = memory_agent(hass, "Second agent")
    without = memory_agent(hass, "No memory", **{CONF_MEMORY: False})
    await setup_entry(hass, other)
    await setup_entry(hass, without)
    await remember(hass, COFFEE)
    await async_saved(hass, freezer)
    aside = notes_file(hass).with_name(f"{notes_file(hass).name}.unreadable.20260101T000000")
    aside.write_text("an old copy")

    assert await hass.config_entries.async_remove(setup_integration.entry_id)
    assert notes_file(hass).exists()
    assert await listed(hass) == [COFFEE]

    assert await hass.config_entries.async_remove(other.entry_id)
    await hass.async_block_till_done()
    assert not notes_file(hass).exists()
    assert not aside.exists()
    assert without.state is ConfigEntryState.LOADED


async def test_a_save_cut_short_leaves_no_temporary_file(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> None:
    """What a power loss left half-written goes at the next start, and with the last agent."""
    path = notes_file(hass)
    path.parent.mkdir(parents=True, exist_ok=True)
    left = path.with_name(f"{path.name}.k2m9q1.tmp")
    left.write_text(COFFEE)

    await setup_entry(hass, config_entry)

    assert config_entry.state is ConfigEntryState.LOADED
    assert not left.exists()
    assert await listed(hass) == []
    left.write_text(COFFEE)
    assert await hass.config_entries.async_remove(config_entry.entry_id)
    await hass.async_block_till_done()
    assert not left.exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{ not json", id="invalid-json"),
        pytest.param(json.dumps({"version": 7, "data": {}}).encode(), id="newer-version"),
        pytest.param(json.dumps({"version": 1}).encode(), id="no-data"),
    ],
)
async def test_an_unreadable_file_is_kept_aside_and_reported(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
    content: bytes,
) -> None:
    """The agent starts without notes; the file is copied aside as it was; a repair says so."""
    path = notes_file(hass)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)

    await setup_entry(hass, config_entry)

    assert config_entry.state is ConfigEntryState.LOADED
    assert await listed(hass) == []
    (aside,) = path.parent.glob(f"{path.name}.unreadable.*")
    assert aside.read_bytes() == content
    issue = issue_registry.async_get_issue(DOMAIN, "memory_unreadable")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["path"] == str(aside)
    await remember(hass, COFFEE)
    await async_saved(hass, freezer)
    assert COFFEE.encode() in stored(hass)


GOOD_NOTE = [
    "a1b2c3d4e5",
    COFFEE,
    None,
    "action",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00+00:00",
    0,
    None,
    False,
]


def changed(index: int, value: Any) -> list[Any]:
    """Return the good note with one field changed."""
    return [*GOOD_NOTE[:index], value, *GOOD_NOTE[index + 1 :]]


def seed(hass: HomeAssistant, **data: list[Any]) -> None:
    """Write a notes file: one good note unless told other notes, and what the test adds."""
    path = notes_file(hass)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"notes": [GOOD_NOTE], "frames": [], "pending": [], **data}
    path.write_text(json.dumps({"version": 1, "key": "home_agent.memory", "data": data}))


async def test_one_bad_record_keeps_the_others(
    hass: HomeAssistant, config_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A damaged note is left out (and said where, never what); the rest load."""
    secret = [GOOD_NOTE[0], "A secret note.", *GOOD_NOTE[2:4], 5]
    seed(
        hass,
        notes=[GOOD_NOTE, ["x", "", None], secret],
        frames=[["e", "c", "s", None, "many", []]],
        pending=[{"id": 3}],
    )

    await setup_entry(hass, config_entry)

    assert await listed(hass) == [COFFEE]
    issue = issue_registry.async_get_issue(DOMAIN, "memory_unreadable")
    assert issue is not None
    reason = issue.translation_placeholders["reason"]
    assert "note 2" in reason
    assert "note 3" in reason
    assert "secret" not in reason


async def test_a_failed_write_is_retried_and_a_forgotten_note_still_leaves(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk refuses once: the notes stay in memory and reach the disk at the next try."""
    coffee = await remember(hass, COFFEE)
    await remember(hass, HEATER)
    await async_saved(hass, freezer)
    await act(hass, "forget", memory_id=coffee)
    failing_once = FullDiskOnce(os.replace)

    with patch("custom_components.home_agent.envelope.os.replace", failing_once):
        await async_saved(hass, freezer)
        assert failing_once.failures == 1
        assert COFFEE.encode() in stored(hass)
        assert "retrying" in caplog.text
        assert not [record for record in caplog.records if record.exc_info]
        await async_advance(hass, freezer, timedelta(seconds=SAVE_RETRY_DELAY))

    assert COFFEE.encode() not in stored(hass)
    assert HEATER.encode() in stored(hass)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"notes": [GOOD_NOTE, changed(0, 7)]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(1, "x" * 201)]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(6, -1)]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(4, 5)]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(4, "2026-01-01T00:00:00")]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(4, "0001-01-01T00:00:00+14:00")]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(2, 3)]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(3, "told")]}, "note 2"),
        ({"notes": [GOOD_NOTE, changed(1, "Bob takes his tea green.")]}, "note 2"),
        ({"frames": {"not": "a list"}}, "frames"),
        ({"pending": "not a list"}, "pending extractions"),
        ({"frames": ["not a frame"]}, "frame 1"),
        ({"frames": [["e", 5, "s", None, 300, []]]}, "frame 1"),
        ({"pending": ["x"]}, "pending extraction 1"),
        ({"pending": [{"id": "p", "entry_id": "e", "lines": [3], "tries": 0}]}, "pending"),
        ({"pending": [{"id": "p", "entry_id": "e", "lines": [], "tries": -1}]}, "pending"),
        ({"pending": [{"id": 1, "entry_id": "e", "lines": [], "tries": 0}]}, "pending"),
        (
            {"pending": [{"id": "p", "entry_id": "e", "lines": [], "tries": 0, "if_ended": [1]}]},
            "pending",
        ),
    ],
)
async def test_each_kind_of_damage_is_said_where_and_left_out(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    data: dict[str, Any],
    where: str,
) -> None:
    """Whatever is wrong with a record, the good note loads and the repair names the record."""
    seed(hass, **data)

    await setup_entry(hass, config_entry)

    assert await listed(hass) == [COFFEE]
    issue = issue_registry.async_get_issue(DOMAIN, "memory_unreadable")
    assert issue is not None
    assert where in issue.translation_placeholders["reason"]


async def test_a_damaged_file_is_kept_aside_once(
    hass: HomeAssistant, config_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Once copied aside, the file is written anew: the next read finds nothing to report."""
    seed(hass, notes=[GOOD_NOTE, changed(0, 7)])
    await setup_entry(hass, config_entry)
    await async_saved(hass, freezer)

    hass.config_entries.async_update_entry(
        config_entry, options={**config_entry.options, "session_timeout": 600}
    )
    await hass.async_block_till_done()

    assert config_entry.state is ConfigEntryState.LOADED
    assert await listed(hass) == [COFFEE]
    path = notes_file(hass)
    assert len(list(path.parent.glob(f"{path.name}.unreadable.*"))) == 1


async def test_what_agents_without_memory_left_is_dropped_when_read(
    hass: HomeAssistant, config_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Session notes and pending extractions of an agent gone (or without memory) go."""
    said = "User: my sister visits on Sunday"
    pending = {
        "id": "p1",
        "entry_id": "gone",
        "person": None,
        "speaker": None,
        "ended_at": "2026-01-01T00:00:00+00:00",
        "lines": [said],
        "tries": 0,
    }
    # A newer version of the note that could not be read leaves this one current.
    older = [*GOOD_NOTE[:7], "lost-note", False]
    frame = ["gone", "c", "s", None, 300, ["a1b2c3d4e5"]]
    seed(hass, notes=[older], frames=[frame], pending=[pending])

    await setup_entry(hass, config_entry)
    await async_saved(hass, freezer)

    assert await listed(hass) == [COFFEE]
    on_disk = json.loads(stored(hass))["data"]
    assert on_disk["frames"] == []
    assert on_disk["pending"] == []
