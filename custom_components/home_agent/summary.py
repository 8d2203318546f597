"""A running summary of the exchanges that left a session's history, made while it is idle.

Exchanges that no longer fit the history wait on the session, and are stored with it;
once the session has been quiet for SUMMARY_IDLE_DELAY seconds the same model folds them
into the session's summary, which is sent ahead of the remaining history from then on.
They are folded SUMMARY_CHUNK at a time, oldest first, one request after the other, so a
long backlog is never dropped nor sent in one huge request. A turn never waits for it: a
turn that arrives abandons a summary in progress, and the next quiet spell tries again.
After a reload or a restart, sessions with exchanges waiting get their summary once the
idle delay has passed again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .const import LOGGER, SUMMARY_CHUNK, SUMMARY_IDLE_DELAY
from .exchanges import transcript_lines
from .session import Exchange, Session
from .tracker import SessionChange, SessionTracker
from .turn import Turn

type Summarizer = Callable[[str | None, list[Exchange]], Awaitable[str]]

SUMMARY_INSTRUCTIONS = (
    "You keep the memory of a voice assistant's conversation with a person. Write an "
    "updated summary of the conversation so far in at most 80 words of plain text: keep "
    "names, numbers, preferences, decisions and what was done in the home; leave out "
    "greetings and small talk."
)


def summary_request(summary: str | None, exchanges: list[Exchange]) -> str:
    """Return what the model is asked to summarize."""
    lines = [f"Summary so far: {summary or '(none)'}", "", "Exchanges to add:"]
    return "\n".join([*lines, *transcript_lines(exchanges)])


class SummaryMaker:
    """Summarize sessions' waiting exchanges while they are idle."""

    def __init__(self, hass: HomeAssistant, tracker: SessionTracker, summarize: Summarizer) -> None:
        """Summarize with `summarize(previous_summary, exchanges)`."""
        self._hass = hass
        self._tracker = tracker
        self._summarize = summarize
        self._timers: dict[str, CALLBACK_TYPE] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._resuming: asyncio.Task[None] | None = None
        self._unsubs = [
            tracker.async_add_listener(self._async_session_changed),
            tracker.async_add_turn_listener(self),
            # Entries are not unloaded when Home Assistant stops; nothing may linger.
            hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._async_stopping),
        ]

    @callback
    def async_turn_started(self, turn: Turn) -> None:
        """Abandon the session's summary: a turn is being answered."""
        self._cancel(turn.session.conversation_id)

    @callback
    def async_turn_ended(self, turn: Turn) -> None:
        """Summarize the waiting exchanges once the session has been idle for a while."""
        session = turn.session
        self._cancel(session.conversation_id)
        if session.summary_pending:
            self._schedule(session)

    @callback
    def async_resume(self) -> None:
        """Schedule the summaries a reload or restart interrupted (the exchanges are stored)."""
        self._resuming = self._hass.async_create_background_task(
            self._async_resume(), "home_agent_summary_resume"
        )

    async def _async_resume(self) -> None:
        """Once the stored transcripts are in, schedule every session with exchanges waiting."""
        await self._tracker.async_transcripts_loaded()
        self._resuming = None
        for session in self._tracker.sessions:
            cid = session.conversation_id
            if session.summary_pending and cid not in self._timers and cid not in self._tasks:
                self._schedule(session)

    def _schedule(self, session: Session) -> None:
        """Start the session's summary after the idle delay."""

        @callback
        def _async_idle(_now: datetime) -> None:
            self._timers.pop(session.conversation_id, None)
            self._start(session)

        self._timers[session.conversation_id] = async_call_later(
            self._hass, SUMMARY_IDLE_DELAY, _async_idle
        )

    def _start(self, session: Session) -> None:
        """Start making the session's summary now."""
        self._tasks[session.conversation_id] = self._hass.async_create_background_task(
            self._async_make(session), "home_agent_summary"
        )

    async def _async_make(self, session: Session) -> None:
        """Fold the oldest waiting exchanges into the summary; go on while more wait."""
        pending = list(session.summary_pending[:SUMMARY_CHUNK])
        try:
            summary = (await self._summarize(session.summary, pending)).strip()
        except Exception as err:
            LOGGER.debug("No summary this time: %r", err)
            return
        finally:
            if self._tasks.get(session.conversation_id) is asyncio.current_task():
                del self._tasks[session.conversation_id]
        if not summary:
            return
        LOGGER.debug("Summary of %s: %s", session.conversation_id, summary)
        self._tracker.async_set_summary(session, summary, covered=len(pending))
        if session.summary_pending and self._tracker.get(session.conversation_id) is session:
            self._start(session)  # still quiet: the next chunk at once

    @callback
    def _async_session_changed(self, session: Session, change: SessionChange) -> None:
        """Drop the work of a session that ended."""
        if change in (SessionChange.EXPIRED, SessionChange.CLEARED):
            self._cancel(session.conversation_id)

    def _cancel(self, conversation_id: str) -> None:
        """Cancel a session's scheduled or running summary."""
        if (unsub := self._timers.pop(conversation_id, None)) is not None:
            unsub()
        if (task := self._tasks.pop(conversation_id, None)) is not None:
            task.cancel()

    @callback
    def _async_stopping(self, _event: Event) -> None:
        """Cancel everything when Home Assistant stops."""
        self._unsubs.pop()
        self.async_stop()

    @callback
    def async_stop(self) -> None:
        """Cancel everything."""
        while self._unsubs:
            self._unsubs.pop()()
        if self._resuming is not None:
            self._resuming.cancel()
            self._resuming = None
        for conversation_id in [*self._timers, *self._tasks]:
            self._cancel(conversation_id)
