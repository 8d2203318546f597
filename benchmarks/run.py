"""Run every benchmark and print one markdown table: Home Agent against the naive plan.

    scripts/bench                     (sets up .venv first when it is missing)
    .venv/bin/python -m benchmarks.run

Each measurement runs in its own real Home Assistant (pytest-homeassistant-custom-component's
test instance, running state, registries loaded); Stores write real files to a temporary
directory. See benchmarks/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
import logging
import os
import platform
import time
from typing import Any

from homeassistant.const import __version__ as HA_VERSION

from custom_components.home_agent.const import SAVE_DELAY
from custom_components.home_agent.delegate_conversations import KEEP_ALIVE_INTERVAL

from . import delegate, household, memory, pipeline, restore, sensors, streaming, turns, writes
from .fake_endpoints import REPLY
from .harness import Spread, home_assistant

TURNS = 20_000
NAIVE_TURNS = 2_000
NAIVE_BUDGET = 4.0
TARGET_TURN_MICROSECONDS = 20.0
TARGET_RESTORE_MILLISECONDS = 150.0
TARGET_BLOCK_MILLISECONDS = 50.0
PIPELINE_TURNS = 300
TARGET_PIPELINE_MILLISECONDS = 2.0
STREAMING_RUNS = 7
DELEGATED_SESSIONS = 10_000
TARGET_KEEP_ALIVE_MS_PER_MINUTE = 5.0
TARGET_FIRST_TEXT_AFTER_CHUNK_MILLISECONDS = 20.0
TARGET_EVIDENCE = 0.95
TARGET_NOTE_TOKENS = 300
TARGET_RECALL_TOKENS = 150
TARGET_RECALL_MILLISECONDS = 2.0
TARGET_LOAD_MILLISECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table."""

    measurement: str
    home_agent: str
    naive: str
    ratio: str
    target: str = "—"
    met: str = "—"


def _ratio(naive: float, ours: float) -> str:
    """Return how many times the naive figure is Home Agent's."""
    if ours == 0:
        return "—"
    value = naive / ours
    return f"×{value:,.0f}" if value >= 10 else f"×{value:.2f}"


def _met(ok: bool) -> str:
    """Return the table's verdict."""
    return "yes" if ok else "**no**"


def _spread(spread: Spread) -> str:
    """Format a median and p99 in microseconds."""
    return f"{spread.median:,.1f} / {spread.p99:,.1f} µs"


async def _async_turn_rows() -> list[Row]:
    """Measure (a), the per-turn session overhead, at 10, 1,000 and 10,000 active sessions."""
    rows = []
    for sessions in (10, 1_000, 10_000):
        async with home_assistant() as hass:
            ours = await turns.async_home_agent(hass, sessions, TURNS)
        async with home_assistant() as hass:
            naive = await turns.async_naive(hass, sessions, NAIVE_TURNS, NAIVE_BUDGET)
        final = sessions == 10_000
        rows.append(
            Row(
                f"a. session overhead per turn, {sessions:,} sessions (median / p99)",
                _spread(ours),
                _spread(naive),
                _ratio(naive.median, ours.median),
                f"≤ {TARGET_TURN_MICROSECONDS:.0f} µs median" if final else "—",
                _met(ours.median <= TARGET_TURN_MICROSECONDS) if final else "—",
            )
        )
    return rows


async def _async_write_rows() -> list[Row]:
    """Measure (b), writes and bytes for 1,000 turns over a simulated minute."""
    ours = await writes.async_home_agent()
    naive = await writes.async_naive()
    allowed = writes.writes_allowed()
    label = f"{writes.TURNS:,} turns from {writes.DEVICES} devices in a simulated minute"
    return [
        Row(
            f"b. storage writes, {label}",
            f"{ours.count:,}",
            f"{naive.count:,}",
            _ratio(naive.count, ours.count),
            f"≤ {allowed} (one per {SAVE_DELAY:.0f} s save delay + the last)",
            _met(ours.count <= allowed),
        ),
        Row(
            "b. bytes written, same turns",
            f"{ours.bytes / 1e6:,.2f} MB",
            f"{naive.bytes / 1e6:,.2f} MB",
            _ratio(naive.bytes, ours.bytes),
        ),
    ]


