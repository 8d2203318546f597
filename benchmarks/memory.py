"""(i) Household memory: right (evidence, privacy, forgetting) and cheap (tokens, requests, time).

The scripted household (`benchmarks/household.py`) is played through real assist pipeline
runs (`PipelineRun` + `PipelineInput`, intent stage, as a satellite's or the websocket's
turn reaches the agent): satellites without a user, each person's phone with their user
(linked to their `person`). The model is the fake OpenAI-compatible server of the tests,
scripted to do what a good model would: call the remember tool when told "remember …",
recall with the topic's keywords when its prompt lacks the answer, update and forget
through recall's ids, and answer extraction requests with the facts the session stated
(updating the kept note it was shown). Sessions end by expiry (a simulated clock) or are
cleared. Every request is kept and scored:

- evidence recall: the note that answers a question is in what the model is given (the
  notes of its system prompt + what its recall returned); for an updated fact only the
  newest version may be there;
- privacy: a person's private note in a request of anyone else; forgetting: a forgotten
  note in a prompt's notes or a recall result after the forget, in any later session's
  request, or in the bytes under `.storage` at the end;
- cost: tokens the notes add to a session's system prompt (estimated at 3 characters per
  token, the cautious ratio Home Agent budgets with), what a prefix-caching server must
  evaluate again on a follow-up because the prompt changed, the largest recall result,
  model requests made for memory (extraction).

The same household and questions run against two baselines in the same harness (their
memory policy in place of Home Agent's, the same scripted model): all notes prepended
unranked and never updated (ChatGPT-style, one memory for the whole household), and
per-turn extraction with the top 5 notes most similar to the raw utterance injected each
turn (aradlein/hass-agent-llm-style, global, at most 100). Recall time with 1,000 notes
and the start-up load of 2,000 notes are measured on their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
import datetime as dt
import gc
import itertools
import json
import logging
from pathlib import Path
import re
import statistics
import time
from typing import Any

from aiohttp.test_utils import unused_port
from homeassistant import loader
from homeassistant.auth.const import GROUP_ID_ADMIN, GROUP_ID_USER
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.home_agent.client import ModelClient
from custom_components.home_agent.const import (
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS,
    CONF_MODEL,
    CONF_SESSION_TIMEOUT,
    DEFAULT_MEMORY_PROMPT_TOKENS,
    DOMAIN,
    SAVE_DELAY,
)
from custom_components.home_agent.metrics import TurnStats
from custom_components.home_agent.notebook import (
    EVERYONE,
    Notebook,
    Viewer,
    async_hold_notebook,
    async_release_notebook,
)
from custom_components.home_agent.notes import Note, Origin
from custom_components.home_agent.notes_api import RecallTool
from custom_components.home_agent.notes_extraction import EXTRACTION_INSTRUCTIONS
from custom_components.home_agent.notes_prompt import NOTES_HEADER, note_tokens, render
from custom_components.home_agent.notes_store import (
    NOTES_KEY,
    Frame,
    NotesSnapshot,
    _write,
    frame_row,
    note_row,
)
from tests.fake_openai import TURN_FACTS, FakeOpenAI, Recorded
from tests.memory.household import prompt_notes
from tests.pipeline_runs import Satellite

from . import household as script
from .harness import Clock, home_assistant, plain_resolver, simulated_clock
from .restore import Ticker

HOME_AGENT = "Home Agent"
ALL_NOTES = "all notes prepended (ChatGPT-style)"
TOP_FIVE = "per-turn extraction + top 5 (aradlein-style)"
AGENT_ID = "conversation.home_agent"
SESSION_TIMEOUT = 3600
TOP_FIVE_MAX_NOTES = 100
RECALL_NOTES = 1000
RECALL_QUERIES = 500
LOAD_NOTES = 2000
REPEATS = 5
START = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
_KEPT = re.compile(r"^(\d+)\. (.*)$", re.M)


@dataclass(slots=True)
class Label:
    """What a request belongs to."""

    kind: str  # "turn" or "extraction"
    session: int
    speaker: str | None
    question: script.Question | None = None
    # Index of the first request of the turn.
    turn: int = 0


@dataclass(slots=True)
class HouseholdRun:
    """The figures of one variant over the whole household."""

    variant: str
    questions: int = 0
    answered: int = 0
    updated_questions: int = 0
    stale: int = 0
    private_leaks: int = 0
    forgotten_leaks: int = 0
    forgotten_on_disk: int = 0
    max_note_tokens: int = 0
    mean_note_tokens: float = 0.0
    changed_prompts: int = 0
    reevaluated_tokens: int = 0
    follow_ups: int = 0
    max_recall_tokens: int = 0
    expired_sessions: int = 0
    cleared_sessions: int = 0
    memory_requests: int = 0
    requests_of_cleared: int = 0
    # The distinct numbers of extraction requests per session (Home Agent: [1]).
    extraction_counts: list[int] = field(default_factory=list)
    turns: int = 0
    requests: int = 0


class GoodModel:
    """Plays the model: the tool calls and extraction replies a good model would make."""

    def __init__(
        self, household: script.Household, variant: str, *, raw_queries: bool = False
    ) -> None:
        """Know the household's script; with `raw_queries` recall searches the question."""
        self.variant = variant
        self.raw_queries = raw_queries
        self.label = Label("turn", -1, None)
        self.records: list[tuple[Label, Recorded]] = []
        self._turns: dict[str, script.Turn] = {}
        for session in (*household.sessions, *household.cleared_sessions):
            for turn in session.turns:
                self._turns[turn.said] = turn
        self._questions = {q.asked: q for q in household.questions}

    def __call__(self, request: Recorded) -> dict[str, Any]:
        """Answer one request (and keep it, labelled)."""
        messages = request.messages
        if messages[0]["content"] == EXTRACTION_INSTRUCTIONS:
            speaker = re.search(r"The person speaking is (\w+)\.", messages[1]["content"])
            self.records.append(
                (Label("extraction", self.label.session, speaker and speaker.group(1)), request)
            )
            return _text(self._extract(messages[1]["content"]))
        self.records.append((self.label, request))
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        said = TURN_FACTS.sub("", messages[last_user]["content"])
        results = _tool_results(messages[last_user + 1 :])
        if (question := self._questions.get(said)) is not None:
            return self._answer(question, request.system_prompt, results)
        turn = self._turns[said]
        if turn.forget:
            return self._forget(turn, results)
        if self._writes_in_turn(turn):
            return self._remember(turn, results)
        return _text("Okay, good to know.")

    def _writes_in_turn(self, turn: script.Turn) -> bool:
        """Tell whether this variant's model writes the note during the turn."""
        if self.variant == TOP_FIVE:
            return False  # memory is written by the per-turn extraction only
        return turn.mode is script.Mode.TOOL or self.variant == ALL_NOTES

    def _remember(self, turn: script.Turn, results: list[tuple[str, Any]]) -> dict[str, Any]:
        """Remember (recalling first to update, unless this variant never updates)."""
        fact = turn.fact
        updates = turn.replaces is not None and self.variant == HOME_AGENT
        if updates and not results:
            return _call("MemoryRecall", {"query": fact.query})
        if not any(name == "MemoryRemember" for name, _ in results):
            arguments: dict[str, Any] = {"text": fact.note, "rule": fact.rule}
            if fact.owner:
                arguments["private"] = True
            if updates and turn.replaces is not None:
                found = _found(results, turn.replaces.note)
                if found is not None:
                    arguments["replaces"] = found
            return _call("MemoryRemember", arguments)
        return _text(f"Noted: {fact.note}")

    def _forget(self, turn: script.Turn, results: list[tuple[str, Any]]) -> dict[str, Any]:
        """Find the note by recall, then forget it."""
        if not results:
            return _call("MemoryRecall", {"query": turn.fact.query})
        if len(results) == 1:
            found = _found(results, turn.fact.note)
            if found is not None:
                return _call("MemoryForget", {"memory_id": found})
            return _text("I have no such note.")
        return _text("Forgotten.")

    def _answer(
        self, question: script.Question, system_prompt: str, results: list[tuple[str, Any]]
    ) -> dict[str, Any]:
        """Answer from the prompt's notes when they cover it, else recall once first."""
        words = question.query.lower().split()
        notes = prompt_notes(system_prompt)
        covering = [note for note in notes if all(word in note.lower() for word in words)]
        uses_recall = self.variant == HOME_AGENT
        if covering or results or not uses_recall:
            found = covering or [
                item["text"] for _name, data in results for item in data.get("notes", [])
            ]
            return _text(found[0] if found else "I don't know that.")
        query = question.asked if self.raw_queries else question.query
        return _call("MemoryRecall", {"query": query})

    def _extract(self, request: str) -> list[dict[str, Any]] | str:
        """Return the notes a good model proposes for a conversation."""
        kept = {text: int(number) for number, text in _KEPT.findall(request.split("\n\n")[1])}
        proposals = []
        for line in request.split("The conversation:\n", 1)[1].splitlines():
            turn = self._turns.get(line.removeprefix("User: "))
            if turn is None or turn.forget or not self._extracts(turn):
                continue
            fact = turn.fact
            replaces = None
            if turn.replaces is not None and self.variant == HOME_AGENT:
                replaces = kept.get(turn.replaces.note)
            proposals.append(
                {
                    "text": fact.note,
                    "about": "speaker"
                    if fact.owner and self.variant == HOME_AGENT
                    else "household",
                    "replaces": replaces,
                    "rule": fact.rule,
                }
            )
        return json.dumps({"notes": proposals})

    def _extracts(self, turn: script.Turn) -> bool:
        """Tell whether this variant's extraction writes the turn's fact."""
        return self.variant == TOP_FIVE or turn.mode is script.Mode.EXTRACT


