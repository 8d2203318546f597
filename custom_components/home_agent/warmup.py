"""Speak sooner: the model reads the coming turn's prompt while the person is still talking.

A satellite's state turns `listening` when its speech-to-text starts, a second or more
before the words reach the agent. If that satellite's assistant (its pipeline) answers with
this agent, Home Agent sends the model server the request the coming turn will start with
(system prompt, tools, the session's history) asking for one token, so that a server with a
prompt cache (llama.cpp, llama-cpp-python, Ollama, vLLM) holds that prefix when the turn
arrives and only evaluates the new words. It never costs the user:

- one warm-up per satellite at a time, none while a turn of its session runs, none when the
  server most likely holds the prefix already (see `prompt_cache.py`);
- a turn that arrives meanwhile is not held back (the server finishes the shared prefix
  first, which the turn needs anyway); a warm-up that fails or is slow is only logged, at
  debug, and ends with its time limit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from homeassistant.const import MATCH_ALL
from homeassistant.core import Context, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import TrackStates, async_track_state_change_filtered

from .compat import llm_context_of
from .const import DOMAIN, LOGGER
from .keys import SATELLITE_DOMAIN, session_key_for
from .tracker import SessionTracker

if TYPE_CHECKING:
    from .openai_compatible import OpenAICompatibleBackend

SATELLITE_LISTENING = "listening"
# Seconds a warm-up may take before it is given up (a turn is never waiting for it).
WARM_UP_TIME_LIMIT = 60.0
# The satellite's assistant: its `select` entity (assist_pipeline's), by translation key.
_PIPELINE_SELECT = "pipeline"
_PREFERRED = "preferred"


class Warmer:
    """Warm one `openai` agent's model up whenever a satellite it answers starts listening."""

    def __init__(
        self,
        hass: HomeAssistant,
        tracker: SessionTracker,
        backend: OpenAICompatibleBackend,
    ) -> None:
        """Follow the satellites' states."""
        self._hass = hass
        self._tracker = tracker
        self._backend = backend
        # Satellite entity id -> its warm-up in flight.
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        satellites = async_track_state_change_filtered(
            hass, TrackStates(False, set(), {SATELLITE_DOMAIN}), self._async_satellite_changed
        )
        self._unsub = satellites.async_remove

    @callback
    def async_stop(self) -> None:
        """Stop following satellites and give up warm-ups in flight."""
        self._unsub()
        for task in self._in_flight.values():
            task.cancel()
        self._in_flight.clear()

    @callback
    def _async_satellite_changed(self, event: Event[EventStateChangedData]) -> None:
        """Warm up for a satellite that started listening, if its assistant is this agent."""
        new, old = event.data["new_state"], event.data["old_state"]
        if new is None or new.state != SATELLITE_LISTENING:
            return
        if old is not None and old.state == SATELLITE_LISTENING:
            return
        satellite_id = event.data["entity_id"]
        if satellite_id in self._in_flight or (agent := self._tracker.agent_id) is None:
            return
        entry = er.async_get(self._hass).async_get(satellite_id)
        device_id = entry.device_id if entry is not None else None
        if (language := _assistant_language(self._hass, device_id, agent, self._tracker)) is None:
            return
        key = session_key_for(self._tracker.scope, device_id, satellite_id, None)
        session = self._tracker.session_for_key(key) if key is not None else None
        if session is not None and self._tracker.is_answering(session):
            return
        context = llm_context_of(
            DOMAIN,
            context=Context(),
            language=language,
            device_id=device_id,
            agent_id=agent,
            text=None,
        )
        self._in_flight[satellite_id] = task = self._hass.async_create_background_task(
            self._async_warm_up(context, session), f"{DOMAIN} warm-up {satellite_id}"
        )
        task.add_done_callback(lambda _task: self._in_flight.pop(satellite_id, None))

    async def _async_warm_up(self, context: Any, session: Any) -> None:
        """Send the warm-up; any failure is only logged."""
        try:
            async with asyncio.timeout(WARM_UP_TIME_LIMIT):
                body = await self._backend.async_warm_up(context, session)
        except Exception as err:
            LOGGER.debug("No warm-up this time: %r", err)
            return
        if body is None:
            LOGGER.debug("No warm-up needed: the server holds the prompt already")
        else:
            LOGGER.debug("Warmed the model up (%d characters of prompt)", len(body.prompt))


@callback
def _assistant_language(
    hass: HomeAssistant, device_id: str | None, agent_id: str, tracker: SessionTracker
) -> str | None:
    """Return the language a satellite's assistant asks this agent in; None: not this agent.

    The satellite's assistant is chosen by its pipeline `select` entity (the preferred one
    unless set); as the pipeline does, an agent of every language is asked in the speech
    language.
    """
    if "assist_pipeline" not in hass.config.components:
        return None
    from homeassistant.components.assist_pipeline.pipeline import (  # noqa: PLC0415 - optional
        async_get_pipeline,
        async_get_pipelines,
    )

    pipeline = async_get_pipeline(hass)
    registry = er.async_get(hass)
    choices = er.async_entries_for_device(registry, device_id) if device_id else []
    for choice in choices:
        if choice.domain != "select" or choice.translation_key != _PIPELINE_SELECT:
            continue
        state = hass.states.get(choice.entity_id)
        if state is not None and state.state != _PREFERRED:
            chosen = [p for p in async_get_pipelines(hass) if p.name == state.state]
            pipeline = chosen[0] if chosen else pipeline
        break
    if pipeline.conversation_engine not in (agent_id, tracker.entry_id):
        return None
    if pipeline.conversation_language == MATCH_ALL:
        return pipeline.stt_language or pipeline.tts_language or pipeline.language
    return pipeline.conversation_language