async def _async_restore_rows() -> list[Row]:
    """Measure (c), the start-up restore of 10,000 sessions and the memory they keep."""
    async with home_assistant() as hass:
        naive = await restore.async_naive(hass)
    rows = []
    # (sessions, exchanges) -> the measurement, so a size is restored in one run only.
    measured: dict[tuple[int, int], restore.Restore] = {}
    for exchanges in restore.EXCHANGES:
        async with home_assistant() as hass:
            ours = measured[restore.SESSIONS, exchanges] = await restore.async_home_agent(
                hass, exchanges
            )
        what = f"{restore.SESSIONS:,} sessions, {exchanges} exchanges each"
        if exchanges:
            what += " (the naive plan stores none)"
        rows += [
            Row(
                f"c. start-up restore (load + timers re-armed, best of {restore.REPEATS}), {what}",
                f"{ours.milliseconds:,.1f} ms",
                f"{naive.milliseconds:,.1f} ms",
                _ratio(naive.milliseconds, ours.milliseconds),
                f"≤ {TARGET_RESTORE_MILLISECONDS:.0f} ms",
                _met(ours.milliseconds <= TARGET_RESTORE_MILLISECONDS),
            ),
            Row(
                f"c. memory per session, {what}",
                f"{ours.bytes_per_session:,.0f} B",
                f"{naive.bytes_per_session:,.0f} B",
                _ratio(naive.bytes_per_session, ours.bytes_per_session),
            ),
            Row(
                f"c. objects the garbage collector walks, per session, {what}",
                f"{ours.objects_per_session:,.1f}",
                f"{naive.objects_per_session:,.1f}",
                "—",
            ),
        ]
    for sessions, exchanges in restore.BLOCK_SIZES:
        if (known := measured.get((sessions, exchanges))) is not None:
            ours = known
        else:
            async with home_assistant() as hass:
                ours = await restore.async_home_agent(hass, exchanges, sessions)
        what = f"{sessions:,} sessions, {exchanges} exchanges each"
        rows += [
            Row(
                f"c. restore until every transcript is attached (best of {restore.REPEATS}), "
                + what,
                f"{ours.complete_milliseconds:,.1f} ms",
                "—",
                "—",
            ),
            Row(
                f"c. largest event-loop block during restore (worst of {restore.REPEATS}), " + what,
                f"{ours.max_block_milliseconds:,.1f} ms",
                "—",
                "—",
                f"≤ {TARGET_BLOCK_MILLISECONDS:.0f} ms",
                _met(ours.max_block_milliseconds <= TARGET_BLOCK_MILLISECONDS),
            ),
            Row(
                f"c. the interpreter's full garbage collections during those restores, {what}",
                f"{ours.full_collections}"
                + (
                    f" (longest {ours.full_collection_milliseconds:,.0f} ms)"
                    if ours.full_collections
                    else ""
                ),
                "—",
                "—",
            ),
            Row(
                "c. largest event-loop block during restore apart from full garbage "
                f"collections (the restore's own steps), {what}",
                f"{ours.max_own_block_milliseconds:,.1f} ms",
                "—",
                "—",
                f"≤ {TARGET_BLOCK_MILLISECONDS:.0f} ms",
                _met(ours.max_own_block_milliseconds <= TARGET_BLOCK_MILLISECONDS),
            ),
        ]
    return rows


