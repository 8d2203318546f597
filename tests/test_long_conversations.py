"""Hour-long conversations: a token budget for the history, and a summary made while idle."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.home_agent.const import (
    CONF_HISTORY_MAX_TOKENS,
    CONF_HISTORY_MAX_TURNS,
    CONF_HISTORY_SUMMARY,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    DOMAIN,
    MAX_HISTORY_MAX_TOKENS,
    SERVICE_CLEAR_CONVERSATION,
    SUMMARY_CHUNK,
    SUMMARY_IDLE_DELAY,
)
from custom_components.home_agent.summary import SUMMARY_INSTRUCTIONS

from .fake_openai import FakeOpenAI, Recorded
from .helpers import async_restarted, converse, make_device, openai_agent_data, setup_entry
from .storage_files import stored_text

BUDGET = 256
# Sessions with many turns kept but a small token budget, summaries on.
OPTIONS: dict[str, Any] = {
    CONF_SESSION_TIMEOUT: 3600,
    CONF_SESSION_SCOPE: "device",
    CONF_HISTORY_MAX_TURNS: 100,
    CONF_HISTORY_MAX_TOKENS: BUDGET,
    CONF_HISTORY_SUMMARY: True,
}
# The fake server counts four characters per token; Home Agent learns that from its
# reports (what it sends and what the fake counts differ by a few characters).
CHARS_PER_TOKEN = 4
BUDGET_CHARS = BUDGET * CHARS_PER_TOKEN * 1.05
RECAP = "Ada's locker number is 42 and she likes jazz."
# A summary of the most the model is asked for (80 words), about 110 tokens.
LONG_RECAP = (
    "Ada introduced herself and said her locker number is 42. She likes jazz, mostly "
    "Coltrane and Ella Fitzgerald, and asked for quiet music in the evening. The "
    "kitchen light was turned on twice and the hallway light off once. She wants a "
    "reminder to water the plants every Sunday at ten, a timer of twelve minutes for "
    "the pasta, and the heating at twenty degrees in the living room until midnight; "
    "she prefers short answers."
)


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return a chat-only `openai` agent pointed at the fake server."""
    return openai_agent_data(fake_openai.base_url, apis=[])


@pytest.fixture
def agent_options() -> dict[str, Any]:
    """Sessions with many turns kept but a small token budget."""
    return dict(OPTIONS)


def _history(request: Recorded) -> list[dict[str, Any]]:
    """Return the messages between the system prompt and the current user message."""
    return request.messages[1:-1]


def _is_summary(request: Recorded) -> bool:
    """Tell a summary request from a turn."""
    return request.messages[0]["content"] == SUMMARY_INSTRUCTIONS


def _turns(fake: FakeOpenAI) -> list[Recorded]:
    """Return the requests that answered turns."""
    return [r for r in fake.chat_requests if not _is_summary(r)]


