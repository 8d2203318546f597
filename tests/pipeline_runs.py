"""Drive Home Assistant's assist pipeline over its websocket API, as a voice satellite's turn."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from homeassistant.components.assist_pipeline import (
    Pipeline,
    PipelineEvent,
    PipelineEventType,
    PipelineInput,
    PipelineRun as AssistPipelineRun,
    PipelineStage,
)
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import Platform
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import chat_session, llm
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MockHAClientWebSocket, WebSocketGenerator

from custom_components.home_agent.compat import llm_context
from custom_components.home_agent.const import DOMAIN

from .helpers import AGENT_ENTITY_ID, make_device

BED_LIGHT = "light.bed_light"


@dataclass(slots=True, frozen=True)
class PipelineRun:
    """The events of one text pipeline run, intent stage only."""

    events: list[dict[str, Any]]

    def _data(self, event_type: str) -> dict[str, Any]:
        """Return the data of the event of a type."""
        data: dict[str, Any] = next(e["data"] for e in self.events if e["type"] == event_type)
        return data

    @property
    def handed_id(self) -> str:
        """Return the conversation id the pipeline handed the agent (intent-start)."""
        conversation_id: str = self._data("intent-start")["conversation_id"]
        return conversation_id

    @property
    def conversation_id(self) -> str:
        """Return the conversation id the agent answered with (intent-end)."""
        conversation_id: str = self._data("intent-end")["intent_output"]["conversation_id"]
        return conversation_id

    @property
    def response(self) -> dict[str, Any]:
        """Return the agent's intent response."""
        response: dict[str, Any] = self._data("intent-end")["intent_output"]["response"]
        return response

    @property
    def continue_conversation(self) -> bool:
        """Return whether the agent asked the device to listen again."""
        listen: bool = self._data("intent-end")["intent_output"]["continue_conversation"]
        return listen

    @property
    def deltas(self) -> list[dict[str, Any]]:
        """Return the chat-log deltas the pipeline passed on while the agent answered."""
        return [
            event["data"]["chat_log_delta"]
            for event in self.events
            if event["type"] == "intent-progress" and "chat_log_delta" in event.get("data", {})
        ]

    @property
    def speech(self) -> str:
        """Return what the agent said."""
        speech: str = self.response["speech"]["plain"]["speech"]
        return speech


@dataclass(slots=True)
class Voice:
    """A pipeline answered by Home Agent, and a websocket to run it."""

    client: MockHAClientWebSocket
    pipeline_id: str

    async def say(
        self, text: str, device_id: str | None, conversation_id: str | None = None
    ) -> PipelineRun:
        """Speak a sentence on a satellite (passing back HA's id, as within 5 minutes)."""
        return await async_run_text(
            self.client,
            self.pipeline_id,
            text,
            device_id=device_id,
            conversation_id=conversation_id,
        )


async def async_setup_assist_pipeline(hass: HomeAssistant) -> None:
    """Set up assist_pipeline (before any websocket client freezes the HTTP routes)."""
    assert await async_setup_component(hass, "assist_pipeline", {})


def create_text_pipeline(
    conversation_engine: str, *, name: str = "Home Agent voice", prefer_local_intents: bool = False
) -> dict[str, Any]:
    """Return the websocket command that creates a text-only pipeline answered by an agent."""
    return {
        "prefer_local_intents": prefer_local_intents,
        "type": "assist_pipeline/pipeline/create",
        "name": name,
        "language": "en",
        "conversation_engine": conversation_engine,
        "conversation_language": "en",
        "stt_engine": None,
        "stt_language": None,
        "tts_engine": None,
        "tts_language": None,
        "tts_voice": None,
        "wake_word_entity": None,
        "wake_word_id": None,
    }


def run_text(
    pipeline_id: str, text: str, device_id: str | None, conversation_id: str | None
) -> dict[str, Any]:
    """Return the websocket command that runs a pipeline's intent stage for a device's text."""
    return {
        "type": "assist_pipeline/run",
        "start_stage": "intent",
        "end_stage": "intent",
        "input": {"text": text},
        "pipeline": pipeline_id,
        "conversation_id": conversation_id,
        "device_id": device_id,
    }


async def async_create_pipeline(
    client: MockHAClientWebSocket, conversation_engine: str, *, prefer_local_intents: bool = False
) -> str:
    """Create a pipeline answered by an agent; return its id."""
    await client.send_json_auto_id(
        create_text_pipeline(conversation_engine, prefer_local_intents=prefer_local_intents)
    )
    message = await client.receive_json()
    assert message["success"], message
    pipeline_id: str = message["result"]["id"]
    return pipeline_id


