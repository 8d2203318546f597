"""(h) What keeping delegates' conversations costs, and a delegated turn's own overhead.

- h1: 10,000 sessions of an `agent` Home Agent, each with its delegate's conversation (a
  Home Assistant chat session with a chat log, as a core agent leaves it): one round of
  Home Agent marking them used and one of Home Assistant's own sweep walking them, each
  called as its timer calls it (best of 5); the loop time per minute they take at their
  intervals, and the longer of the two as the largest block.
- h2: Home Agent's own overhead per pipeline turn when it delegates: the same turns of an
  echo agent through a real pipeline (intent stage), directly and through Home Agent,
  interleaved. Overhead = delegated turn - direct turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import datetime as dt
import statistics
import time
from typing import Any

from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.components.conversation.const import DATA_COMPONENT
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session, intent
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_AGENT_ID,
    CONF_BACKEND,
    CONF_SESSION_SCOPE,
    DOMAIN,
)
from custom_components.home_agent.delegate_conversations import (
    KEEP_ALIVE_INTERVAL,
    DelegateConversations,
)

from .harness import AnyLanguageAgent, home_assistant
from .pipeline import WARM_UP, _Satellite

HOME_AGENT = "conversation.home_agent"
ECHO = "conversation.chat_log_echo"


class _ChatLogEchoEntity(AnyLanguageAgent):
    """Answers at once, into the chat log of the id it is given (as core agents leave one)."""

    _attr_name = "Chat log echo"
    _attr_unique_id = "bench_chat_log_echo"
    _attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        """Say "Done." in the conversation's chat log."""
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=ECHO, content="Done.")
        )
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech("Done.")
        return conversation.ConversationResult(
            response=response, conversation_id=chat_log.conversation_id
        )


async def _async_set_up(hass: HomeAssistant, scope: str = "device") -> MockConfigEntry:
    """Set up the conversation stack, the echo agent and Home Agent delegating to it."""
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # let custom_components load
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "assist_pipeline", {})
    await hass.data[DATA_COMPONENT].async_add_entities([_ChatLogEchoEntity()])
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent",
        data={CONF_BACKEND: "agent", CONF_AGENT_ID: ECHO},
        options={CONF_SESSION_SCOPE: scope},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@dataclass(frozen=True, slots=True)
class KeepAliveCost:
    """Loop time spent keeping delegates' conversations alive (real clock, best of runs)."""

    sessions: int
    # Milliseconds: one keep-alive round (every 4 minutes), one of Home Assistant's sweeps
    # over the chat sessions it keeps (every 5 minutes and a second).
    keep_alive: float
    sweep: float

    @property
    def per_minute(self) -> float:
        """Return the loop time both take per minute, in milliseconds."""
        keep_alive_interval = KEEP_ALIVE_INTERVAL.total_seconds() / 60
        sweep_interval = (chat_session.CONVERSATION_TIMEOUT.total_seconds() + 1) / 60
        return self.keep_alive / keep_alive_interval + self.sweep / sweep_interval

    @property
    def largest_block(self) -> float:
        """Return the longest the loop is held by either, in milliseconds."""
        return max(self.keep_alive, self.sweep)


async def async_measure_keep_alive(sessions: int, rounds: int = 5) -> KeepAliveCost:
    """Start `sessions` delegated sessions; time a keep-alive round and a sweep over them."""
    async with home_assistant() as hass:
        entry = await _async_set_up(hass, scope="none")
        for n in range(sessions):
            # Callers that pass their own ids back: one session each (scope `none`).
            await conversation.async_converse(
                hass, "turn on the lights", f"bench-{n:05d}", Context(), agent_id=HOME_AGENT
            )
        conversations: DelegateConversations = entry.runtime_data.backend._conversations
        assert conversations.held == sessions, conversations.held
        # Home Assistant's own sweep, as its timer runs it (nothing is old enough to go).
        sweeper = hass.data[chat_session.DATA_CHAT_SESSION_CLEANUP]
        keep_alive, sweep = [], []
        for _ in range(rounds):
            keep_alive.append(_timed_call(conversations._async_keep_alive))
            sweep.append(_timed_call(sweeper._cleanup))
        assert conversations.held == sessions
        await hass.config_entries.async_unload(entry.entry_id)
    return KeepAliveCost(sessions, min(keep_alive) * 1000, min(sweep) * 1000)


def _timed_call(action: Callable[[dt.datetime], Any]) -> float:
    """Return the seconds one call takes (given the time, as timers call it)."""
    now = dt_util.utcnow()
    start = time.perf_counter()
    action(now)
    return time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class DelegatedTurns:
    """Median wall time of one pipeline turn, ms: the echo agent directly and delegated."""

    direct: float
    delegated: float
    turns: int

    @property
    def overhead(self) -> float:
        """Return what delegating through Home Agent adds to a turn."""
        return self.delegated - self.direct


async def async_measure_delegated_turns(turns: int) -> DelegatedTurns:
    """Run `turns` interleaved pipeline turns of the echo agent, directly and delegated."""
    async with home_assistant() as hass:
        await _async_set_up(hass)
        direct, delegated = _Satellite(hass, ECHO), _Satellite(hass, HOME_AGENT)
        samples: dict[str, list[int]] = {ECHO: [], HOME_AGENT: []}
        timed: list[tuple[str, Callable[[], Any]]] = [
            (ECHO, direct.async_turn),
            (HOME_AGENT, delegated.async_turn),
        ]
        for _ in range(WARM_UP + turns):
            for name, action in timed:
                start = time.perf_counter_ns()
                await action()
                samples[name].append(time.perf_counter_ns() - start)
        assert delegated.speech == "Done.", delegated.speech
    medians = {name: statistics.median(values[WARM_UP:]) / 1e6 for name, values in samples.items()}
    return DelegatedTurns(medians[ECHO], medians[HOME_AGENT], turns)