async def _async_sensor_rows() -> list[Row]:
    """Measure (f), the set-up of an agent whose sessions have thousands of keys."""
    rows = []
    for keys in sensors.KEYS:
        async with home_assistant() as hass:
            ours = await sensors.async_home_agent(hass, keys)
        rows += [
            Row(
                f"g. set-up until every key's session sensor exists, {keys:,} keys "
                "(first / reload)",
                f"{ours.first_seconds:,.2f} / {ours.reload_seconds:,.2f} s",
                "—",
                "—",
            ),
            Row(
                f"g. largest event-loop block, same set-ups, {keys:,} keys (first / reload)",
                f"{ours.first_block_milliseconds:,.0f} / {ours.reload_block_milliseconds:,.0f} ms",
                "—",
                "—",
            ),
            Row(
                "g. same, apart from the interpreter's full garbage collections, "
                f"{keys:,} keys (first / reload)",
                f"{ours.first_own_block_milliseconds:,.0f} / "
                f"{ours.reload_own_block_milliseconds:,.0f} ms",
                "—",
                "—",
            ),
        ]
    return rows


async def _async_pipeline_rows() -> tuple[list[Row], list[str]]:
    """Measure (d), Home Agent's own overhead per turn through a real pipeline run."""
    times = await pipeline.async_measure(PIPELINE_TURNS)
    naive = times.overhead(pipeline.NAIVE)
    rows = []
    for agent_id, what in (
        (pipeline.HOME_AGENT, "default Assist API"),
        (pipeline.HOME_AGENT_NO_TOOLS, "no LLM API"),
    ):
        ours = times.overhead(agent_id)
        rows.append(
            Row(
                f"d. own overhead per pipeline turn, {what} (median)",
                f"{ours:,.2f} ms",
                f"{naive:,.2f} ms",
                _ratio(naive, ours),
                f"≤ {TARGET_PIPELINE_MILLISECONDS:.0f} ms",
                _met(ours <= TARGET_PIPELINE_MILLISECONDS),
            )
        )
    medians = times.medians
    details = [
        f"d. medians of {times.turns} interleaved turns: "
        + ", ".join(
            f"{name} {medians[key]:.2f} ms"
            for name, key in (
                ("Home Agent (Assist API)", pipeline.HOME_AGENT),
                ("Home Agent (no LLM API)", pipeline.HOME_AGENT_NO_TOOLS),
                ("naive plan (Assist API)", pipeline.NAIVE),
                ("echo agent (the pipeline itself)", pipeline.ECHO),
                ("bare HTTP round trip", pipeline.ROUND_TRIP),
            )
        )
        + "; overhead = agent turn - echo turn - round trip."
    ]
    return rows, details


async def _async_delegate_rows() -> tuple[list[Row], list[str]]:
    """Measure (h), keeping delegates' conversations, and a delegated turn's overhead."""
    kept = await delegate.async_measure_keep_alive(DELEGATED_SESSIONS)
    turns = await delegate.async_measure_delegated_turns(PIPELINE_TURNS)
    what = f"{kept.sessions:,} active sessions, each with its delegate's conversation"
    rows = [
        Row(
            f"h. loop time per minute keeping delegates' conversations, {what}",
            f"{kept.per_minute:,.2f} ms",
            "—",
            "—",
            f"≤ {TARGET_KEEP_ALIVE_MS_PER_MINUTE:.0f} ms",
            _met(kept.per_minute <= TARGET_KEEP_ALIVE_MS_PER_MINUTE),
        ),
        Row(
            f"h. largest event-loop block doing so, {what}",
            f"{kept.largest_block:,.1f} ms",
            "—",
            "—",
            f"≤ {TARGET_BLOCK_MILLISECONDS:.0f} ms",
            _met(kept.largest_block <= TARGET_BLOCK_MILLISECONDS),
        ),
        Row(
            "h. own overhead per delegated pipeline turn (median)",
            f"{turns.overhead:,.2f} ms",
            "—",
            "—",
            f"≤ {TARGET_PIPELINE_MILLISECONDS:.0f} ms",
            _met(turns.overhead <= TARGET_PIPELINE_MILLISECONDS),
        ),
    ]
    details = [
        f"h. keeping them: a round of marking them used {kept.keep_alive:,.1f} ms every "
        f"{KEEP_ALIVE_INTERVAL.total_seconds() / 60:.0f} minutes, Home Assistant's "
        f"sweep over its chat sessions {kept.sweep:,.1f} ms every 5 minutes (best of 5 each); "
        f"a delegated turn: medians of {turns.turns} interleaved pipeline turns of an echo "
        f"agent that answers in its chat log, directly {turns.direct:.2f} ms, through Home "
        f"Agent {turns.delegated:.2f} ms."
    ]
    return rows, details


