"""(d) Home Agent's own overhead per turn through a real assist pipeline run.

Three agents answer the same turns through the same pipeline (intent stage, as the
Assist dialog runs it and as a satellite's run continues after speech-to-text), in one
Home Assistant, against the local fake OpenAI-compatible server (tests/fake_openai.py,
zero latency):

- Home Agent, backend `openai`, default Assist API and prompt;
- the naive plan's agent: the same backend call inside the plan's session handling;
- an echo agent that answers at once: what the pipeline itself costs.

The bare HTTP round trip is Home Agent's last request replayed to the same server
through Home Assistant's shared aiohttp session. The turns are interleaved, so load on
the machine hits all of them alike. Overhead = agent turn - echo turn - round trip.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import statistics
import time
from typing import Any

from aiohttp.test_utils import unused_port
from homeassistant import loader
from homeassistant.components import conversation
from homeassistant.components.assist_pipeline import PipelineEvent, PipelineEventType
from homeassistant.components.assist_pipeline.pipeline import (
    PipelineInput,
    PipelineRun,
    PipelineStage,
)
from homeassistant.components.conversation.const import DATA_COMPONENT
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import aiohttp_client, chat_session, intent, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.home_agent.const import (
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MODEL,
    DOMAIN,
)
from custom_components.home_agent.data import HomeAgentConfigEntry
from tests.fake_openai import FakeOpenAI
from tests.pipeline_runs import text_pipeline

from .harness import AnyLanguageAgent, home_assistant, plain_resolver
from .naive import ConversationSessionManager, NaiveAgentEntity

TEXT = "turn on the living room lights"
DEVICE_ID = "kitchen-satellite"
API_KEY = "sk-bench"
WARM_UP = 20
# What is timed: agents by entity id, and the bare HTTP round trip.
HOME_AGENT = "conversation.home_agent"
HOME_AGENT_NO_TOOLS = "conversation.home_agent_no_tools"
NAIVE = "conversation.naive_plan"
ECHO = "conversation.echo"
ROUND_TRIP = "round_trip"


@dataclass(frozen=True, slots=True)
class PipelineTimes:
    """Median wall time of one turn, in milliseconds, for each thing measured."""

    medians: dict[str, float]
    turns: int

    def overhead(self, agent: str) -> float:
        """Return what an agent adds to a turn beyond the pipeline and the HTTP call."""
        return self.medians[agent] - self.medians[ECHO] - self.medians[ROUND_TRIP]


class _EchoAgentEntity(AnyLanguageAgent):
    """Answers at once without any work: the pipeline's own cost."""

    _attr_name = "Echo"
    _attr_unique_id = "bench_echo"
    _attr_supported_features = conversation.ConversationEntityFeature.CONTROL

    async def async_process(
        self, user_input: conversation.ConversationInput
    ) -> conversation.ConversationResult:
        """Say "Done." in the caller's conversation."""
        response = intent.IntentResponse(language=user_input.language)
        response.async_set_speech("Done.")
        return conversation.ConversationResult(
            response=response, conversation_id=user_input.conversation_id
        )


class _Satellite:
    """Runs pipeline turns the way a satellite does: it keeps Home Assistant's session id."""

    def __init__(self, hass: HomeAssistant, agent_id: str) -> None:
        """Talk to one agent."""
        self._hass = hass
        self._pipeline = text_pipeline(agent_id)
        self._conversation_id: str | None = None
        self.speech = ""

    async def async_turn(self) -> None:
        """Run one intent-stage pipeline turn; raise if the agent did not answer."""
        ended: list[dict[str, Any]] = []

        def on_event(event: PipelineEvent) -> None:
            if event.type is PipelineEventType.INTENT_END and event.data is not None:
                ended.append(event.data)
            elif event.type is PipelineEventType.ERROR:
                raise RuntimeError(f"pipeline error: {event.data}")

        with chat_session.async_get_chat_session(self._hass, self._conversation_id) as session:
            self._conversation_id = session.conversation_id
            run = PipelineRun(
                self._hass,
                context=Context(),
                pipeline=self._pipeline,
                start_stage=PipelineStage.INTENT,
                end_stage=PipelineStage.INTENT,
                event_callback=on_event,
            )
            turn = PipelineInput(run=run, session=session, intent_input=TEXT, device_id=DEVICE_ID)
            await turn.validate()
            await turn.execute()
        response = ended[-1]["intent_output"]["response"]
        if response["response_type"] == "error":
            raise RuntimeError(f"the agent failed: {response['speech']}")
        self.speech = response["speech"]["plain"]["speech"]