async def async_run_text(
    client: MockHAClientWebSocket,
    pipeline_id: str,
    text: str,
    *,
    device_id: str | None,
    conversation_id: str | None = None,
) -> PipelineRun:
    """Run the intent stage for a device the way a satellite's turn reaches the agent."""
    await client.send_json_auto_id(run_text(pipeline_id, text, device_id, conversation_id))
    message = await client.receive_json()
    assert message["success"], message
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] != "run-end":
        message = await client.receive_json()
        events.append(message["event"])
    assert "error" not in [e["type"] for e in events], events
    return PipelineRun(events)


async def async_setup_demo_lights(hass: HomeAssistant) -> None:
    """Set up the demo lights only, exposed to voice assistants."""
    entry = MockConfigEntry(domain="demo")
    entry.add_to_hass(hass)
    with patch(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        [Platform.LIGHT],
    ):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    async_expose_entity(hass, "conversation", BED_LIGHT, True)


async def async_tool_name(hass: HomeAssistant, suffix: str) -> str:
    """Return the name the Assist API gives a tool on this Home Assistant version."""
    turn = SimpleNamespace(text="", context=Context(), language="en", device_id=None, agent_id=None)
    assist = await llm.async_get_api(hass, llm.LLM_API_ASSIST, llm_context(DOMAIN, turn))
    return next(tool.name for tool in assist.tools if tool.name.endswith(suffix))


async def async_voice(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    conversation_engine: str,
    *,
    prefer_local_intents: bool = False,
) -> Voice:
    """Set up a voice pipeline answered by an agent, and a websocket to run it."""
    await async_setup_assist_pipeline(hass)
    client = await hass_ws_client(hass)
    pipeline_id = await async_create_pipeline(
        client, conversation_engine, prefer_local_intents=prefer_local_intents
    )
    return Voice(client, pipeline_id)


async def async_voice_with_lights(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    satellite: str = "Kitchen satellite",
    *,
    prefer_local_intents: bool = False,
) -> tuple[Voice, str]:
    """Set up the demo lights and a voice pipeline answered by Home Agent; add a satellite.

    Returns the voice and the satellite's device id (a device of its own, named `satellite`).
    """
    await async_setup_demo_lights(hass)
    voice = await async_voice(
        hass, hass_ws_client, AGENT_ENTITY_ID, prefer_local_intents=prefer_local_intents
    )
    return voice, make_device(hass, satellite)


def text_pipeline(conversation_engine: str) -> Pipeline:
    """Return a text-only pipeline answered by an agent (as stored pipelines are)."""
    return Pipeline(
        conversation_engine=conversation_engine,
        conversation_language="en",
        language="en",
        name=conversation_engine,
        stt_engine=None,
        stt_language=None,
        tts_engine=None,
        tts_language=None,
        tts_voice=None,
        wake_word_entity=None,
        wake_word_id=None,
        prefer_local_intents=False,
    )


@dataclass(slots=True)
class Satellite:
    """A voice satellite: runs the pipeline itself, with no user, keeping Home Assistant's id.

    This is how an Assist satellite's turn reaches the agent after speech-to-text: its
    context has no user, it names its device, and it passes back the chat session's id.
    """

    hass: HomeAssistant
    agent_id: str
    device_id: str
    context: Context | None = None
    conversation_id: str | None = None

    async def say(self, text: str) -> PipelineRun:
        """Run the intent stage for `text`; return the run's events."""
        if "assist_pipeline" not in self.hass.config.components:
            await async_setup_assist_pipeline(self.hass)
        events: list[dict[str, Any]] = []

        def on_event(event: PipelineEvent) -> None:
            events.append({"type": str(event.type), "data": event.data})

        with chat_session.async_get_chat_session(self.hass, self.conversation_id) as session:
            self.conversation_id = session.conversation_id
            run = AssistPipelineRun(
                self.hass,
                context=self.context or Context(),
                pipeline=text_pipeline(self.agent_id),
                start_stage=PipelineStage.INTENT,
                end_stage=PipelineStage.INTENT,
                event_callback=on_event,
            )
            turn = PipelineInput(
                run=run, session=session, intent_input=text, device_id=self.device_id
            )
            await turn.validate()
            await turn.execute()
        assert PipelineEventType.ERROR not in [e["type"] for e in events], events
        return PipelineRun(events)
