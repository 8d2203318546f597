"""Storage format 2 and storage faults: what is on disk always loads, nothing cleared returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import timedelta
import errno
import json
import os
import threading
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryDisabler, ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.home_agent import storage
from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    DOMAIN,
    SAVE_DELAY,
    SAVE_RETRY_DELAY,
)
from custom_components.home_agent.session import Exchange, ToolCall, ToolRound

from .delegates import (
    DelegateAgent,
    FixedReplyAgent,
    GateAgent,
    async_setup_delegating_to,
    register_delegate_again,
)
from .helpers import (
    async_advance,
    async_restarted,
    async_transcripts_read,
    background_work,
    conversation_ids,
    converse,
    known_devices,
    record_exchange,
    said,
    said_in,
    session_of,
    session_of_key,
    sessions_of,
    setup_entry,
    start_session,
)
from .storage_files import (
    index_path,
    stored_sessions,
    stored_text,
    transcripts_path,
    v1_record,
    write_v1,
)

SECRET = "my door code is 4711"
HALF_EMOJI = "thumbs up \ud83d"
CID = "01JSTORED00000000000000000"
ENTRY_ID = "01JDELEGATINGAGENT00000000"


@pytest.fixture(autouse=True)
def stored_devices(hass: HomeAssistant) -> None:
    """Register the satellites the stored files and turns name (only known devices key)."""
    known_devices(hass, "dev-a", "dev-b", "dev-kitchen")


async def _save(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let the save delay pass."""
    await async_advance(hass, freezer, timedelta(seconds=SAVE_DELAY))


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the entry up and wait for its transcripts."""
    await setup_entry(hass, entry)
    await async_transcripts_read(entry)


async def _delegating(hass: HomeAssistant, agent: DelegateAgent) -> MockConfigEntry:
    """Set up Home Agent delegating to `agent`, its transcripts read."""
    entry = await async_setup_delegating_to(hass, agent, {}, entry_id=ENTRY_ID)
    await async_transcripts_read(entry)
    return entry


# --- format 2 and the migration of format 1 ---------------------------------


async def test_a_file_of_the_previous_release_loads_and_is_rewritten(
    hass: HomeAssistant, config_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """A literal version-1 file: its sessions and transcripts load, and the next save is v2."""
    recent = (dt_util.utcnow() - timedelta(minutes=5)).isoformat()
    path = index_path(hass, config_entry.entry_id)
    path.parent.mkdir(parents=True)
    path.write_text(
        """{
    "version": 1,
    "minor_version": 1,
    "key": "home_agent.ENTRY",
    "data": {
        "sessions": [
            {
                "conversation_id": "01JV1SESSION00000000000000",
                "session_key": "device:dev-kitchen",
                "device_id": "dev-kitchen",
                "satellite_id": null,
                "user_id": null,
                "started_at": "RECENT",
                "last_activity": "RECENT",
                "expires_at": "RECENT",
                "turns": 2,
                "transcript": [
                    ["where are my keys", "On the hook by the door."],
                    ["and my glasses", "On your head."]
                ]
            }
        ]
    }
}""".replace("ENTRY", config_entry.entry_id).replace("RECENT", recent)
    )
    await _setup(hass, config_entry)
    session = session_of_key(config_entry, "device:dev-kitchen")
    assert session is not None
    assert session.conversation_id == "01JV1SESSION00000000000000"
    assert session.turns == 2
    assert list(session.transcript) == [
        Exchange("where are my keys", "On the hook by the door."),
        Exchange("and my glasses", "On your head."),
    ]
    await _save(hass, freezer)  # the migration is written without waiting for a turn
    assert json.loads(path.read_text())["version"] == 2
    [stored] = stored_sessions(hass, config_entry.entry_id)
    assert stored["transcript"] == [
        ["where are my keys", "On the hook by the door."],
        ["and my glasses", "On your head."],
    ]


async def test_tool_rounds_local_turns_and_summary_survive_a_restart(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Everything an exchange holds, and the summary, comes back after a restart."""
    session = start_session(setup_integration, device_id="dev-a")
    session.summary = "They asked about the lights."
    done = Exchange(
        "switch on the counter light",
        "Done.",
        (
            ToolRound(
                "Turning it on.",
                (ToolCall("call_1", "HassTurnOn", {"name": "Kitchen Light"}, '{"ok":1}'),),
            ),
        ),
    )
    local = Exchange("turn off the fan", "Turned off the fan", local=True)
    for exchange in (done, local, Exchange("thanks", "You're welcome.")):
        record_exchange(setup_integration, session, exchange)

    async with async_restarted(hass, setup_integration) as (hass2, entry):
        await _setup(hass2, entry)
        restored = session_of(entry, session.conversation_id)
        assert restored is not None
        assert list(restored.transcript) == [
            done,
            local,
            Exchange("thanks", "You're welcome."),
        ]
        assert restored.summary == "They asked about the lights."
    # A plain exchange is stored as its two texts.
    lines = transcripts_path(hass, setup_integration.entry_id).read_text().splitlines()
    assert json.loads(lines[1])[2][2] == ["thanks", "You're welcome."]