def _text(text: str | list[Any]) -> dict[str, Any]:
    """Return an assistant message with text."""
    return {"role": "assistant", "content": text}


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Return an assistant message with one tool call."""
    call = {
        "id": f"call_{name}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _tool_messages(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return (tool name, result as sent) of the tool results among some messages."""
    names = {
        call["id"]: call["function"]["name"]
        for message in messages
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    }
    return [
        (names.get(message["tool_call_id"], ""), message["content"])
        for message in messages
        if message["role"] == "tool"
    ]


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Return (tool name, parsed result) of a turn's tool rounds so far."""
    return [(name, json.loads(content)) for name, content in _tool_messages(messages)]


def _found(results: list[tuple[str, Any]], text: str) -> str | None:
    """Return the id recall gave a note with this text."""
    return next(
        (
            item["id"]
            for name, data in results
            if name == "MemoryRecall"
            for item in data.get("notes", [])
            if item["text"] == text
        ),
        None,
    )


# --- the baselines' memory policies ------------------------------------------


class AllNotes:
    """Every note ever written, in the order written, in every prompt (no ranking, no scope)."""

    def __init__(self, notebook: Notebook) -> None:
        """Read the notebook."""
        self.notebook = notebook

    def async_section(self, _session: Any, _user_id: str | None) -> str:
        """Return every current note."""
        return render(note for note in self.notebook.notes.values() if note.active)


