"""Turning an expired session into notes: one request to the agent's own model.

When a session of an `openai` agent with memory on ends by expiry (never when it is
cleared), what was said is kept as a pending extraction — in the notebook's file too, so it
survives a restart — and the model is asked once which new notes it holds, or which kept
notes it updates (structured output where the server supports it). The code checks every
proposal: its text (length, no codes, passwords or PINs), its scope (the household's, or
the speaker's own person), the note it updates (one the speaker may see, by the number it
was shown under). Extraction never deletes. A request that fails is tried again later,
for a bounded time; then the session is given up, and what was said leaves the file.

A session that runs out while Home Assistant is stopped is not lost either: when Home
Assistant stops, what each live session said is kept as an extraction that waits for its
session; at the next start it is done if the session ran out meanwhile, and dropped if the
session goes on.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
import json
from typing import Any, Literal

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now

from .client import ModelClient
from .const import DOMAIN, LOGGER, TURN_TIME_LIMIT
from .notebook import Notebook, Viewer
from .notes import Note, NoteRefused, Origin, looks_secret, normalize_text, reads_as_rule
from .notes_access import person_name
from .notes_store import PendingExtraction
from .owners import person_of_user
from .session import Session
from .tracker import SessionChange, SessionTracker

# Kept notes shown to the model (the ones most like the conversation), so it can update them.
SHOWN_NOTES = 30
# New notes or updates taken from one session at most.
MAX_PROPOSALS = 10
# What was said that the request carries at most (the latest part of a long session).
MAX_CONVERSATION_CHARS = 8000
# Seconds before a pending extraction restored at start-up is tried (the model server may
# start after Home Assistant), between failed tries, and how long a session is tried for.
START_DELAY = 60.0
RETRY_DELAYS = (60.0, 300.0, 900.0, 3600.0)
TRY_FOR = timedelta(hours=24)

EXTRACTION_INSTRUCTIONS = (
    "You keep a household's notes for its voice assistant. From the conversation, write "
    "down only what is worth knowing in later conversations: lasting facts, preferences, "
    "plans with their dates, and house rules that people stated. Each note is one short "
    "sentence in the third person, with names instead of pronouns and dates as dates "
    "(never 'tomorrow'), at most 200 characters. When the conversation changes a kept note, "
    "give the new sentence with `replaces` set to that note's number; otherwise `replaces` "
    'is null. Set `about` to "speaker" for what only the person speaking should hear '
    'again, else "household". Set `rule` for a standing instruction. Never write down '
    "codes, passwords, PINs or other secrets, and nothing already kept. Leave out small "
    "talk, questions and commands to devices. Nothing worth keeping: an empty list."
)

NOTES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "notes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "about": {"type": "string", "enum": ["household", "speaker"]},
                    "replaces": {"type": ["integer", "null"]},
                    "rule": {"type": "boolean"},
                },
                "required": ["text", "about", "replaces", "rule"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["notes"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "household_notes", "strict": True, "schema": NOTES_SCHEMA},
}


def conversation_lines(session: Session) -> tuple[str, ...]:
    """Return what was said in a session as lines, or () when there is nothing to keep.

    Tool calls are left out (device states are no memory); turns Home Assistant answered
    itself alone are not worth a request.
    """
    exchanges = list(session.transcript)
    if not any(not exchange.local for exchange in exchanges):
        return ()
    lines = [f"Summary of the earlier conversation: {session.summary}"] if session.summary else []
    for exchange in exchanges:
        lines += [f"User: {exchange.user}", f"Assistant: {exchange.assistant}"]
    kept: list[str] = []
    size = 0
    for line in reversed(lines):
        size += len(line) + 1
        if size > MAX_CONVERSATION_CHARS:
            break
        kept.append(line)
    return tuple(reversed(kept))


def shown_notes(notebook: Notebook, pending: PendingExtraction) -> list[Note]:
    """Return the kept notes the model is shown: those most like what was said, then more."""
    viewer = Viewer(person=pending.person)  # the session's speaker
    shown = notebook.search(" ".join(pending.lines), viewer, SHOWN_NOTES)
    if len(shown) < SHOWN_NOTES:
        taken = {note.id for note in shown}
        shown += [n for n in notebook.visible(viewer) if n.id not in taken]
    return shown[:SHOWN_NOTES]


def extraction_request(pending: PendingExtraction, shown: list[Note]) -> str:
    """Return the request's user message: the date, the speaker, kept notes, the conversation."""
    day = dt_util.as_local(pending.ended_at).strftime("%A %d %B %Y")
    speaker = (
        f"The person speaking is {pending.speaker or 'a signed-in person'}."
        if pending.person
        else "The speaker is not known (a shared device): every note is the household's."
    )
    kept = [f"{number}. {note.text}" for number, note in enumerate(shown, 1)] or ["(none)"]
    return "\n".join(
        [
            f"The conversation took place on {day}. {speaker}",
            "",
            "Notes already kept:",
            *kept,
            "",
            "The conversation:",
            *pending.lines,
        ]
    )