def _ms(seconds: float | None) -> str:
    """Format a time in milliseconds; None is "no text before the reply was complete"."""
    return "none before the end" if seconds is None else f"{seconds * 1000:,.0f} ms"


async def _async_streaming_rows() -> tuple[list[Row], list[str]]:
    """Measure (f), time to first text and to the complete reply, beside core ollama."""
    times = await streaming.async_measure(STREAMING_RUNS)
    peer = times[streaming.OLLAMA]
    assert peer.first_text is not None, "the core ollama agent streamed no text"
    rows = []
    for row, what in (
        (streaming.HOME_AGENT_STREAMING, "streaming endpoint"),
        (streaming.HOME_AGENT_OFF, "endpoint ignores `stream` (streaming off)"),
    ):
        ours = times[row]
        # The endpoint's own first chunk: Home Agent's server, on the same clock.
        target = ours.first_chunk + TARGET_FIRST_TEXT_AFTER_CHUNK_MILLISECONDS / 1000
        ok = ours.first_text is not None and ours.first_text <= min(target, peer.first_text)
        rows += [
            Row(
                f"f. time to first text through a pipeline, {what} (median; second column: "
                "core ollama agent)",
                _ms(ours.first_text),
                _ms(peer.first_text),
                "—" if ours.first_text is None else _ratio(peer.first_text, ours.first_text),
                f"≤ endpoint's first chunk + {TARGET_FIRST_TEXT_AFTER_CHUNK_MILLISECONDS:.0f} ms"
                " and ≤ core ollama's"
                if row == streaming.HOME_AGENT_STREAMING
                else "—",
                _met(ok) if row == streaming.HOME_AGENT_STREAMING else "—",
            ),
            Row(
                f"f. time to the complete reply (intent-end), {what} (median; second column: "
                "core ollama agent)",
                _ms(ours.complete),
                _ms(peer.complete),
                _ratio(peer.complete, ours.complete),
            ),
        ]
    details = [
        f"f. {streaming.schedule()}; {STREAMING_RUNS} interleaved runs each after one warm-up, "
        "over a real websocket (assist_pipeline/run, intent stage, a device id); times from "
        "sending the run to the event reaching the client. Endpoint's first chunk at "
        + ", ".join(f"{row} {times[row].first_chunk * 1000:,.0f} ms" for row in streaming.ROWS)
        + ". Asked for a streamed reply: "
        + ", ".join(
            f"{row} {'yes' if times[row].asked_to_stream else 'no'}" for row in streaming.ROWS
        )
        + ". Streamed text equals the reply: "
        + ", ".join(
            f"{row} {'yes' if times[row].streamed_text == REPLY else 'no'}"
            for row in streaming.ROWS
        )
        + "."
    ]
    return rows, details


def _pair(values: tuple[str, str]) -> str:
    """Format the two baselines' figures: ChatGPT-style; aradlein-style."""
    return "; ".join(values)


