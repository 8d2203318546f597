"""(j) Speak sooner: a session's first turn with and without the warm-up, on a real model.

    scripts/bench --real-model --warm-up [RUNS]   (7 by default)

llama-cpp-python's server with SmolLM2-135M-Instruct (scripts/local-model), Home Agent's
`openai` backend with the Assist API and the dev instance's demo devices exposed, turns
through a real assist pipeline (websocket, intent stage) for a new satellite each run (a
session of its own, in the kitchen). Each run:

1. another request to the server, with other instructions (another agent's, a summary's):
   its prompt cache now holds that, as after a quiet spell on a server that other things
   use (or one that unloaded the model);
2. a new satellite in the kitchen (a new session): with the warm-up, its `assist_satellite`
   entity starts listening 1.5 s before the words arrive (as speech-to-text would take);
   without, no satellite event at all;
3. the same words again on the same satellite: a follow-up, its prefix cached.

Interleaved runs with and without, after one round of each that is not counted. Timed from
the words reaching Home Agent (the pipeline's intent-start) to its first streamed text; the
server's log says how many prompt tokens each request evaluated.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import statistics
from typing import Any

from aiohttp import ClientSession
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
)
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .real_model import (
    Recorder,
    _async_home_agent,
    _async_setup_demo,
    async_real_home,
)
from .websocket import TimedRun, Websocket, async_connect

HEAD_START = 1.5
# A longer speech too: the prompt is hidden only when the speech outlasts its reading.
LONG_HEAD_START = 3.0
WORDS = "Turn on the kitchen light."
EVICTING_REQUEST = {
    "messages": [
        {"role": "system", "content": "You keep the memory of a conversation in a few words."},
        {"role": "user", "content": "Hello."},
    ],
    "max_tokens": 1,
}
TARGET_RATIO = 1.2


@dataclass(slots=True)
class Measured:
    """The first turn and its follow-up, with or without the warm-up: times and tokens."""

    first_text: list[float] = field(default_factory=list)
    follow_up_text: list[float] = field(default_factory=list)
    evaluated: list[int] = field(default_factory=list)
    follow_up_evaluated: list[int] = field(default_factory=list)
    warm_ups: list[int] = field(default_factory=list)
    warm_up_evaluated: list[int] = field(default_factory=list)
    # The server's time to read the turn's prompt, and a warm-up's, in ms (its log).
    prompt_ms: list[float] = field(default_factory=list)
    warm_up_prompt_ms: list[float] = field(default_factory=list)


async def _async_evict(upstream: str) -> None:
    """Have the server evaluate a prompt of other instructions (not through Home Agent)."""
    async with (
        ClientSession() as http,
        http.post(f"{upstream}/v1/chat/completions", json=EVICTING_REQUEST) as response,
    ):
        response.raise_for_status()
        await response.read()


def _first_text_after_start(run: TimedRun) -> float:
    """Return the seconds from the words reaching the agent to its first streamed text."""
    start = next(e.at for e in run.events if e.type == "intent-start")
    first = next(
        (
            e.at
            for e in run.events
            if e.type == "intent-progress" and (e.data.get("chat_log_delta") or {}).get("content")
        ),
        None,
    )
    if first is None:  # nothing streamed: the whole reply came at once
        first = next(e.at for e in run.events if e.type == "intent-end")
    return first - start


class _Home:
    """New satellites in an area, answered by one pipeline (the preferred one)."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare the areas and the owner of the satellites' devices."""
        self._hass = hass
        self._owner = MockConfigEntry(domain="bench")
        self._owner.add_to_hass(hass)
        self._areas = {name: ar.async_get(hass).async_create(name).id for name in ("Kitchen",)}
        self._count = 0

    def satellite(self, area: str) -> tuple[str, str]:
        """Return a new satellite (entity id, device id) in an area."""
        self._count += 1
        name = f"{area} satellite {self._count}"
        device = dr.async_get(self._hass).async_get_or_create(
            config_entry_id=self._owner.entry_id, identifiers={("bench", name)}, name=name
        )
        dr.async_get(self._hass).async_update_device(device.id, area_id=self._areas[area])
        entity = er.async_get(self._hass).async_get_or_create(
            "assist_satellite", "bench", name, device_id=device.id
        )
        self._hass.states.async_set(entity.entity_id, "idle")
        return entity.entity_id, device.id