async def _async_set_up(hass: HomeAssistant, fake: FakeOpenAI) -> None:
    """Set up the voice stack, two Home Agents (openai backend) and the two other agents."""
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # let custom_components load
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "http", {"http": {"server_host": "127.0.0.1", "server_port": unused_port()}}
    )
    assert await async_setup_component(hass, "assist_pipeline", {})
    data = {
        CONF_BACKEND: "openai",
        CONF_BASE_URL: fake.base_url,
        CONF_API_KEY: API_KEY,
        CONF_MODEL: "fake-model",
    }
    entries = {
        "Home Agent": {**data, CONF_LLM_HASS_API: [llm.LLM_API_ASSIST]},
        "Home Agent no tools": {**data, CONF_LLM_HASS_API: []},
    }
    loaded = {}
    for title, entry_data in entries.items():
        loaded[title] = entry = MockConfigEntry(domain=DOMAIN, title=title, data=entry_data)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
    # The naive agent asks the model exactly as the default Home Agent does: through its
    # backend, keeping as many exchanges (its own sessions and history are the plan's).
    default: HomeAgentConfigEntry = loaded["Home Agent"]
    naive = NaiveAgentEntity(
        ConversationSessionManager(hass),
        default.runtime_data.backend,
        default.runtime_data.settings.history_max_turns,
    )
    await hass.data[DATA_COMPONENT].async_add_entities([_EchoAgentEntity(), naive])
    await hass.async_block_till_done()
    for agent_id in (HOME_AGENT, HOME_AGENT_NO_TOOLS, NAIVE, ECHO):
        assert hass.states.get(agent_id) is not None, agent_id


async def _async_timed(action: Callable[[], Awaitable[None]]) -> int:
    """Return how long `action` took, in nanoseconds."""
    start = time.perf_counter_ns()
    await action()
    return time.perf_counter_ns() - start


def _median_ms(samples: list[int]) -> float:
    """Return the median of nanosecond samples, in milliseconds."""
    return statistics.median(samples[WARM_UP:]) / 1e6


async def async_measure(turns: int) -> PipelineTimes:
    """Run `turns` interleaved turns of each agent and of the bare HTTP round trip."""
    with plain_resolver():
        return await _async_measure(turns)


async def _async_measure(turns: int) -> PipelineTimes:
    """Measure in a fresh Home Assistant with the fake server running."""
    async with home_assistant() as hass, FakeOpenAI() as fake:
        await _async_set_up(hass, fake)
        satellites = {
            agent_id: _Satellite(hass, agent_id)
            for agent_id in (ECHO, HOME_AGENT, HOME_AGENT_NO_TOOLS, NAIVE)
        }
        http = aiohttp_client.async_get_clientsession(hass)
        url = f"{fake.base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        last_body: dict[str, Any] = {}

        async def round_trip() -> None:
            async with http.post(url, json=last_body, headers=headers) as response:
                response.raise_for_status()
                await response.read()  # the whole (streamed) reply

        samples: dict[str, list[int]] = {name: [] for name in (*satellites, ROUND_TRIP)}
        for _ in range(WARM_UP + turns):
            for agent_id, satellite in satellites.items():
                samples[agent_id].append(await _async_timed(satellite.async_turn))
                if agent_id == HOME_AGENT:
                    # Replay exactly what Home Agent just sent.
                    last_body = fake.chat_requests[-1].body
                    samples[ROUND_TRIP].append(await _async_timed(round_trip))
        for agent_id in (HOME_AGENT, HOME_AGENT_NO_TOOLS, NAIVE):
            speech = satellites[agent_id].speech
            assert speech.startswith("Reply "), f"{agent_id} said {speech!r}"
        return PipelineTimes({name: _median_ms(values) for name, values in samples.items()}, turns)