async def _async_memory_rows() -> tuple[list[Row], list[str]]:
    """Measure (i), household memory: right and cheap, beside two baselines."""
    ours = await memory.async_run_household(memory.HOME_AGENT)
    raw = await memory.async_run_household(memory.HOME_AGENT, raw_queries=True)
    chat = await memory.async_run_household(memory.ALL_NOTES)
    top = await memory.async_run_household(memory.TOP_FIVE)
    times = await memory.async_timings()

    def both(value: Any) -> str:
        return _pair((value(chat), value(top)))

    def share(run: memory.HouseholdRun) -> str:
        return f"{run.answered / run.questions:.1%} ({run.answered}/{run.questions})"

    def per_turn(run: memory.HouseholdRun) -> str:
        if run.memory_requests == 0:
            return "0 (written in the turn)"
        return f"{run.memory_requests:,} for {run.expired_sessions} sessions, {run.turns} turns"

    rows = [
        Row(
            "i. evidence recall: the answering note is in the system prompt's notes or one "
            "recall result",
            share(ours),
            both(share),
            "—",
            f"≥ {TARGET_EVIDENCE:.0%}",
            _met(ours.answered / ours.questions >= TARGET_EVIDENCE),
        ),
        Row(
            f"i. questions about an updated fact given an earlier version too "
            f"(of {ours.updated_questions})",
            f"{ours.stale}",
            both(lambda run: f"{run.stale}"),
            "—",
            "0",
            _met(ours.stale == 0),
        ),
        Row(
            f"i. requests holding a private note of someone other than the speaker "
            f"(of {ours.requests:,} requests)",
            f"{ours.private_leaks}",
            both(lambda run: f"{run.private_leaks:,}"),
            "—",
            "0",
            _met(ours.private_leaks == 0),
        ),
        Row(
            "i. forgotten notes in a later prompt, recall result or session / in the bytes "
            "under `.storage`",
            f"{ours.forgotten_leaks} / {ours.forgotten_on_disk}",
            both(lambda run: f"{run.forgotten_leaks} / {run.forgotten_on_disk}"),
            "—",
            "0 / 0",
            _met(ours.forgotten_leaks == ours.forgotten_on_disk == 0),
        ),
        Row(
            "i. tokens the notes add to a session's system prompt, largest / mean "
            "(3 characters a token)",
            f"{ours.max_note_tokens} / {ours.mean_note_tokens:.0f}",
            both(lambda run: f"{run.max_note_tokens:,} / {run.mean_note_tokens:,.0f}"),
            _ratio(chat.max_note_tokens, ours.max_note_tokens),
            f"≤ {TARGET_NOTE_TOKENS}",
            _met(ours.max_note_tokens <= TARGET_NOTE_TOKENS),
        ),
        Row(
            f"i. prompt tokens a prefix-caching server evaluates again on follow-ups "
            f"(sessions whose system prompt changed; {ours.follow_ups} follow-ups)",
            f"{ours.reevaluated_tokens:,} ({ours.changed_prompts})",
            both(lambda run: f"{run.reevaluated_tokens:,} ({run.changed_prompts})"),
            "—",
            "0",
            _met(ours.reevaluated_tokens == 0 and ours.changed_prompts == 0),
        ),
        Row(
            "i. largest recall result",
            f"{ours.max_recall_tokens} tokens",
            both(lambda run: f"{run.max_recall_tokens}" if run.max_recall_tokens else "—"),
            "—",
            f"≤ {TARGET_RECALL_TOKENS} tokens",
            _met(ours.max_recall_tokens <= TARGET_RECALL_TOKENS),
        ),
        Row(
            "i. model requests for memory: per expired session / of cleared sessions",
            f"{'/'.join(map(str, ours.extraction_counts))} / {ours.requests_of_cleared}",
            both(per_turn),
            "—",
            "exactly 1 / 0",
            _met(ours.extraction_counts == [1] and ours.requests_of_cleared == 0),
        ),
        Row(
            f"i. one recall (search, result budget, use count), {memory.RECALL_NOTES:,} notes "
            "(median / p99)",
            f"{times.recall_median_ms:.3f} / {times.recall_p99_ms:.3f} ms",
            "—",
            "—",
            f"≤ {TARGET_RECALL_MILLISECONDS:.0f} ms",
            _met(times.recall_p99_ms <= TARGET_RECALL_MILLISECONDS),
        ),
        Row(
            f"i. loading {memory.LOAD_NOTES:,} notes at start-up (best of {memory.REPEATS}) / "
            "largest event-loop block",
            f"{times.load_ms:.1f} / {times.load_block_ms:.1f} ms",
            "—",
            "—",
            f"≤ {TARGET_LOAD_MILLISECONDS:.0f} / ≤ {TARGET_BLOCK_MILLISECONDS:.0f} ms",
            _met(
                times.load_ms <= TARGET_LOAD_MILLISECONDS
                and times.load_block_ms <= TARGET_BLOCK_MILLISECONDS
            ),
        ),
    ]
    details = [
        f"i. the household of benchmarks/household.py ({len(household.PEOPLE)} people and "
        f"a guest, {len(household.SATELLITES)} satellites, phones): {ours.turns} turns in "
        f"{ours.expired_sessions} sessions ended by expiry and {ours.cleared_sessions} cleared, "
        f"{ours.requests} model requests; second column: {memory.ALL_NOTES} / {memory.TOP_FIVE}. "
        f"With recall searching the raw question instead of the model's keywords, evidence "
        f"recall is {share(raw)}. The first search after start-up builds the index of "
        f"{memory.RECALL_NOTES:,} notes in {times.index_ms:.1f} ms (once)."
    ]
    return rows, details