class TopFive:
    """The five notes most like what was just said, chosen again for every request."""

    def __init__(self, notebook: Notebook) -> None:
        """Read the notebook; `utterance` is set as each turn starts."""
        self.notebook = notebook
        self.utterance = ""
        # Exchanges waiting for their extraction request.
        self.pending: list[Any] = []

    def async_section(self, _session: Any, _user_id: str | None) -> str:
        """Return the top five by similarity to the raw utterance, anyone's."""
        return render(self.notebook.search(self.utterance, EVERYONE, 5))

    # Turn listener: the utterance, and one extraction request after every turn.
    def async_turn_started(self, turn: Any) -> None:
        """Keep the raw utterance."""
        self.utterance = turn.user_input.text

    def async_turn_ended(self, turn: Any) -> None:
        """Extract from the turn that just ended (a request of its own)."""
        if turn.exchange is not None:
            self.pending.append(turn.exchange)


async def _async_extract_turns(top: TopFive, client: ModelClient) -> None:
    """Send each ended turn to the model and add what it proposes (global, add-only)."""
    while top.pending:
        exchange = top.pending.pop(0)
        payload = {
            "messages": [
                {"role": "system", "content": EXTRACTION_INSTRUCTIONS},
                {
                    "role": "user",
                    "content": "Notes already kept:\n(none)\n\nThe conversation:\n"
                    f"User: {exchange.user}\nAssistant: {exchange.assistant}",
                },
            ]
        }
        pieces = [
            delta.get("content") or ""
            async for delta in client.async_stream_chat(payload, TurnStats())
        ]
        for proposal in json.loads("".join(pieces))["notes"]:
            top.notebook.async_add(proposal["text"], None, Origin.CONVERSATION, rule=False)
        active = [note for note in top.notebook.notes.values() if note.active]
        if len(active) > TOP_FIVE_MAX_NOTES:
            top.notebook.async_forget(active[: len(active) - TOP_FIVE_MAX_NOTES])