async def _idle(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Let the session be quiet for a while."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def _long_talk(hass: HomeAssistant, fake: FakeOpenAI, turns: int) -> str:
    """On the kitchen satellite, have `turns` exchanges of about 200 characters each.

    Returns the satellite's device (the same on every call).
    """
    kitchen = make_device(hass, "Kitchen satellite")
    fake.chars_per_token = CHARS_PER_TOKEN
    for n in range(turns):
        fake.reply(f"Answer {n}: " + "words " * 30)
        await converse(hass, text=f"question {n} " + "please " * 5, device_id=kitchen)
    return kitchen


async def _introduce_ada_and_talk(hass: HomeAssistant, fake: FakeOpenAI, turns: int) -> str:
    """On the kitchen satellite, say who Ada is, then talk long; return the device."""
    kitchen = make_device(hass, "Kitchen satellite")
    fake.reply("Noted, locker 42.")
    await converse(hass, text="my name is Ada and my locker is 42", device_id=kitchen)
    return await _long_talk(hass, fake, turns)


@pytest.mark.parametrize("llama_cpp_timings", [False, True], ids=["usage", "llama-cpp-timings"])
async def test_the_history_fits_the_token_budget_oldest_leaving_first(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    llama_cpp_timings: bool,
) -> None:
    """Over 12 long exchanges the history sent stays within the budget; the newest stay.

    Also with a llama.cpp server, whose counts leave out the prompt its cache held.
    """
    fake_openai.llama_cpp_timings = llama_cpp_timings
    await _long_talk(hass, fake_openai, 12)

    requests = _turns(fake_openai)
    for request in requests:
        assert len(json.dumps(_history(request), separators=(",", ":"))) <= BUDGET_CHARS
    last = _history(requests[-1])
    assert last, "the newest exchanges are still sent"
    assert last[-2]["content"].startswith("question 10")
    assert last[-1]["content"].startswith("Answer 10")
    assert not any(m["content"].startswith("question 0 ") for m in last)


async def test_the_summary_counts_against_the_token_budget(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Sent with the system prompt, a long summary leaves less room: both fit the budget."""
    await _long_talk(hass, fake_openai, 7)
    fake_openai.reply(LONG_RECAP)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)
    await _long_talk(hass, fake_openai, 6)

    summary = f"\n\nSummary of the earlier conversation: {LONG_RECAP}"
    requests = [r for r in _turns(fake_openai) if r.system_prompt.endswith(summary)]
    assert len(requests) == 6
    for request in requests:
        history = len(json.dumps(_history(request), separators=(",", ":")))
        assert history + len(summary) <= BUDGET_CHARS
    last = _history(requests[-1])
    assert last, "the newest exchange is still sent"
    assert last[-1]["content"].startswith("Answer 4")


async def test_a_summary_is_made_while_idle_and_sent_ahead_of_the_history(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """What left the history is summarized once the session is quiet, then sent first."""
    kitchen = await _introduce_ada_and_talk(hass, fake_openai, 6)
    assert not any(_is_summary(r) for r in fake_openai.chat_requests)

    fake_openai.reply(RECAP)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)
    summaries = [r for r in fake_openai.chat_requests if _is_summary(r)]
    assert len(summaries) == 1
    assert "my name is Ada and my locker is 42" in summaries[0].messages[1]["content"]
    assert "tools" not in summaries[0].body

    fake_openai.reply("Your locker is 42.")
    await converse(hass, text="what is my locker number", device_id=kitchen)
    system = _turns(fake_openai)[-1].system_prompt
    assert system.endswith(f"Summary of the earlier conversation: {RECAP}")


async def test_a_turn_abandons_a_summary_in_progress(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The summary never delays a turn: a turn arriving mid-summary cancels it."""
    kitchen = await _long_talk(hass, fake_openai, 7)
    fake_openai.slow(30)  # the summary request hangs
    freezer.tick(timedelta(seconds=SUMMARY_IDLE_DELAY + 1))
    async_fire_time_changed(hass)
    # The clock is frozen: yield to the loop (which serves the sockets) until it arrives.
    for _ in range(10_000):
        if any(_is_summary(r) for r in fake_openai.chat_requests):
            break
        await asyncio.sleep(0)
    assert any(_is_summary(r) for r in fake_openai.chat_requests)

    fake_openai.reply("Right away.")
    result = await converse(hass, text="turn on the radio", device_id=kitchen)

    assert result.response.speech["plain"]["speech"] == "Right away."
    assert "Summary of the earlier conversation" not in _turns(fake_openai)[-1].system_prompt
    fake_openai.reply(RECAP)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)
    fake_openai.reply("OK.")
    await converse(hass, text="thanks", device_id=kitchen)
    assert RECAP in _turns(fake_openai)[-1].system_prompt


async def test_the_summary_survives_a_restart_and_a_clear_deletes_it(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The summary is stored with its session, used after a restart, and cleared with it."""
    kitchen = await _long_talk(hass, fake_openai, 7)
    fake_openai.reply(RECAP)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)

    async with async_restarted(hass, setup_integration) as (hass2, entry):
        await setup_entry(hass2, entry)
        fake_openai.reply("It is 42.")
        result = await converse(hass2, text="what is my locker number", device_id=kitchen)
        assert RECAP in _turns(fake_openai)[-1].system_prompt
        assert RECAP in stored_text(hass2, entry.entry_id)

        await hass2.services.async_call(
            DOMAIN,
            SERVICE_CLEAR_CONVERSATION,
            {"conversation_id": result.conversation_id},
            blocking=True,
        )
        assert RECAP not in stored_text(hass2, entry.entry_id)


@pytest.mark.parametrize("agent_options", [{**OPTIONS, CONF_HISTORY_SUMMARY: False}])
async def test_summaries_can_be_turned_off(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """With the option off, what leaves the history is simply gone; no summary request."""
    await _long_talk(hass, fake_openai, 8)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)

    assert not any(_is_summary(r) for r in fake_openai.chat_requests)


async def test_a_backlog_of_more_than_twenty_exchanges_is_summarized_whole_in_order(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Thirty long turns without a quiet spell: every exchange that left is summarized.

    They are folded twenty at a time, oldest first, each request building on the summary
    the one before made.
    """
    kitchen = await _long_talk(hass, fake_openai, 30)
    first_kept = _oldest_question_kept(fake_openai)
    fake_openai.reply("Summary one.")
    fake_openai.reply("Summary two.")
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)
    fake_openai.reply("OK.")
    await converse(hass, text="thanks", device_id=kitchen)

    assert first_kept > SUMMARY_CHUNK  # more left than one request folds
    asked = _summary_questions(fake_openai)
    assert len(asked) == 2
    assert asked[0].count("User: question") == SUMMARY_CHUNK
    assert asked[0].startswith("Summary so far: (none)")
    assert asked[1].startswith("Summary so far: Summary one.")
    assert _summarized(asked) == list(range(first_kept))
    assert _turns(fake_openai)[-1].system_prompt.endswith("earlier conversation: Summary two.")


@pytest.mark.parametrize(
    "agent_options", [{**OPTIONS, CONF_HISTORY_MAX_TOKENS: MAX_HISTORY_MAX_TOKENS}]
)
async def test_a_quarter_of_a_hundred_turn_history_is_summarized_whole(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """At `history_max_turns` 100 the 25 exchanges that leave at once all reach the summary."""
    kitchen = make_device(hass, "Kitchen satellite")
    for n in range(101):
        await converse(hass, text=f"question {n}", device_id=kitchen)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY + 1)

    assert _summarized(_summary_questions(fake_openai)) == list(range(25))


@pytest.mark.parametrize("how", ["reload", "restart"])
async def test_a_summary_interrupted_by_a_reload_or_restart_is_made_after_it(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    how: str,
) -> None:
    """What waits for the summary (over twenty exchanges) is stored and summarized later."""
    kitchen = await _introduce_ada_and_talk(hass, fake_openai, 30)
    first_kept = _oldest_question_kept(fake_openai)
    await _idle(hass, freezer, SUMMARY_IDLE_DELAY - 10)  # not quiet long enough yet

    async with contextlib.AsyncExitStack() as stack:
        if how == "reload":
            assert await hass.config_entries.async_reload(setup_integration.entry_id)
            hass2 = hass
        else:
            hass2, entry = await stack.enter_async_context(async_restarted(hass, setup_integration))
            await setup_entry(hass2, entry)
        await hass2.async_block_till_done(wait_background_tasks=True)  # transcripts read
        fake_openai.reply("Summary one.")
        fake_openai.reply(RECAP)
        await _idle(hass2, freezer, SUMMARY_IDLE_DELAY + 1)
        asked = _summary_questions(fake_openai)
        assert len(asked) == 2
        assert "User: my name is Ada and my locker is 42" in asked[0]
        assert _summarized(asked) == list(range(first_kept))

        fake_openai.reply("Your locker is 42.")
        await converse(hass2, text="what is my locker number", device_id=kitchen)
        assert _turns(fake_openai)[-1].system_prompt.endswith(RECAP)


def _oldest_question_kept(fake: FakeOpenAI) -> int:
    """Return the number of the oldest question still in the last turn's history."""
    history = _history(_turns(fake)[-1])
    return min(int(m["content"].split()[1]) for m in history if m["role"] == "user")


def _summary_questions(fake: FakeOpenAI) -> list[str]:
    """Return what each summary request asked the model to fold, in order."""
    return [r.messages[1]["content"] for r in fake.chat_requests if _is_summary(r)]


def _summarized(asked: list[str]) -> list[int]:
    """Return the numbers of the questions the summary requests held, in order."""
    return [int(line.split()[2]) for text in asked for line in _user_lines(text)]


def _user_lines(request: str) -> list[str]:
    """Return the user lines of a summary request, in order."""
    return [line for line in request.splitlines() if line.startswith("User: question")]