def _reply_notes(reply: str) -> list[Any]:
    """Return the proposals of a reply (a JSON object, maybe fenced), or raise ValueError."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object")
    parsed = json.loads(reply[start : end + 1])
    notes = parsed.get("notes") if isinstance(parsed, dict) else None
    if not isinstance(notes, list):
        raise ValueError("no list of notes")  # noqa: TRY004 - what the caller catches
    return notes


class NoteExtractor:
    """Turns one agent's expired sessions into notes, one request each, one at a time."""

    def __init__(
        self,
        hass: HomeAssistant,
        notebook: Notebook,
        entry_id: str,
        client: ModelClient,
        model: str | None,
    ) -> None:
        """Ask the agent's model (`client`, `model`) about the agent's sessions."""
        self._hass = hass
        self._notebook = notebook
        self._entry_id = entry_id
        self._client = client
        self._model = model
        # Cleared once the server refused a request with a JSON schema.
        self._structured = True
        self._lock = asyncio.Lock()
        self._timers: dict[str, CALLBACK_TYPE] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubs: list[CALLBACK_TYPE] = []
        self._tracker: SessionTracker | None = None

    @callback
    def async_start(self, tracker: SessionTracker) -> None:
        """Follow the agent's sessions; try the extractions left from before a restart."""
        self._tracker = tracker
        self._unsubs = [
            tracker.async_add_listener(self._async_session_changed),
            self._notebook.async_add_drop_listener(self._async_dropped),
            # Agents are not unloaded when Home Assistant stops; nothing may linger.
            self._hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._async_stopping),
        ]
        live = {(s.conversation_id, s.started_at.isoformat()) for s in tracker.sessions}
        for pending in list(self._notebook.pending.values()):
            if pending.entry_id != self._entry_id:
                continue
            if pending.if_ended is not None:
                if pending.if_ended in live:
                    self._notebook.async_done(pending)  # the session goes on
                    continue
                pending.if_ended = None  # it ran out while Home Assistant was stopped
                self._notebook.store.async_schedule_save()
            self._schedule(pending, START_DELAY)

    @callback
    def _async_stopping(self, _event: Event) -> None:
        """Keep what live sessions said in case they run out while stopped; stop."""
        self._unsubs.pop()
        if (tracker := self._tracker) is not None:
            for session in tracker.sessions:
                if lines := conversation_lines(session):
                    pending = self._pending(session, lines)
                    pending.if_ended = (session.conversation_id, session.started_at.isoformat())
                    self._notebook.async_add_pending(pending)
        self.async_stop()

    @callback
    def async_stop(self) -> None:
        """Stop (an unloading agent): what is pending stays for the next start."""
        while self._unsubs:
            self._unsubs.pop()()
        for unsub in self._timers.values():
            unsub()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()

    @callback
    def _async_session_changed(self, session: Session, change: SessionChange) -> None:
        """Keep an expired session's words to turn them into notes (a cleared one never)."""
        if change is not SessionChange.EXPIRED or not (lines := conversation_lines(session)):
            return
        pending = self._pending(session, lines)
        self._notebook.async_add_pending(pending)
        self._schedule(pending, 0)

    def _pending(self, session: Session, lines: tuple[str, ...]) -> PendingExtraction:
        """Return the extraction of a session that ends now."""
        person = person_of_user(self._hass, session.user_id)
        return PendingExtraction(
            id=ulid_now(),
            entry_id=self._entry_id,
            person=person,
            speaker=person_name(self._hass, person),
            ended_at=dt_util.utcnow(),
            lines=lines,
        )

    @callback
    def _async_dropped(self, pending_ids: set[str]) -> None:
        """Stop waiting to try extractions that were dropped (their person's notes forgotten)."""
        for pending_id in pending_ids:
            if (unsub := self._timers.pop(pending_id, None)) is not None:
                unsub()

    def _schedule(self, pending: PendingExtraction, delay: float) -> None:
        """Try an extraction after `delay` seconds."""

        @callback
        def _async_due(_now: datetime) -> None:
            self._timers.pop(pending.id, None)
            task = self._hass.async_create_background_task(
                self._async_extract(pending), f"{DOMAIN} extraction"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._timers[pending.id] = async_call_later(self._hass, delay, _async_due)

    async def _async_extract(self, pending: PendingExtraction) -> None:
        """Ask the model once; keep what holds, or try again later."""
        async with self._lock:
            if pending.id not in self._notebook.pending:
                return  # dropped meanwhile
            shown = shown_notes(self._notebook, pending)
            try:
                reply = await self._async_ask(extraction_request(pending, shown))
            except (HomeAssistantError, TimeoutError) as err:
                self._async_failed(pending, err)
                return
            if pending.id not in self._notebook.pending:
                return  # dropped while the model answered: keep nothing of it
            try:
                proposals = _reply_notes(reply)
            except ValueError as err:
                LOGGER.debug("Extraction reply not understood (%s); nothing kept", err)
            else:
                self._async_apply(pending, shown, proposals)
            self._notebook.async_done(pending)

    async def _async_ask(self, request: str) -> str:
        """Return the model's reply to one extraction request (in schema if it can)."""
        payload: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": EXTRACTION_INSTRUCTIONS},
                {"role": "user", "content": request},
            ],
            "temperature": 0.0,
            "max_tokens": 512,
        }
        if self._model:
            payload["model"] = self._model
        async with asyncio.timeout(TURN_TIME_LIMIT):
            if self._structured:
                try:
                    structured = {**payload, "response_format": RESPONSE_FORMAT}
                    return await self._client.async_text(structured)
                except HomeAssistantError as err:
                    if getattr(err, "translation_key", None) != "model_request_rejected":
                        raise
                    LOGGER.debug("The server refused a JSON schema; asking without one")
                    self._structured = False
            return await self._client.async_text(payload)

    def _async_failed(self, pending: PendingExtraction, err: Exception) -> None:
        """Try again later, or give up once the session ended too long ago."""
        pending.tries += 1
        if dt_util.utcnow() - pending.ended_at >= TRY_FOR:
            LOGGER.debug("Extraction given up after %d tries: %r", pending.tries, err)
            self._notebook.async_done(pending)
            return
        LOGGER.debug("Extraction failed (%r); trying again later", err)
        self._notebook.store.async_schedule_save()
        delay = RETRY_DELAYS[min(pending.tries, len(RETRY_DELAYS)) - 1]
        self._schedule(pending, delay)

    def _async_apply(
        self, pending: PendingExtraction, shown: list[Note], proposals: list[Any]
    ) -> None:
        """Keep every proposal that passes the checks; drop the others."""
        viewer = Viewer(person=pending.person)  # the session's speaker
        kept = 0
        for proposal in proposals[:MAX_PROPOSALS]:
            note = _checked(self._notebook, viewer, shown, proposal)
            if note is None:
                continue
            text, person, replaces, rule = note
            try:
                self._notebook.async_add(
                    text, person, Origin.SESSION_END, rule=rule, replaces=replaces
                )
            except NoteRefused as err:
                LOGGER.debug("Extracted note not kept: %s", err.translation_key)
                continue
            kept += 1
        LOGGER.debug("Extraction kept %d of %d proposal(s)", kept, len(proposals))