async def _async_run(
    hass: HomeAssistant,
    websocket: Websocket,
    recorder: Recorder,
    *,
    upstream: str,
    pipeline_id: str,
    home: _Home,
    warm: bool,
    head_start: float,
    into: Measured | None,
) -> None:
    """One run: evict the cache, a new kitchen session's first turn, then its follow-up."""
    await _async_evict(upstream)
    satellite, device = home.satellite("Kitchen")
    before = len(recorder.exchanges)
    if warm:
        hass.states.async_set(satellite, "listening")
    await asyncio.sleep(head_start)
    first = await websocket.run_text(pipeline_id, WORDS, device)
    await recorder.settled()
    first_requests = recorder.exchanges[before:]
    before = len(recorder.exchanges)
    follow_up = await websocket.run_text(pipeline_id, WORDS, device)
    await recorder.settled()
    follow_up_requests = recorder.exchanges[before:]
    hass.states.async_set(satellite, "idle")
    if into is None:
        return
    warm_ups = [e for e in first_requests if e.body.get("max_tokens") == 1]
    turns = [e for e in first_requests if e.body.get("max_tokens") != 1]
    into.first_text.append(_first_text_after_start(first))
    into.follow_up_text.append(_first_text_after_start(follow_up))
    into.evaluated.append(sum(e.evaluated or 0 for e in turns))
    into.follow_up_evaluated.append(sum(e.evaluated or 0 for e in follow_up_requests))
    into.warm_ups.append(len(warm_ups))
    into.warm_up_evaluated.append(sum(e.evaluated or 0 for e in warm_ups))
    into.prompt_ms.append(sum(e.prompt_ms or 0 for e in turns))
    into.warm_up_prompt_ms.extend(e.prompt_ms or 0 for e in warm_ups)


async def async_measure(runs: int, log_path: Any) -> tuple[Measured, Measured, Measured]:
    """Return the runs with the warm-up (1.5 s and 3 s of speech) and without, interleaved."""
    async with async_real_home(log_path) as real:
        await _async_setup_demo(real.hass)
        agent = await _async_home_agent(real.hass, real.recorder.base_url)
        async with async_connect(real.hass, real.port) as websocket:
            return await _async_runs(
                real.hass,
                websocket,
                real.recorder,
                upstream=real.upstream,
                agent=agent,
                runs=runs,
            )


async def _async_runs(
    hass: HomeAssistant,
    websocket: Websocket,
    recorder: Recorder,
    *,
    upstream: str,
    agent: str,
    runs: int,
) -> tuple[Measured, Measured, Measured]:
    """Make the agent's pipeline the preferred one; run one round uncounted, then `runs`."""
    warm, long_warm, cold = Measured(), Measured(), Measured()
    home = _Home(hass)
    pipeline_id = await websocket.create_pipeline(agent)
    await websocket.command(
        {"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline_id}
    )
    for number in range(runs + 1):
        for with_warm_up, head_start, into in (
            (True, HEAD_START, warm),
            (False, HEAD_START, cold),
            (True, LONG_HEAD_START, long_warm),
        ):
            await _async_run(
                hass,
                websocket,
                recorder,
                upstream=upstream,
                pipeline_id=pipeline_id,
                home=home,
                warm=with_warm_up,
                head_start=head_start,
                into=into if number else None,
            )
        print(f"run {number} of {runs} done", flush=True)
    return warm, long_warm, cold


def report(warm: Measured, long_warm: Measured, cold: Measured) -> str:
    """Render the rows as markdown."""
    median = statistics.median
    follow_up = median(warm.follow_up_text + cold.follow_up_text)
    ratio = median(warm.first_text) / follow_up
    long_ratio = median(long_warm.first_text) / follow_up
    rows = [
        "| measurement | with warm-up | without | target | met? |",
        "|---|---:|---:|---|---|",
        f"| j. first turn of a session: words reaching Home Agent → first streamed text "
        f"(median of {len(warm.first_text)}) | {median(warm.first_text) * 1000:,.0f} ms | "
        f"{median(cold.first_text) * 1000:,.0f} ms | ≤ {TARGET_RATIO}× a follow-up's "
        f"({follow_up * 1000:,.0f} ms) | {'yes' if ratio <= TARGET_RATIO else '**no**'} "
        f"({ratio:.2f}×) |",
        f"| j. same, {LONG_HEAD_START:.0f} s of speech before the words "
        f"(median of {len(long_warm.first_text)}) | "
        f"{median(long_warm.first_text) * 1000:,.0f} ms | "
        f"{median(cold.first_text) * 1000:,.0f} ms (1.5 s) | ≤ {TARGET_RATIO}× a follow-up's |"
        f" {'yes' if long_ratio <= TARGET_RATIO else '**no**'} ({long_ratio:.2f}×) |",
        f"| j. same, prompt tokens the server evaluated for the turn's request / its time to "
        f"read them (median) | {median(warm.evaluated):,.0f} / {median(warm.prompt_ms):,.0f} ms"
        f" | {median(cold.evaluated):,.0f} / {median(cold.prompt_ms):,.0f} ms | — | — |",
        f"| j. follow-up with the same words: first streamed text / prompt tokens evaluated "
        f"(median) | {median(warm.follow_up_text) * 1000:,.0f} ms / "
        f"{median(warm.follow_up_evaluated):,.0f} | {median(cold.follow_up_text) * 1000:,.0f} ms"
        f" / {median(cold.follow_up_evaluated):,.0f} | — | — |",
        f"| j. extra requests per first turn (warm-ups) / prompt tokens a warm-up evaluated, "
        f"and its time (median) | {max(warm.warm_ups)} / {median(warm.warm_up_evaluated):,.0f}"
        f" in {median(warm.warm_up_prompt_ms or [0]):,.0f} ms | "
        f"{max(cold.warm_ups)} / — | ≤ 1, and 0 without a satellite event | "
        f"{'yes' if max(warm.warm_ups) <= 1 and max(cold.warm_ups) == 0 else '**no**'} |",
    ]
    return "\n".join(rows)
