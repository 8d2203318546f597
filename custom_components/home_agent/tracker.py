"""The session tracker: which conversation a turn belongs to, and when it ends.

Home Assistant hands an agent a fresh conversation id whenever its own chat
session (5 idle minutes) is gone, so continuity is carried by a *session key*
(device, satellite or user, by scope). Each session expires through its own
point-in-time timer, re-armed on activity; its life-cycle is announced on the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from homeassistant.components.conversation import ChatLog, ConversationInput
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import (
    CALLBACK_TYPE,
    Context,
    Event,
    EventStateChangedData,
    HassJob,
    HassJobType,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import (
    TrackStates,
    async_track_point_in_utc_time,
    async_track_state_change_filtered,
)
from homeassistant.helpers.start import async_at_started
from homeassistant.util import dt as dt_util
from homeassistant.util.ulid import ulid_now

from .compat import satellite_id_of
from .const import (
    DOMAIN,
    EVENT_SESSION_CLEARED,
    EVENT_SESSION_EXPIRED,
    EVENT_SESSION_STARTED,
    LOGGER,
    SAVE_RETRY_DELAY,
    TURN_TIME_LIMIT,
    SessionScope,
)
from .keys import (
    SATELLITE_DOMAIN,
    bounded,
    known_device_id,
    known_satellite_id,
    session_key_for,
)
from .session import Exchange, Session, first_participants, sanitize_exchange
from .storage import SessionStore
from .token_budget import LOW_WATER
from .turn import Turn, TurnListener

REASON_TIMEOUT = "timeout"
SATELLITE_IDLE = "idle"
# Sessions restored per event-loop iteration: a start-up with thousands of sessions never
# holds the loop for long.
RESTORE_CHUNK = 250
# Seconds an agent that unloads waits for its turns in flight beyond their own time limit.
TURN_WAIT_MARGIN = 5.0


class SessionChange(StrEnum):
    """What happened to a session, as told to listeners."""

    STARTED = "started"
    ACTIVITY = "activity"
    EXPIRED = "expired"
    CLEARED = "cleared"


type SessionListener = Callable[[Session, SessionChange], None]


class SessionTracker:
    """Own the sessions of one agent (config entry): resolve, time out, persist."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        *,
        timeout: timedelta,
        scope: SessionScope,
        max_turns: int,
        summarize: bool = False,
    ) -> None:
        """Create an empty tracker; call async_start to restore and listen."""
        self.hass = hass
        self.entry_id = entry_id
        self.timeout = timeout
        self.scope = scope
        self.max_turns = max_turns
        # Whether exchanges leaving the transcript wait to join a running summary.
        self.summarize = summarize
        self._sessions: dict[str, Session] = {}
        self._by_key: dict[str, Session] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}
        # Conversation id -> turns being answered (such a session does not expire).
        self._busy: dict[str, int] = {}
        # Conversation id -> (the lock its turns take one after the other, turns holding or
        # waiting for it).
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Turns between their arrival and their end (an unloading agent waits for them).
        self._in_flight: set[asyncio.Future[None]] = set()
        self._turn_listeners: list[TurnListener] = []
        self._listeners: list[SessionListener] = []
        self._unsubs: list[CALLBACK_TYPE] = []
        self._agent_id: str | None = None
        self._unsub_stop: CALLBACK_TYPE | None = None
        self._closed = False
        self.store = SessionStore(hass, entry_id, self._sessions.values)

    # --- life-cycle -------------------------------------------------------

    async def async_start(self) -> None:
        """Restore stored sessions, re-arm their timers and start listening."""
        await self._async_restore()
        # Home Assistant dispatches by domain: other entities' changes never reach us.
        satellites = async_track_state_change_filtered(
            self.hass, TrackStates(False, set(), {SATELLITE_DOMAIN}), self._async_satellite_changed
        )
        self._unsubs.append(satellites.async_remove)
        self._unsub_stop = self.hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_stop
        )

    async def _async_stop(self, _event: Event) -> None:
        """Cancel timers when Home Assistant stops (entries are not unloaded then)."""
        self._unsub_stop = None
        await self.async_shutdown()

    async def async_shutdown(self) -> None:
        """Cancel every timer and listener, and write pending changes."""
        self._closed = True
        for unsub in self._timers.values():
            unsub()
        self._timers.clear()
        while self._unsubs:
            self._unsubs.pop()()
        if self._unsub_stop is not None:
            self._unsub_stop()
            self._unsub_stop = None
        await self.store.async_shutdown()

    async def _async_restore(self) -> None:
        """Take over the sessions the store restored and arm their timers.

        The store reads the small index first and the transcripts afterwards, in the
        background (see storage.py): the timers run while tens of megabytes are read.
        """
        restored = await self.store.async_restore(self.timeout, self.max_turns)
        for number, session in enumerate(restored.live, 1):
            self._add(session)
            self._arm(session)
            if number % RESTORE_CHUNK == 0:
                await asyncio.sleep(0)
        self.store.async_read_transcripts()
        ran_out = restored.ran_out
        LOGGER.debug(
            "Restored %d session(s); %d ran out while stopped, %d duplicate(s) dropped",
            len(self._sessions),
            len(ran_out),
            restored.duplicates,
        )
        if restored.rewrite:
            self.store.async_schedule_save()
        if ran_out:

            @callback
            def _announce(_hass: HomeAssistant) -> None:
                for session in ran_out:
                    self._notify(session, SessionChange.EXPIRED, REASON_TIMEOUT)

            self._unsubs.append(async_at_started(self.hass, _announce))

    async def async_transcripts_loaded(self) -> None:
        """Wait until the stored transcripts are attached (at once after start-up)."""
        await self.store.async_transcripts_loaded()

    # --- queries ----------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        """Return the active sessions."""
        return list(self._sessions.values())

    def get(self, conversation_id: str) -> Session | None:
        """Return the active session with this conversation id."""
        return self._sessions.get(conversation_id)

    def session_for_key(self, session_key: str) -> Session | None:
        """Return the active session of a key."""
        return self._by_key.get(session_key)

    def matching(
        self,
        *,
        device_id: str | None = None,
        user_id: str | None = None,
        conversation_id: str | None = None,
    ) -> list[Session]:
        """Return the sessions that match every given criterion."""
        return [
            session
            for session in self._sessions.values()
            if (conversation_id is None or session.conversation_id == conversation_id)
            and (device_id is None or session.device_id == device_id)
            and (user_id is None or session.user_id == user_id)
        ]

    @property
    def agent_id(self) -> str | None:
        """Return the entity id of this agent's conversation entity."""
        if self._agent_id is None:
            self._agent_id = er.async_get(self.hass).async_get_entity_id(
                "conversation", DOMAIN, self.entry_id
            )
        return self._agent_id

    # --- turns ------------------------------------------------------------

    @callback
    def async_resolve(
        self,
        conversation_id: str | None,
        *,
        device_id: str | None = None,
        satellite_id: str | None = None,
        user_id: str | None = None,
    ) -> Session:
        """Return the session a turn belongs to, starting one if needed."""
        conversation_id = bounded(conversation_id)
        if conversation_id is not None and (session := self._sessions.get(conversation_id)):
            # Never another person's session by its id: when both users are known and
            # differ, the id is treated as unknown (and not reused for a new session).
            if session.user_id is None or user_id is None or session.user_id == user_id:
                _join(session, user_id)
                self._touch(session)
                return session
            conversation_id = None
        key = session_key_for(self.scope, device_id, satellite_id, user_id)
        if key is not None and (session := self._by_key.get(key)):
            _join(session, user_id)
            self._touch(session)
            return session
        conversation_id = conversation_id or ulid_now()
        now = dt_util.utcnow()
        session = Session(
            conversation_id=conversation_id,
            session_key=key or f"conversation:{conversation_id}",
            device_id=device_id,
            satellite_id=satellite_id,
            user_id=user_id,
            started_at=now,
            last_activity=now,
            expires_at=now + self.timeout,
            max_turns=self.max_turns,
            participants=first_participants(user_id),
        )
        self._add(session)
        self._arm(session)
        self.store.async_schedule_save()
        LOGGER.debug("Session %s started for %s", conversation_id, session.session_key)
        self._notify(session, SessionChange.STARTED)
        return session

    @callback
    def async_record_turn(
        self, session: Session, exchange: Exchange | None, leaving: int = 0
    ) -> None:
        """Count an answered turn; keep the exchange unless the turn failed.

        `leaving`: the oldest exchanges the turn's token budget let go (into the summary).
        """
        if self._sessions.get(session.conversation_id) is not session:
            return  # cleared or expired while the turn was being answered
        if leaving:
            self._retire(session, leaving)
        session.turns += 1
        if exchange is not None:
            if (limit := session.transcript.maxlen) and len(session.transcript) == limit:
                # A quarter leaves at once, not one per turn: the start of the history (and
                # a model server's prompt cache) changes every few turns only.
                self._retire(session, limit - int(limit * LOW_WATER))
            # Half an emoji from a cut stream cannot be saved as JSON: store what can be.
            session.transcript.append(sanitize_exchange(exchange))
        self._touch(session)

    def _retire(self, session: Session, count: int) -> None:
        """Move the `count` oldest exchanges to those waiting for the summary."""
        leaving = [session.transcript.popleft() for _ in range(min(count, len(session.transcript)))]
        if self.summarize:
            # All of them: what waits for the summary is never dropped (see summary.py).
            session.summary_pending = (*session.summary_pending, *leaving)

    @callback
    def async_set_summary(self, session: Session, summary: str, covered: int) -> None:
        """Store a new summary that covers the first `covered` waiting exchanges."""
        if self._sessions.get(session.conversation_id) is not session:
            return  # ended while the summary was being made
        session.summary = summary
        session.summary_pending = session.summary_pending[covered:]
        self.store.async_schedule_save()

    @asynccontextmanager
    async def async_turn(
        self, user_input: ConversationInput, chat_log: ChatLog
    ) -> AsyncIterator[Turn]:
        """Run one turn in its session: resolved, locked, held open, and recorded at the end.

        Turns of one session run one after the other; a turn that waited while its session
        was cleared starts afresh. Turn listeners hear the start and the end. What the body
        leaves in `turn.exchange` is kept when the body finishes (not when it raises).
        """
        done: asyncio.Future[None] = self.hass.loop.create_future()
        self._in_flight.add(done)
        try:
            # Right after start-up the stored transcripts may still be on their way in.
            await self.async_transcripts_loaded()
            session = self.async_resolve_turn(user_input)
            async with self._turn_lock(session.conversation_id):
                if self._sessions.get(session.conversation_id) is not session:
                    session = self.async_resolve_turn(user_input)
                turn = Turn(session, user_input, chat_log)
                self._busy[session.conversation_id] = self._busy.get(session.conversation_id, 0) + 1
                for listener in list(self._turn_listeners):
                    listener.async_turn_started(turn)
                try:
                    yield turn
                    self.async_record_turn(session, turn.exchange, turn.leaving)
                finally:
                    self._async_end_turn(session)
                    for listener in list(self._turn_listeners):
                        listener.async_turn_ended(turn)
        finally:
            done.set_result(None)
            self._in_flight.discard(done)

    @callback
    def async_resolve_turn(self, user_input: ConversationInput) -> Session:
        """Return the session of a turn (resolution rules of the public contract)."""
        return self.async_resolve(
            user_input.conversation_id,
            # Ids Home Assistant does not know key nothing (no session sensor either).
            device_id=known_device_id(self.hass, user_input.device_id),
            satellite_id=known_satellite_id(self.hass, satellite_id_of(user_input)),
            user_id=user_input.context.user_id,
        )

    @asynccontextmanager
    async def _turn_lock(self, conversation_id: str) -> AsyncIterator[None]:
        """Serialize the turns of one session; forget the lock when nobody needs it."""
        lock, users = self._locks.get(conversation_id, (asyncio.Lock(), 0))
        self._locks[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation_id]
            if users == 1:
                del self._locks[conversation_id]
            else:
                self._locks[conversation_id] = (lock, users - 1)

    def _async_end_turn(self, session: Session) -> None:
        """Release a session held by a turn; it times out from now on if idle."""
        if (count := self._busy.pop(session.conversation_id, 0) - 1) > 0:
            self._busy[session.conversation_id] = count
        if (
            self._sessions.get(session.conversation_id) is session
            and session.conversation_id not in self._timers
        ):
            self._touch(session)  # its timer ran out during the turn

    def is_answering(self, session: Session) -> bool:
        """Tell whether a turn of the session is being answered."""
        return session.conversation_id in self._busy

    @callback
    def async_add_turn_listener(self, listener: TurnListener) -> CALLBACK_TYPE:
        """Tell `listener` about every turn's start and end; return a function that stops it."""
        self._turn_listeners.append(listener)
        return partial(self._turn_listeners.remove, listener)

    async def async_wait_for_turns(self) -> None:
        """Wait until the turns in flight are answered and recorded (they are time-limited)."""
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=TURN_TIME_LIMIT + TURN_WAIT_MARGIN)

    async def async_clear(
        self, sessions: Iterable[Session], reason: str, context: Context | None = None
    ) -> int:
        """End sessions now, delete their transcripts from disk, announce it."""
        cleared = [s for s in sessions if self._sessions.get(s.conversation_id) is s]
        for session in cleared:
            self._remove(session)
            self._notify(session, SessionChange.CLEARED, reason, context)
        if cleared and not await self.store.async_flush():
            # Ended in memory, but what was said is still on disk: say so, never `cleared`.
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="clear_not_written",
                translation_placeholders={"retry": f"{SAVE_RETRY_DELAY:.0f}"},
            )
        return len(cleared)

    # --- internals --------------------------------------------------------

    def _add(self, session: Session) -> None:
        """Index a session by id and key."""
        self._sessions[session.conversation_id] = session
        self._by_key[session.session_key] = session

    def _remove(self, session: Session) -> None:
        """Forget a session and cancel its timer."""
        del self._sessions[session.conversation_id]
        if self._by_key.get(session.session_key) is session:
            del self._by_key[session.session_key]
        if (unsub := self._timers.pop(session.conversation_id, None)) is not None:
            unsub()

    def _touch(self, session: Session) -> None:
        """Record activity: push the expiry out."""
        now = dt_util.utcnow()
        previous = session.expires_at
        session.last_activity = now
        session.expires_at = now + self.timeout
        # An armed timer that fires no later than the new expiry is kept: _async_expire
        # re-arms it for the rest. That spares a new timer on every turn; only a clock
        # stepped backwards (an earlier expiry) needs one now.
        if session.expires_at < previous or session.conversation_id not in self._timers:
            self._arm(session)
        self.store.async_schedule_save()
        self._notify(session, SessionChange.ACTIVITY)

    def _arm(self, session: Session) -> None:
        """(Re-)arm the session's expiry timer (not after shutdown: a late turn arms none)."""
        if self._closed:
            return
        if (unsub := self._timers.get(session.conversation_id)) is not None:
            unsub()
        self._timers[session.conversation_id] = async_track_point_in_utc_time(
            self.hass,
            HassJob(
                partial(self._async_expire, session),
                "home_agent_session_expiry",
                job_type=HassJobType.Callback,
            ),
            session.expires_at,
        )

    @callback
    def _async_expire(self, session: Session, _now: datetime) -> None:
        """End a session whose idle time ran out."""
        self._timers.pop(session.conversation_id, None)
        if self._sessions.get(session.conversation_id) is not session:
            return
        if dt_util.utcnow() < session.expires_at:
            self._arm(session)
            return
        if session.conversation_id in self._busy:
            return  # a turn is being answered; its end re-arms the timer
        self._remove(session)
        self.store.async_schedule_save()
        LOGGER.debug("Session %s expired", session.conversation_id)
        self._notify(session, SessionChange.EXPIRED, REASON_TIMEOUT)

    @callback
    def async_add_listener(self, listener: SessionListener) -> CALLBACK_TYPE:
        """Call `listener` on every change; return a function that stops it."""
        self._listeners.append(listener)
        return partial(self._listeners.remove, listener)

    def _notify(
        self,
        session: Session,
        change: SessionChange,
        reason: str | None = None,
        context: Context | None = None,
    ) -> None:
        """Tell listeners (entities write state) and then the bus."""
        for listener in list(self._listeners):
            listener(session, change)
        event_type = _EVENTS.get(change)
        if event_type is None:
            return
        data: dict[str, Any] = {
            "entry_id": self.entry_id,
            "agent_id": self.agent_id,
            **session.public_data(),
        }
        if reason is not None:
            data["reason"] = reason
        self.hass.bus.async_fire(event_type, data, context=context)

    @callback
    def _async_satellite_changed(self, event: Event[EventStateChangedData]) -> None:
        """Keep a satellite's session alive while it listens, thinks or speaks."""
        if not _is_satellite_busy(event.data):
            return
        entity_id = event.data["entity_id"]
        entry = er.async_get(self.hass).async_get(entity_id)
        device_id = entry.device_id if entry else None
        for session in list(self._sessions.values()):
            if session.satellite_id == entity_id or (
                device_id is not None and session.device_id == device_id
            ):
                self._touch(session)


def _join(session: Session, user_id: str | None) -> None:
    """Remember a signed-in user whose turn continues a session (saved with its touch)."""
    if user_id is not None and user_id not in session.participants:
        session.participants = (*session.participants, user_id)


_EVENTS = {
    SessionChange.STARTED: EVENT_SESSION_STARTED,
    SessionChange.EXPIRED: EVENT_SESSION_EXPIRED,
    SessionChange.CLEARED: EVENT_SESSION_CLEARED,
}


def _is_satellite_busy(event_data: EventStateChangedData) -> bool:
    """Match state changes (of satellites) into a non-idle state."""
    new_state = event_data["new_state"]
    return new_state is not None and new_state.state not in (
        SATELLITE_IDLE,
        "unavailable",
        "unknown",
    )
