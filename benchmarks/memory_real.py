"""(i, real model) How many of 20 household notes a small real model answers from.

    scripts/bench --real-model --memory

llama-cpp-python's server with SmolLM2-135M-Instruct (scripts/local-model), Home Agent's
`openai` backend with household memory on and no Home Assistant LLM API (the memory tools
only). 20 facts of the scripted household (`benchmarks/household.py`: where things are
kept) are planted with the `home_agent.remember` action; then each is asked about in a
session of its own, through a real assist pipeline run of a satellite, and the answer counts
when it names the place. Reported as measured: what it shows is the model, given the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS,
    CONF_MODEL,
    DOMAIN,
)
from custom_components.home_agent.notes_extraction import EXTRACTION_INSTRUCTIONS

from .household import build
from .real_model import MODEL, Recorder, async_real_home
from .websocket import async_connect

FACTS = 20
AGENT = "conversation.home_agent_memory"
# Every planted note fits the prompt (20 notes of about 15 tokens each).
PROMPT_TOKENS = 600
# Words of a place that say nothing about it.
_FILLER = {"the", "in", "by", "of", "under", "top", "room", "box"}


@dataclass(frozen=True, slots=True)
class Answer:
    """One question, the model's answer, and whether it names the place."""

    question: str
    place: str
    said: str

    @property
    def recalled(self) -> bool:
        """Tell whether the answer names the place (any of its telling words)."""
        words = {w for w in self.place.lower().split() if w not in _FILLER}
        return any(word in self.said.lower() for word in words)


async def async_measure(log_path: Any) -> tuple[list[Answer], int]:
    """Plant the notes, ask about each; return the answers and the notes in the prompt."""
    facts = [fact for fact in build().facts if fact.note.startswith("The ")][:FACTS]
    answers: list[Answer] = []
    async with async_real_home(log_path) as real:
        hass, recorder = real.hass, real.recorder
        await _async_agent(hass, recorder.base_url)
        for fact in facts:
            await hass.services.async_call(DOMAIN, "remember", {"text": fact.note}, blocking=True)
        owner = MockConfigEntry(domain="bench")
        owner.add_to_hass(hass)
        async with async_connect(hass, real.port) as websocket:
            pipeline_id = await websocket.create_pipeline(AGENT)
            for number, fact in enumerate(facts):
                run = await websocket.run_text(
                    pipeline_id, fact.question, _satellite(hass, owner, number)
                )
                end = next(e for e in run.events if e.type == "intent-end")
                said = end.data["intent_output"]["response"]["speech"]["plain"]["speech"]
                place = fact.note.rstrip(".").split(" in the ", 1)[1]
                answers.append(Answer(fact.question, place, said))
                print(f"{fact.question!r}: {said[:80]!r}", flush=True)
        await recorder.settled()
        in_prompt = _notes_in_prompt(recorder, facts)
    return answers, in_prompt


def _notes_in_prompt(recorder: Recorder, facts: list[Any]) -> int:
    """Return how many planted notes every question's system prompt held (the fewest)."""
    return min(
        sum(1 for fact in facts if fact.note in exchange.body["messages"][0]["content"])
        for exchange in recorder.exchanges
        # Not a warm-up, nor an extraction (whose instructions are its own).
        if exchange.body.get("max_tokens") != 1
        and exchange.body["messages"][0]["content"] != EXTRACTION_INSTRUCTIONS
    )


async def _async_agent(hass: HomeAssistant, base_url: str) -> None:
    """Add Home Agent with household memory on and only the memory tools."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent memory",
        data={
            CONF_BACKEND: "openai",
            CONF_BASE_URL: base_url,
            CONF_API_KEY: "local",
            CONF_MODEL: MODEL,
            CONF_LLM_HASS_API: [],
        },
        options={CONF_MEMORY: True, CONF_MEMORY_PROMPT_TOKENS: PROMPT_TOKENS},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _satellite(hass: HomeAssistant, owner: MockConfigEntry, number: int) -> str:
    """Return a new device (one session per question)."""
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=owner.entry_id, identifiers={("bench", f"satellite {number}")}
    )
    return device.id


def report(answers: list[Answer], in_prompt: int) -> str:
    """Render the row as markdown."""
    recalled = sum(a.recalled for a in answers)
    return "\n".join(
        [
            "| measurement | Home Agent | target | met? |",
            "|---|---:|---|---|",
            f"| i. real model ({MODEL}): planted notes in every prompt / questions answered "
            f"with the right place | {in_prompt} of {len(answers)} / {recalled} of "
            f"{len(answers)} | reported as measured | — |",
        ]
    )