async def test_a_transcript_nobody_used_since_a_restart_survives_the_next_one(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A restored session that had no turn keeps its transcript through later saves."""
    quiet = start_session(setup_integration, device_id="dev-a")
    done = Exchange(
        "switch on the counter light",
        "Done.",
        (ToolRound(None, (ToolCall("call_1", "HassTurnOn", {"name": "Counter"}, "{}"),)),),
    )
    record_exchange(setup_integration, quiet, done)
    record_exchange(setup_integration, quiet, Exchange("thanks", "You're welcome."))
    busy = start_session(setup_integration, device_id="dev-b")
    record_exchange(setup_integration, busy, Exchange("hello", "Hi."))

    async with async_restarted(hass, setup_integration) as (hass2, entry2):
        await _setup(hass2, entry2)
        # Only the other device talks; the save rewrites both sessions' transcripts.
        other = session_of(entry2, busy.conversation_id)
        assert other is not None
        record_exchange(entry2, other, Exchange("and now", "Still here."))
        assert await background_work(entry2).async_save_now()
        async with async_restarted(hass2, entry2) as (hass3, entry3):
            await _setup(hass3, entry3)
            restored = session_of(entry3, quiet.conversation_id)
            assert restored is not None
            assert list(restored.transcript) == [done, Exchange("thanks", "You're welcome.")]
            assert said_in(entry3, busy.conversation_id) == [
                ("hello", "Hi."),
                ("and now", "Still here."),
            ]


@contextmanager
def _slow_disk() -> Iterator[threading.Event]:
    """Hold the transcripts file's read until the event returned is set (a slow disk)."""
    disk_ready = threading.Event()
    read_lines = storage.read_lines

    def slow_read(*args: Any) -> Any:
        disk_ready.wait(5)
        return read_lines(*args)

    with patch.object(storage, "read_lines", slow_read):
        yield disk_ready


async def test_a_turn_answered_before_the_transcripts_are_read_goes_after_them(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """On a slow disk a turn may come before its stored exchanges: they keep their order."""
    session = start_session(setup_integration, device_id="dev-a")
    record_exchange(setup_integration, session, Exchange("my name is Ada", "Hello Ada."))
    async with async_restarted(hass, setup_integration) as (hass2, entry):
        with _slow_disk() as disk_ready:
            assert await async_setup_component(hass2, "homeassistant", {})
            assert await async_setup_component(hass2, "conversation", {})
            assert await hass2.config_entries.async_setup(entry.entry_id)
            restored = session_of(entry, session.conversation_id)
            assert restored is not None
            record_exchange(entry, restored, Exchange("what is my name", "Ada."))
            disk_ready.set()
            await async_transcripts_read(entry)
        assert said(restored.transcript) == [
            ("my name is Ada", "Hello Ada."),
            ("what is my name", "Ada."),
        ]


async def test_a_turn_reusing_an_expired_id_at_start_up_gets_nothing_of_it_back(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A conversation that ran out while stopped stays gone, even if its id comes back.

    The id of a conversation that expired is unknown, so a turn passing it (an
    automation's `conversation.process`) starts a new session with that id; the stored
    transcript and summary read a moment later belong to the old one.
    """
    agent = GateAgent(hold=set())
    entry = await async_setup_delegating_to(hass, agent, {})
    old = await converse(hass, text=SECRET, device_id="dev-a")
    old_session = session_of(entry, old.conversation_id)
    assert old_session is not None
    old_session.summary = "Their door code is secret."
    freezer.tick(timedelta(minutes=50))
    await converse(hass, text="hello", device_id="dev-b")  # still live after the restart
    async with async_restarted(hass, entry) as (hass2, entry2):
        freezer.tick(timedelta(minutes=20))  # the first conversation ran out meanwhile
        with _slow_disk() as disk_ready:
            await setup_entry(hass2, entry2)
            register_delegate_again(hass2, entry2, agent)
            turn = hass2.async_create_task(
                converse(hass2, old.conversation_id, text="what did I tell you")
            )
            for _ in range(10_000):
                if session_of(entry2, old.conversation_id) is not None:
                    break
                await asyncio.sleep(0)
            disk_ready.set()
            result = await turn
        assert result.conversation_id == old.conversation_id
        told = agent.inputs[-1].extra_system_prompt or ""
        assert SECRET not in told
        assert "door code" not in told
        session = session_of(entry2, old.conversation_id)
        assert session is not None
        assert said(session.transcript) == [("what did I tell you", f"answer {len(agent.inputs)}")]
        assert session.summary is None


async def test_newer_storage_is_refused_and_kept(
    hass: HomeAssistant, config_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A file of a newer Home Agent is not read (nor overwritten before it was copied)."""
    path = index_path(hass, config_entry.entry_id)
    path.parent.mkdir(parents=True)
    content = json.dumps({"version": 3, "minor_version": 1, "key": "k", "data": {"x": 1}})
    path.write_text(content)
    await _setup(hass, config_entry)
    assert config_entry.state is ConfigEntryState.LOADED
    [kept] = path.parent.glob(f"{path.name}.unreadable.*")
    assert kept.read_text() == content
    issue = issue_registry.async_get_issue(DOMAIN, f"storage_unreadable_{config_entry.entry_id}")
    assert issue is not None
    assert "newer" in issue.translation_placeholders["reason"]


# --- stored text -------------------------------------------------------------


async def test_half_an_emoji_in_a_reply_does_not_stop_saving(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply cut mid-character is stored (the half replaced); later turns still save."""
    entry = await _delegating(hass, FixedReplyAgent(HALF_EMOJI))
    first = await converse(hass, text="how was it", device_id="dev-a")
    await _save(hass, freezer)
    await converse(hass, text="and now", device_id="dev-a")
    await _save(hass, freezer)
    assert "Could not save" not in caplog.text
    [stored] = stored_sessions(hass, entry.entry_id)
    assert stored["conversation_id"] == first.conversation_id
    assert [e[1] for e in stored["transcript"]] == ["thumbs up \ufffd"] * 2
    # Also a text that reached the transcript some other way is saved.
    session = session_of(entry, first.conversation_id)
    assert session is not None
    session.transcript.append(Exchange("raw \udc00", "text"))
    background_work(entry).schedule_save()
    await _save(hass, freezer)
    [stored] = stored_sessions(hass, entry.entry_id)
    assert stored["transcript"][-1] == ["raw \ufffd", "text"]


async def test_a_delegate_without_speech_is_remembered_as_an_empty_reply(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Speech None is stored as an empty reply and the conversation survives a restart."""
    entry = await _delegating(hass, FixedReplyAgent(None))
    first = await converse(hass, text="do it quietly", device_id="dev-a")
    async with async_restarted(hass, entry) as (hass2, entry2):
        await _setup(hass2, entry2)
        assert said_in(entry2, first.conversation_id) == [("do it quietly", "")]


async def test_a_stored_null_speech_loads(
    hass: HomeAssistant, config_entry: MockConfigEntry, issue_registry: ir.IssueRegistry
) -> None:
    """A file holding a null reply (written by the release before) loads it as ''."""
    recent = dt_util.utcnow().isoformat()
    write_v1(hass, config_entry.entry_id, [v1_record(CID, "device:a", recent, [["hi", None]])])
    await _setup(hass, config_entry)
    session = session_of(config_entry, CID)
    assert session is not None
    assert list(session.transcript) == [Exchange("hi", "")]
    assert issue_registry.issues == {}


# --- time stamps -------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59+00:00",
        "0001-01-01T00:00:00+05:00",
    ],
)
async def test_timestamps_out_of_range_never_fail_setup(
    hass: HomeAssistant, config_entry: MockConfigEntry, stamp: str
) -> None:
    """Years 9999 and 1 load: the far future counts as now, the far past has run out."""
    recent = dt_util.utcnow().isoformat()
    good = v1_record("01JGOOD0000000000000000000", "device:b", recent, [["q", "a"]])
    odd = v1_record(CID, "device:a", stamp, [["x", "y"]])
    write_v1(hass, config_entry.entry_id, [odd, good])
    await _setup(hass, config_entry)
    assert config_entry.state is ConfigEntryState.LOADED
    assert session_of(config_entry, "01JGOOD0000000000000000000") is not None
    if (session := session_of(config_entry, CID)) is not None:
        assert session.expires_at <= dt_util.utcnow() + timedelta(hours=1)


async def test_a_session_from_the_future_does_not_live_for_years(
    hass: HomeAssistant, config_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Activity stamped 5 years ahead (a wrong clock) lasts one timeout from now, no more."""
    ahead = (dt_util.utcnow() + timedelta(days=5 * 365)).isoformat()
    write_v1(hass, config_entry.entry_id, [v1_record(CID, "device:a", ahead, [["q", "a"]])])
    await _setup(hass, config_entry)
    assert session_of(config_entry, CID) is not None
    await async_advance(hass, freezer, timedelta(hours=1, seconds=1))
    assert session_of(config_entry, CID) is None


# --- duplicates ----------------------------------------------------------------


async def test_duplicate_records_leave_no_zombie(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Two records of one conversation or one key: the most recent one is the session."""
    now = dt_util.utcnow()
    older = (now - timedelta(minutes=30)).isoformat()
    newer = (now - timedelta(minutes=1)).isoformat()
    write_v1(
        hass,
        ENTRY_ID,
        [
            v1_record(CID, "device:dev-a", older, [["old", "old"]]),
            v1_record(CID, "device:dev-b", newer, [["new", "new"]]),
            v1_record("01JSAMEKEY0000000000000000", "device:dev-b", older, [["x", "x"]]),
        ],
    )
    entry = await _delegating(hass, FixedReplyAgent("Noted."))
    assert conversation_ids(entry) == [CID]
    session = session_of(entry, CID)
    assert session is not None
    assert session.session_key == "device:dev-b"
    assert session_of_key(entry, "device:dev-a") is None

    # dev-b continues the kept session; once it runs out, dev-b starts afresh and remembers.
    assert (await converse(hass, device_id="dev-b")).conversation_id == CID
    await async_advance(hass, freezer, timedelta(hours=1, seconds=1))
    assert sessions_of(entry) == []
    fresh = await converse(hass, text="remember me", device_id="dev-b")
    again = await converse(hass, device_id="dev-b")
    assert again.conversation_id == fresh.conversation_id != CID
    fresh_session = session_of(entry, fresh.conversation_id)
    assert fresh_session is not None
    assert fresh_session.transcript[0].user == "remember me"


# --- unreadable records ----------------------------------------------------------


async def test_unreadable_records_never_quote_what_was_said(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The log and the repair issue say where a record is broken, not what it holds."""
    recent = dt_util.utcnow().isoformat()
    write_v1(
        hass,
        config_entry.entry_id,
        [
            v1_record("01JGOOD0000000000000000000", "device:b", recent, [["q", "a"]]),
            v1_record(CID, "device:a", recent, [["fine", "fine"], [SECRET, 42]]),
            {**v1_record(SECRET, "device:c", recent, []), "turns": SECRET},
        ],
    )
    await _setup(hass, config_entry)
    assert conversation_ids(config_entry) == ["01JGOOD0000000000000000000"]
    issue = issue_registry.async_get_issue(DOMAIN, f"storage_unreadable_{config_entry.entry_id}")
    assert issue is not None
    reason = issue.translation_placeholders["reason"]
    assert "session 2: transcript entry 2 is not text" in reason
    assert "session 3: the number of turns is not a count" in reason
    assert "4711" not in reason
    assert "4711" not in caplog.text
    assert "ERROR" in caplog.text


def _talk_on_two_devices(entry: MockConfigEntry) -> dict[str, str]:
    """Record an exchange on dev-a and the secret on dev-b; return their conversation ids."""
    ids = {}
    for device, said_there in (("dev-a", "where are my keys"), ("dev-b", SECRET)):
        session = start_session(entry, device_id=device)
        record_exchange(entry, session, Exchange(said_there, "Noted."))
        ids[device] = session.conversation_id
    return ids


@asynccontextmanager
async def _restart_with_damaged_transcripts(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    damage: Callable[[list[bytes], dict[str, str]], list[bytes]],
) -> AsyncIterator[tuple[HomeAssistant, MockConfigEntry, dict[str, str]]]:
    """Talk on two devices, stop, let `damage(lines)` spoil the transcripts file, start."""
    ids = _talk_on_two_devices(entry)
    async with async_restarted(hass, entry) as (hass2, entry2):
        path = transcripts_path(hass2, entry2.entry_id)
        lines = path.read_bytes().splitlines()
        path.write_bytes(b"\n".join(damage(lines, ids)) + b"\n")
        await _setup(hass2, entry2)
        yield hass2, entry2, ids


async def test_a_damaged_transcript_line_loses_only_that_transcript(
    hass: HomeAssistant, setup_integration: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Other sessions keep theirs; the file is kept aside and the repair says which line."""

    def damage(lines: list[bytes], ids: dict[str, str]) -> list[bytes]:
        broken = json.dumps([ids["dev-b"], None, [[SECRET, 42]]]).encode()
        return [line if ids["dev-b"] not in line.decode() else broken for line in lines]

    async with _restart_with_damaged_transcripts(hass, setup_integration, damage) as (
        hass2,
        entry,
        ids,
    ):
        assert said_in(entry, ids["dev-a"]) == [("where are my keys", "Noted.")]
        assert said_in(entry, ids["dev-b"]) == []  # the session itself goes on
        issue = ir.async_get(hass2).async_get_issue(DOMAIN, f"storage_unreadable_{entry.entry_id}")
        assert issue is not None
        assert issue.translation_placeholders["reason"].endswith("entry 1 is not text")
        assert "transcripts line" in issue.translation_placeholders["reason"]
        path = transcripts_path(hass2, entry.entry_id)
        [copy] = path.parent.glob(f"{path.name}.unreadable.*")
        assert b"4711" in copy.read_bytes()  # untouched, for whoever repairs it
    assert "4711" not in caplog.text


async def test_a_transcripts_file_without_its_header_is_kept_aside(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Every session starts without a transcript; nothing is lost on disk."""

    def damage(lines: list[bytes], _ids: dict[str, str]) -> list[bytes]:
        return [b"garbage", *lines[1:]]

    async with _restart_with_damaged_transcripts(hass, setup_integration, damage) as (
        hass2,
        entry,
        ids,
    ):
        for conversation_id in ids.values():
            assert said_in(entry, conversation_id) == []
        issue = ir.async_get(hass2).async_get_issue(DOMAIN, f"storage_unreadable_{entry.entry_id}")
        assert issue is not None
        assert issue.translation_placeholders["reason"] == (
            "the transcripts file has no valid first line"
        )
        path = transcripts_path(hass2, entry.entry_id)
        assert [p.name for p in path.parent.glob(f"{path.name}.unreadable.*")]


def _not_json(index: dict[str, Any], _ids: dict[str, str]) -> str | None:
    return "{ half a file"


def _a_row_unreadable(index: dict[str, Any], ids: dict[str, str]) -> str | None:
    for row in index["data"]["sessions"]:
        if row[0] == ids["dev-b"]:
            row[7] = "many"
    return json.dumps(index)


def _newer_version(index: dict[str, Any], _ids: dict[str, str]) -> str | None:
    return json.dumps({**index, "version": 3})


def _missing(_index: dict[str, Any], _ids: dict[str, str]) -> str | None:
    return None


@pytest.mark.parametrize(
    "damage",
    [_not_json, _a_row_unreadable, _newer_version, _missing],
    ids=["not-json", "a-row-unreadable", "newer-version", "missing"],
)
async def test_a_damaged_index_never_costs_the_transcripts(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[dict[str, Any], dict[str, str]], str | None],
) -> None:
    """The intact transcripts file is kept aside before the next save writes over it.

    Sessions whose rows can be read are restored with their transcripts; the others'
    words stay on disk in the copy, next to the copy of the index.
    """
    ids = _talk_on_two_devices(setup_integration)
    async with async_restarted(hass, setup_integration) as (hass2, entry):
        path = index_path(hass2, entry.entry_id)
        transcripts = transcripts_path(hass2, entry.entry_id)
        original = transcripts.read_bytes()
        if (damaged := damage(json.loads(path.read_text()), ids)) is None:
            path.unlink()
        else:
            path.write_text(damaged)
        await _setup(hass2, entry)
        await converse(hass2, device_id="dev-a")
        await _save(hass2, freezer)

        assert SECRET not in stored_text(hass2, entry.entry_id)  # written anew
        [copy] = path.parent.glob(f"{transcripts.name}.unreadable.*")
        assert copy.read_bytes() == original
        if damage is _a_row_unreadable:
            rebuilt = session_of(entry, ids["dev-a"])
            assert rebuilt is not None
            assert said(rebuilt.transcript)[0] == ("where are my keys", "Noted.")
            assert [e.user for e in rebuilt.transcript] == ["where are my keys", "what time is it"]
        issue = ir.async_get(hass2).async_get_issue(DOMAIN, f"storage_unreadable_{entry.entry_id}")
        assert issue is not None
        assert str(copy) in issue.translation_placeholders["path"]
        assert "door code" not in str(issue.translation_placeholders)
    assert "door code" not in caplog.text


async def test_a_damaged_index_is_kept_aside_once(
    hass: HomeAssistant, setup_integration: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Without a turn the damaged index is still written anew: the next start is clean."""
    _talk_on_two_devices(setup_integration)
    async with async_restarted(hass, setup_integration) as (hass2, entry):
        path = index_path(hass2, entry.entry_id)
        path.write_text("{ half a file")
        await _setup(hass2, entry)
        await _save(hass2, freezer)
        assert json.loads(path.read_text())["data"]["sessions"] == []
        async with async_restarted(hass2, entry) as (hass3, entry3):
            await _setup(hass3, entry3)
            issues = ir.async_get(hass3).issues
            assert (DOMAIN, f"storage_unreadable_{entry3.entry_id}") not in issues
            assert len(list(path.parent.glob(f"{path.name}*.unreadable.*"))) == 2


async def test_a_file_that_cannot_be_copied_aside_is_not_overwritten(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The only copy of an unreadable file stays as it is, and the repair says so."""
    path = index_path(hass, config_entry.entry_id)
    path.parent.mkdir(parents=True)
    path.write_text("{ half a file")
    with patch(
        "custom_components.home_agent.disk_format.shutil.copy2",
        side_effect=OSError(errno.ENOSPC, "No space left on device"),
    ):
        await _setup(hass, config_entry)
    issue = issue_registry.async_get_issue(DOMAIN, f"storage_unreadable_{config_entry.entry_id}")
    assert issue is not None
    assert issue.translation_key == "storage_unreadable_not_kept"
    assert issue.translation_placeholders["path"] == str(path)
    assert issue.translation_placeholders["error"] == "No space left on device"
    description = json.loads(_translations())["issues"]["storage_unreadable_not_kept"]
    assert "untouched" not in description["description"]
    assert "saves nothing over it" in description["description"]

    await converse(hass, device_id="dev-a")  # the agent works, in memory
    await _save(hass, freezer)
    assert path.read_text() == "{ half a file"
    assert not transcripts_path(hass, config_entry.entry_id).exists()


def _translations() -> str:
    """Return the English translations file."""
    here = os.path.dirname(__file__)
    with open(
        os.path.join(here, "..", "custom_components", DOMAIN, "translations", "en.json"),
        encoding="utf-8",
    ) as file:
        return file.read()


# --- clearing when the disk refuses ----------------------------------------------


async def _clear(hass: HomeAssistant, conversation_id: str) -> dict[str, Any] | None:
    """Clear a conversation through the action, asking for its answer."""
    response = await hass.services.async_call(
        DOMAIN,
        "clear_conversation",
        {"conversation_id": conversation_id},
        blocking=True,
        context=Context(),
        return_response=True,
    )
    return dict(response) if response is not None else None


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["permission", "disk-full"],
)
async def test_a_clear_the_disk_refuses_is_honest_and_retried(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    error: OSError,
) -> None:
    """No `cleared` while the words are on disk; the retry deletes them; a restart agrees."""
    entry = await _delegating(hass, FixedReplyAgent("Noted."))
    first = await converse(hass, text=SECRET, device_id="dev-a")
    await _save(hass, freezer)
    assert SECRET in stored_text(hass, entry.entry_id)

    with (
        patch("custom_components.home_agent.envelope.os.replace", side_effect=error),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await _clear(hass, first.conversation_id)
    assert raised.value.translation_key == "clear_not_written"
    assert "could not be deleted from disk" in str(raised.value)
    assert SECRET in stored_text(hass, entry.entry_id)
    assert session_of(entry, first.conversation_id) is None

    await async_advance(hass, freezer, timedelta(seconds=SAVE_RETRY_DELAY))
    assert SECRET not in stored_text(hass, entry.entry_id)
    async with async_restarted(hass, entry) as (hass2, entry2):
        await _setup(hass2, entry2)
        assert session_of(entry2, first.conversation_id) is None


@pytest.mark.parametrize("fails_until", ["the retry", "the stop"])
async def test_a_clear_whose_index_write_fails_does_not_come_back(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fails_until: str
) -> None:
    """Transcripts written, index not: after a restart the cleared session stays gone.

    Also when no index write succeeds before Home Assistant stops: the newer transcripts
    file tells which sessions are left, and they keep their transcripts.
    """
    entry = await _delegating(hass, FixedReplyAgent("Noted."))
    first = await converse(hass, text=SECRET, device_id="dev-a")
    kept = await converse(hass, text="keep me", device_id="dev-b")
    await _save(hass, freezer)
    real_replace = os.replace

    def index_fails(source: str, destination: str) -> None:
        if not str(destination).endswith(".transcripts"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(source, destination)

    with ExitStack() as disk_full:
        # The words leave the disk with the transcripts file; the index write is retried.
        disk_full.enter_context(
            patch("custom_components.home_agent.envelope.os.replace", index_fails)
        )
        with pytest.raises(HomeAssistantError):
            await _clear(hass, first.conversation_id)
        assert SECRET not in stored_text(hass, entry.entry_id)
        if fails_until == "the retry":
            disk_full.close()
        async with async_restarted(hass, entry) as (hass2, entry2):
            disk_full.close()
            await _setup(hass2, entry2)
            assert session_of(entry2, first.conversation_id) is None
            assert said_in(entry2, kept.conversation_id) == [("keep me", "Noted.")]


# --- files left behind ----------------------------------------------------------


def _agent_files(hass: HomeAssistant, entry_id: str) -> list[str]:
    """Return the names of every file in `.storage` that belongs to the agent."""
    path = index_path(hass, entry_id)
    if not path.parent.exists():
        return []
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))


def _cut_short(hass: HomeAssistant, entry_id: str) -> list[str]:
    """Leave the temporary files of a save a power loss cut short; return their names."""
    path = index_path(hass, entry_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = [
        transcripts_path(hass, entry_id).with_name(f"{path.name}.transcripts.k2m9q1.tmp"),
        path.with_name(f"{path.name}.x81bd0.tmp"),
    ]
    for temporary in made:
        temporary.write_text(f'["{CID}", null, [["{SECRET}", "Noted"]]')
    return [p.name for p in made]


async def test_a_save_cut_short_leaves_no_temporary_file_after_the_next_start(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """What a power loss left half-written is deleted when the agent starts again."""
    entry = await _delegating(hass, FixedReplyAgent("Noted."))
    first = await converse(hass, text="where are my keys", device_id="dev-a")
    await _save(hass, freezer)
    async with async_restarted(hass, entry) as (hass2, entry2):
        left = _cut_short(hass2, entry2.entry_id)
        assert set(left) <= set(_agent_files(hass2, entry2.entry_id))
        await _setup(hass2, entry2)
        assert _agent_files(hass2, entry2.entry_id) == [
            index_path(hass2, entry2.entry_id).name,
            transcripts_path(hass2, entry2.entry_id).name,
        ]
        assert said_in(entry2, first.conversation_id) == [("where are my keys", "Noted.")]


async def test_removing_an_agent_that_never_started_deletes_its_temporary_files(
    hass: HomeAssistant,
) -> None:
    """A disabled agent (it never loads) leaves nothing on disk once it is removed."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent",
        data={CONF_BACKEND: "agent"},
        options={CONF_AGENT_ID: "conversation.home_assistant"},
        disabled_by=ConfigEntryDisabler.USER,
    )
    entry.add_to_hass(hass)
    recent = dt_util.utcnow().isoformat()
    write_v1(hass, entry.entry_id, [v1_record(CID, "device:dev-a", recent, [["q", "a"]])])
    _cut_short(hass, entry.entry_id)
    assert len(_agent_files(hass, entry.entry_id)) == 3

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert _agent_files(hass, entry.entry_id) == []


async def test_removing_the_agent_while_a_save_is_written_leaves_no_file(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Removal waits for the save in progress, then deletes what it wrote as well."""
    entry = await _delegating(hass, FixedReplyAgent("Noted."))
    await converse(hass, text="where are my keys", device_id="dev-a")
    await _save(hass, freezer)
    await converse(hass, text=SECRET, device_id="dev-a")
    writing, removed = threading.Event(), threading.Event()
    write_files, remove_files = storage.write_files, storage.remove_files

    def slow_write(*args: Any) -> None:
        # A slow disk: the save is still being written when the files are deleted
        # (unless the removal waits for it; then this gives up waiting after a while).
        writing.set()
        removed.wait(2)
        write_files(*args)

    def remove(*args: Any) -> None:
        remove_files(*args)
        removed.set()

    with (
        patch.object(storage, "write_files", slow_write),
        patch.object(storage, "remove_files", remove),
    ):
        freezer.tick(timedelta(seconds=SAVE_DELAY))
        async_fire_time_changed(hass)
        assert await hass.async_add_executor_job(writing.wait, 5)
        await hass.config_entries.async_remove(entry.entry_id)
        await hass.async_block_till_done()
    assert _agent_files(hass, entry.entry_id) == []


# --- scale -------------------------------------------------------------------------


async def test_satellites_are_followed_without_a_listener_per_agent(
    hass: HomeAssistant, setup_integration: MockConfigEntry, agent_data: dict[str, Any]
) -> None:
    """Each agent filters satellites through Home Assistant, not its own bus listener."""
    before = hass.bus.async_listeners().get(EVENT_STATE_CHANGED, 0)
    second = MockConfigEntry(domain=DOMAIN, title="Second", data=agent_data, options={})
    second.add_to_hass(hass)
    await _setup(hass, second)
    assert hass.bus.async_listeners().get(EVENT_STATE_CHANGED, 0) == before