# --- one household run ---------------------------------------------------------


async def _async_later(hass: HomeAssistant, clock: Clock, seconds: float) -> None:
    """Let simulated time pass; wait for what fell due, background work included."""
    for step in (seconds, 1.0):
        clock.tick(dt.timedelta(seconds=step))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)


async def _async_set_up(
    hass: HomeAssistant, fake: FakeOpenAI
) -> tuple[MockConfigEntry, dict[str, Context], dict[str, str]]:
    """Set up people with users, devices, the pipeline and the agent with memory on."""
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "http", {"http": {"server_host": "127.0.0.1", "server_port": unused_port()}}
    )
    assert await async_setup_component(hass, "assist_pipeline", {})
    contexts: dict[str, Context] = {}
    persons = []
    for name in script.PEOPLE:
        group = GROUP_ID_ADMIN if name == script.PEOPLE[0] else GROUP_ID_USER
        user = await hass.auth.async_create_user(name, group_ids=[group])
        contexts[name] = Context(user_id=user.id)
        persons.append({"id": name.lower(), "name": name, "user_id": user.id})
    persons.append({"id": script.GUEST.lower(), "name": script.GUEST})
    assert await async_setup_component(hass, "person", {"person": persons})
    owner = MockConfigEntry(domain="bench_devices")
    owner.add_to_hass(hass)
    registry = dr.async_get(hass)
    devices = {
        name: registry.async_get_or_create(
            config_entry_id=owner.entry_id, identifiers={("bench", name)}, name=name
        ).id
        for name in (*script.SATELLITES, *script.PHONES.values())
    }
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent",
        data={
            CONF_BACKEND: "openai",
            CONF_BASE_URL: fake.base_url,
            CONF_MODEL: "fake-model",
            CONF_LLM_HASS_API: [],
        },
        options={
            CONF_MEMORY: True,
            CONF_MEMORY_PROMPT_TOKENS: DEFAULT_MEMORY_PROMPT_TOKENS,
            CONF_SESSION_TIMEOUT: SESSION_TIMEOUT,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry, contexts, devices


class _NoRestartNoise(logging.Filter):
    """Drop the complaint of http's config trial, which asks for a restart after 10 minutes.

    Home Assistant 2026.x tries an HTTP config given as YAML for a while and then asks to
    restart; days of simulated time pass here, and a test instance has no configuration
    file to restart with. Nothing of Home Agent's is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every other record."""
        message = record.getMessage()
        return "cannot restart" not in message and "homeassistant.restart" not in message


async def async_run_household(variant: str, *, raw_queries: bool = False) -> HouseholdRun:
    """Play the household through Home Agent with one variant's memory policy."""
    household = script.build()
    quiet = _NoRestartNoise()
    for name in ("homeassistant.core", "homeassistant.components.homeassistant"):
        logging.getLogger(name).addFilter(quiet)
    with plain_resolver():
        async with home_assistant() as hass, FakeOpenAI() as fake:
            entry, contexts, devices = await _async_set_up(hass, fake)
            model = GoodModel(household, variant, raw_queries=raw_queries)
            fake.responder = model
            with simulated_clock(START) as clock:
                run = await _async_play(
                    hass, entry, household, model, contexts=contexts, devices=devices, clock=clock
                )
                await _async_later(hass, clock, SAVE_DELAY)
                storage = _storage_bytes(Path(hass.config.path(".storage")))
    return _score(run, household, model, storage)


@dataclass(slots=True)
class _Played:
    """What the driver knows beyond the requests: sessions, turns, when notes were forgotten."""

    variant: str
    turns: int = 0
    expired: int = 0
    cleared: int = 0
    # Fact key -> (the first request after its forget, the session it was forgotten in).
    forgotten_at: dict[str, tuple[int, int]] = field(default_factory=dict)
    first_request_of_session: dict[int, int] = field(default_factory=dict)


async def _async_play(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    household: script.Household,
    model: GoodModel,
    *,
    contexts: dict[str, Context],
    devices: dict[str, str],
    clock: Clock,
) -> _Played:
    """Run every session and question session, each ended by expiry (or cleared)."""
    played = _Played(model.variant)
    data = entry.runtime_data
    notebook = data.notes.notebook
    top: TopFive | None = None
    if model.variant != HOME_AGENT:
        data.extractor.async_stop()  # the baselines write their memory their own way
    if model.variant == ALL_NOTES:
        data.backend.notes = AllNotes(notebook)
    elif model.variant == TOP_FIVE:
        top = TopFive(notebook)
        data.backend.notes = top
        data.tracker.async_add_turn_listener(top)
    # The per-turn baseline's own requests go to the same server.
    client = ModelClient(hass, entry.data[CONF_BASE_URL], None)
    sessions: list[script.Session] = list(household.sessions)
    for number, cleared in enumerate(household.cleared_sessions):
        sessions.insert(10 * (number + 1) + number, cleared)
    plays: list[tuple[script.Session | None, list[script.Question]]] = [(s, []) for s in sessions]
    plays += [(None, group) for group in _question_sessions(household.questions)]
    for number, (session, questions) in enumerate(plays):
        device = session.device if session else questions[0].device
        speaker = session.speaker if session else questions[0].speaker
        satellite = Satellite(
            hass, AGENT_ID, devices[device], context=contexts.get(speaker or "", Context())
        )
        said: list[tuple[str, script.Question | None]] = (
            [(t.said, None) for t in session.turns] if session else []
        )
        said += [(q.asked, q) for q in questions]
        for text, question in said:
            model.label = Label("turn", number, speaker, question, len(model.records))
            played.first_request_of_session.setdefault(number, len(model.records))
            await satellite.say(text)
            played.turns += 1
            if top is not None:
                await _async_extract_turns(top, client)
        if session is not None:
            for turn in session.turns:
                if turn.forget:
                    played.forgotten_at[turn.fact.key] = (len(model.records), number)
        if session is not None and session.cleared:
            await hass.services.async_call(
                DOMAIN, "clear_conversation", {"device_id": devices[device]}, blocking=True
            )
            played.cleared += 1
        else:
            played.expired += 1
        model.label = Label("turn", number, speaker)
        await _async_later(hass, clock, SESSION_TIMEOUT + 1)
    return played


def _question_sessions(questions: list[script.Question]) -> list[list[script.Question]]:
    """Group the questions into sessions of up to five at one device (by device, in order)."""
    by_device: dict[str, list[script.Question]] = {}
    for question in questions:
        by_device.setdefault(question.device, []).append(question)
    return [
        asked[start : start + 5]
        for asked in by_device.values()
        for start in range(0, len(asked), 5)
    ]


def _storage_bytes(folder: Path) -> bytes:
    """Return every file under `.storage`, lower-cased, as one text."""
    return b"".join(path.read_bytes() for path in folder.glob("*") if path.is_file()).lower()


def _score(
    played: _Played, household: script.Household, model: GoodModel, storage: bytes
) -> HouseholdRun:
    """Score the recorded requests."""
    run = HouseholdRun(played.variant, turns=played.turns, requests=len(model.records))
    run.expired_sessions, run.cleared_sessions = played.expired, played.cleared
    records = model.records
    owners = {f.note: f.owner for f in household.facts if f.owner}
    chatter = [t.said for s in household.cleared_sessions for t in s.turns]
    forgotten = {f.key: f.note for f in household.facts if f.key in household.forgotten}
    notes_tokens: list[int] = []
    by_session: dict[int, list[tuple[Label, Recorded]]] = {}
    extractions: dict[int, int] = {}
    for index, (label, request) in enumerate(records):
        text = json.dumps(request.body, ensure_ascii=False)
        audience = label.speaker
        run.private_leaks += any(
            owner != audience and note in text for note, owner in owners.items()
        )
        extraction = label.kind == "extraction"
        notes = [] if extraction else prompt_notes(request.system_prompt)
        recalled = [] if extraction else _recalled(request)
        for key, note in forgotten.items():
            if (at := played.forgotten_at.get(key)) is None or index < at[0]:
                continue
            if note in notes or note in recalled or (label.session > at[1] and note in text):
                run.forgotten_leaks += 1
        if extraction:
            run.memory_requests += 1
            extractions[label.session] = extractions.get(label.session, 0) + 1
            run.requests_of_cleared += any(c in text for c in chatter)
            continue
        by_session.setdefault(label.session, []).append((label, request))
        run.max_recall_tokens = max(run.max_recall_tokens, *_recall_tokens(request), 0)
    run.extraction_counts = sorted(set(extractions.values()))
    for requests in by_session.values():
        first = requests[0][1]
        section = _section(first.system_prompt)
        notes_tokens.append(note_tokens(section) if section else 0)
        prompts = {request.system_prompt for _label, request in requests}
        run.changed_prompts += len(prompts) > 1
        for (_, previous), (_, current) in itertools.pairwise(requests):
            run.follow_ups += 1
            run.reevaluated_tokens += _invalidated_tokens(previous, current)
    run.max_note_tokens = max(notes_tokens)
    run.mean_note_tokens = statistics.mean(notes_tokens)
    _score_questions(run, records)
    for note in forgotten.values():
        run.forgotten_on_disk += note.rstrip(".").lower().encode() in storage
    return run


def _score_questions(run: HouseholdRun, records: list[tuple[Label, Recorded]]) -> None:
    """Count the questions whose answer was in what the model was given."""
    turns: dict[int, list[Recorded]] = {}
    asked: dict[int, script.Question] = {}
    for label, request in records:
        if label.kind == "turn" and label.question is not None:
            turns.setdefault(label.turn, []).append(request)
            asked[label.turn] = label.question
    for turn, requests in turns.items():
        question = asked[turn]
        given = set(prompt_notes(requests[0].system_prompt))
        for request in requests:
            given.update(_recalled(request))
        if question.expected is not None:
            run.questions += 1
            run.answered += question.expected in given
            if question.excluded:
                run.updated_questions += 1
                run.stale += any(old in given for old in question.excluded)


def _recalled(request: Recorded) -> list[str]:
    """Return the note texts recall results in a request hold."""
    results = _tool_results(request.messages[1:])
    return [
        item["text"]
        for name, data in results
        if name == "MemoryRecall"
        for item in data.get("notes", [])
    ]


def _recall_tokens(request: Recorded) -> Iterable[int]:
    """Return the tokens of each recall result in a request."""
    return [
        note_tokens(content)
        for name, content in _tool_messages(request.messages)
        if name == "MemoryRecall"
    ]


def _section(system_prompt: str) -> str:
    """Return a system prompt's notes section (header and lines)."""
    notes = prompt_notes(system_prompt)
    return NOTES_HEADER + "".join(f"\n- {note}" for note in notes) if notes else ""


def _invalidated_tokens(previous: Recorded, current: Recorded) -> int:
    """Return what of the previous request a prefix cache loses in the current one."""
    before = json.dumps(previous.messages, ensure_ascii=False, separators=(",", ":"))
    after = json.dumps(current.messages, ensure_ascii=False, separators=(",", ":"))
    shared = next(
        (i for i, (x, y) in enumerate(zip(before, after, strict=False)) if x != y),
        min(len(before), len(after)),
    )
    # The previous list's closing bracket (and the comma that follows it) always differ.
    return note_tokens("x" * max(0, len(before) - shared - 2))


# --- recall and load times -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timings:
    """Recall with 1,000 notes; the start-up load of 2,000."""

    recall_median_ms: float
    recall_p99_ms: float
    index_ms: float
    load_ms: float
    load_block_ms: float


def _synthetic_notes(count: int) -> list[Note]:
    """Return `count` varied notes (household and four people's)."""
    words = [
        f"{a}{b}"
        for a in ("bro", "cal", "dem", "fin", "gar", "hol", "jun", "kel", "lom", "mar")
        for b in ("a", "e", "i", "o", "u", "an", "en", "in", "on", "un")
    ]
    now = dt_util.utcnow()
    people = (None, "person.ada", "person.bob", "person.carla", "person.dan")
    return [
        Note(
            id=f"{number:010x}",
            text=f"The {words[number % 100]} {words[(number * 7) % 100]} is in the "
            f"{words[(number * 13) % 100]} by the {words[(number * 31) % 100]} ({number}).",
            person=people[number % 5],
            origin=Origin.ACTION,
            created_at=now,
            updated_at=now,
            rule=number % 17 == 0,
        )
        for number in range(count)
    ]


async def _async_recall_times(hass: HomeAssistant) -> tuple[float, float, float]:
    """Return median and p99 of one recall (search, budget, use count) with 1,000 notes.

    And the time the first search after start-up takes to build the index.
    """
    notebook = Notebook(hass)
    for note in _synthetic_notes(RECALL_NOTES):
        notebook.notes[note.id] = note
    start = time.perf_counter_ns()
    assert len(notebook.index) == RECALL_NOTES  # built by the first search after start-up
    first = (time.perf_counter_ns() - start) / 1e6
    tool = RecallTool(notebook)
    viewer = Viewer(person="person.ada")
    samples = []
    for number in range(RECALL_QUERIES):
        query = f"{_synthetic_notes(1)[0].text.split()[1]} jun{'aeiou'[number % 5]} {number}"
        start = time.perf_counter_ns()
        tool.act({"query": query}, viewer, None)  # type: ignore[arg-type]
        samples.append(time.perf_counter_ns() - start)
    ms = [value / 1e6 for value in samples]
    return statistics.median(ms), statistics.quantiles(ms, n=100)[98], first


async def _async_load_times(hass: HomeAssistant) -> tuple[float, float]:
    """Return the best load time of 2,000 notes (and frames) and the worst loop block."""
    notes = _synthetic_notes(LOAD_NOTES)
    chosen = tuple(note.id for note in notes[:20])
    frames = {
        ("entry", f"conversation-{n}", START.isoformat(), None): Frame(300, chosen)
        for n in range(50)
    }
    snapshot = NotesSnapshot(
        notes=[note_row(note) for note in notes],
        frames=[frame_row(key, frame) for key, frame in frames.items()],
        pending=[],
    )
    path = Path(hass.config.path(".storage", NOTES_KEY))
    await hass.async_add_executor_job(_write, path, snapshot)
    best, worst_block = float("inf"), 0.0
    for _ in range(REPEATS):
        gc.collect()
        with Ticker() as ticker:
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            notebook = await async_hold_notebook(hass, {"entry"})
            elapsed = time.perf_counter() - start
            await asyncio.sleep(0.01)
        assert len(notebook.notes) == LOAD_NOTES
        await async_release_notebook(hass)
        best = min(best, elapsed)
        worst_block = max(worst_block, ticker.max_gap)
    return best * 1000, worst_block * 1000


async def async_timings() -> Timings:
    """Measure recall and load in a Home Assistant of their own (real time)."""
    async with home_assistant() as hass:
        median, p99, index = await _async_recall_times(hass)
        load, block = await _async_load_times(hass)
    return Timings(median, p99, index, load, block)