def _table(rows: list[Row]) -> str:
    """Render the rows as a markdown table."""
    lines = [
        "| measurement | Home Agent | naive plan | naive ÷ Home Agent | target | met? |",
        "|---|---:|---:|---:|---|---|",
    ]
    lines += [
        f"| {r.measurement} | {r.home_agent} | {r.naive} | {r.ratio} | {r.target} | {r.met} |"
        for r in rows
    ]
    return "\n".join(lines)


async def async_main(only: str | None = None) -> None:
    """Measure everything (or one group of rows: `only`) and print the table."""
    # Only errors: a test instance has no ffmpeg and loads an untested custom integration.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("haffmpeg").setLevel(logging.CRITICAL)
    # Core ollama's ai_task platform loads camera, which warns when libturbojpeg is missing.
    logging.getLogger("homeassistant.components.camera").setLevel(logging.CRITICAL)
    started = time.monotonic()
    load = os.getloadavg()[0]
    rows: list[Row] = []
    details: list[str] = []
    if only in (None, "turns"):
        rows += await _async_turn_rows()
    if only in (None, "writes"):
        rows += await _async_write_rows()
    if only in (None, "restore"):
        rows += await _async_restore_rows()
    if only in (None, "pipeline"):
        pipeline_rows, details = await _async_pipeline_rows()
        rows += pipeline_rows
    if only in (None, "sensors"):
        rows += await _async_sensor_rows()
    if only in (None, "streaming"):
        streaming_rows, streaming_details = await _async_streaming_rows()
        rows += streaming_rows
        details += streaming_details
    if only in (None, "delegate"):
        delegate_rows, delegate_details = await _async_delegate_rows()
        rows += delegate_rows
        details += delegate_details
    if only in (None, "memory"):
        memory_rows, memory_details = await _async_memory_rows()
        rows += memory_rows
        details += memory_details
    print(
        f"Home Assistant {HA_VERSION}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs (load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end); Stores write real files to a temporary directory."
    )
    print()
    print(_table(rows))
    print()
    for line in details:
        print(line)
    print(f"Measured in {time.monotonic() - started:.0f} s.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Measure Home Agent against the naive plan.")
    parser.add_argument(
        "--only",
        choices=(
            "turns",
            "writes",
            "restore",
            "pipeline",
            "sensors",
            "streaming",
            "delegate",
            "memory",
        ),
        help="measure one group of rows (a, b, c, d, f, g, h or i: household memory)",
    )
    asyncio.run(async_main(parser.parse_args().only))