type Checked = tuple[str, str | None, Note | None, bool]


def _checked(
    notebook: Notebook, viewer: Viewer, shown: list[Note], proposal: Any
) -> Checked | None:
    """Return (text, person, replaced note, rule) of a valid proposal, else None."""
    if not isinstance(proposal, dict) or not isinstance(text := proposal.get("text"), str):
        return None
    try:
        text = normalize_text(text)
    except NoteRefused:
        return None
    if looks_secret(text):
        return None
    about = proposal.get("about")
    if about == "speaker" and viewer.person is None:
        return None  # never made the household's: it was meant for one person
    person = viewer.person if about == "speaker" else None
    replaces = _replaced(notebook, viewer, shown, proposal.get("replaces"))
    if replaces is False:
        return None
    rule = proposal.get("rule") is True or reads_as_rule(text)
    return text, person, replaces, rule


def _replaced(
    notebook: Notebook, viewer: Viewer, shown: list[Note], number: Any
) -> Note | Literal[False] | None:
    """Return the kept note a proposal updates (None: it is new; False: not a valid one)."""
    if number is None:
        return None
    if type(number) is not int or not 1 <= number <= len(shown):
        return False
    if (note := notebook.current(viewer, shown[number - 1].id)) is None:
        return False  # forgotten or replaced since it was shown
    return note
