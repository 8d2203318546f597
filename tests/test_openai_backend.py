"""Backend `openai` against a fake OpenAI-compatible server: request shape and every failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import json
import logging
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

from aiohttp import AsyncResolver
from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import aiohttp_client, intent, llm
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import voluptuous as vol

from custom_components.home_agent.compat import llm_context
from custom_components.home_agent.const import (
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_LLM_HASS_API,
    CONF_MAX_TOKENS,
    CONF_MODEL,
    CONF_PROMPT,
    CONF_TEMPERATURE,
    DOMAIN,
)
from custom_components.home_agent.openai_compatible import MAX_TOOL_ITERATIONS

from .fake_openai import FakeOpenAI
from .helpers import (
    async_add_agent,
    converse,
    make_device,
    openai_agent_data,
    said,
    said_in,
    session_of,
)
from .pipeline_runs import async_tool_name

KITCHEN = "kitchen-satellite"
NOT_UNDERSTOOD = "could not understand"
PROMPT = "You are the voice of {{ ha_name }}. Speak to {{ user_name or 'a guest' }}."


@pytest.fixture
def agent_data(fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return an `openai` agent pointed at the fake server, with the Assist API."""
    return {
        CONF_BACKEND: "openai",
        CONF_BASE_URL: fake_openai.base_url,
        CONF_API_KEY: "sk-test-key",
        CONF_MODEL: "fake-model",
        CONF_PROMPT: PROMPT,
        CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
        CONF_TEMPERATURE: 0.3,
        CONF_MAX_TOKENS: 150,
    }


def speech_of(result: conversation.ConversationResult) -> str:
    """Return what the agent said."""
    speech: str = result.response.speech["plain"]["speech"]
    return speech


async def test_request_carries_model_key_prompt_and_tools(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """The request names the model, authenticates, renders the prompt and offers the tools."""
    fake_openai.reply("Hello there!")

    result = await converse(hass, text="hi", device_id=make_device(hass, KITCHEN))

    assert speech_of(result) == "Hello there!"
    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert result.continue_conversation is False
    (request,) = fake_openai.chat_requests
    assert request.body["stream"] is True
    assert request.headers["Authorization"] == "Bearer sk-test-key"
    assert request.body["model"] == "fake-model"
    assert request.body["temperature"] == 0.3
    assert request.body["max_tokens"] == 150
    assert request.system_prompt.startswith(
        f"You are the voice of {hass.config.location_name}. Speak to a guest."
    )
    turn = SimpleNamespace(
        text="hi", context=Context(), language="en", device_id=KITCHEN, agent_id=None
    )
    assist = await llm.async_get_api(hass, llm.LLM_API_ASSIST, llm_context(DOMAIN, turn))
    assert assist.api_prompt in request.system_prompt
    assert request.dialogue == [("user", "hi")]
    tools = {tool["function"]["name"]: tool for tool in request.body["tools"]}
    assert any(name.endswith("HassTurnOn") for name in tools)
    assert set(tools) == {tool.name for tool in assist.tools}
    for tool in tools.values():
        assert tool["type"] == "function"
        assert tool["function"]["parameters"]["type"] == "object"


async def test_no_llm_api_means_no_tools_and_no_key_no_header(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """Without LLM APIs the model gets no tools; without a key no Authorization header."""
    entry = await _setup_agent(
        hass, fake_openai, **{CONF_LLM_HASS_API: [], CONF_API_KEY: "", CONF_PROMPT: "Be brief."}
    )
    fake_openai.reply("Which room do you mean?")

    result = await converse(hass, text="turn on the light", device_id=make_device(hass, KITCHEN))

    (request,) = fake_openai.chat_requests
    assert "tools" not in request.body
    assert "Authorization" not in request.headers
    assert request.system_prompt.startswith("Be brief.")
    assert "intent tools" not in request.system_prompt
    # A question reopens the satellite's microphone.
    assert result.continue_conversation is True
    assert session_of(entry, result.conversation_id) is not None


async def _setup_agent(hass: HomeAssistant, fake: FakeOpenAI, **data: Any) -> MockConfigEntry:
    """Set up an `openai` agent with some settings changed."""
    return await async_add_agent(
        hass,
        {
            CONF_BACKEND: "openai",
            CONF_BASE_URL: fake.base_url,
            CONF_MODEL: "fake-model",
            CONF_LLM_HASS_API: [llm.LLM_API_ASSIST],
            **data,
        },
    )


async def _failing_turn_keeps_the_session(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake: FakeOpenAI,
    break_server: Callable[[], Awaitable[None]],
    repair_server: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """Fail the second turn of a session; check nothing is lost; return the apology."""
    first = await converse(
        hass, text="what is on my shopping list", device_id=make_device(hass, KITCHEN)
    )
    session = session_of(entry, first.conversation_id)
    assert session is not None
    before = said(session.transcript)
    assert len(before) == 1

    await break_server()
    failed = await converse(
        hass, text="and what about tomorrow", device_id=make_device(hass, KITCHEN)
    )

    assert failed.response.response_type is intent.IntentResponseType.ERROR
    assert failed.conversation_id == first.conversation_id
    assert session_of(entry, first.conversation_id) is session
    assert said(session.transcript) == before
    assert session.turns == 2

    if repair_server is not None:
        await repair_server()
    again = await converse(hass, text="thanks", device_id=make_device(hass, KITCHEN))
    assert again.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert again.conversation_id == first.conversation_id
    assert fake.chat_requests[-1].dialogue == [
        ("user", "what is on my shopping list"),
        ("assistant", speech_of(first)),
        ("user", "thanks"),
    ]
    return speech_of(failed)


def _script(fake: FakeOpenAI, scripting: Callable[[FakeOpenAI], None]) -> Callable[[], Any]:
    """Return a coroutine function that scripts the fake server."""

    async def _apply() -> None:
        scripting(fake)

    return _apply


@pytest.mark.parametrize(
    ("scripting", "words"),
    [
        pytest.param(lambda f: f.status(401), "did not accept my API key", id="401"),
        pytest.param(lambda f: f.status(403), "did not accept my API key", id="403"),
        pytest.param(lambda f: f.status(429), "too many requests", id="429"),
        pytest.param(lambda f: f.status(500), "server had an error (status 500)", id="500"),
        pytest.param(lambda f: f.status(503, "busy"), "server had an error (status 503)", id="503"),
        pytest.param(lambda f: f.status(404), "rejected my request (status 404)", id="404"),
        pytest.param(lambda f: f.raw(b"<html>oops</html>"), NOT_UNDERSTOOD, id="not-json"),
        pytest.param(
            lambda f: f.raw(b'{"object": "chat.completion"}'),
            NOT_UNDERSTOOD,
            id="no-choices",
        ),
        pytest.param(lambda f: f.raw(b'{"choices": []}'), NOT_UNDERSTOOD, id="empty-choices"),
        pytest.param(
            lambda f: f.cut_stream("This answer never ends", after=3),
            "can't reach the language model",
            id="stream-cut",
        ),
        pytest.param(
            lambda f: f.events([b'{"choices": [{"delta": {"content": "Hi"}}]}', b"{oops"]),
            NOT_UNDERSTOOD,
            id="garbage-chunk",
        ),
        pytest.param(lambda f: f.huge(50 * 1024 * 1024), "far too long", id="50-MB-body"),
        pytest.param(
            lambda f: f.raw(b'{"choices": [{"message": {"role": "assistant"}}]}'),
            NOT_UNDERSTOOD,
            id="no-content",
        ),
        pytest.param(
            lambda f: f.raw(b'{"choices": [{"message": {"role": "assistant", "content": 42}}]}'),
            NOT_UNDERSTOOD,
            id="content-not-text",
        ),
    ],
)
async def test_server_failures_are_apologised_for(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    scripting: Callable[[FakeOpenAI], None],
    words: str,
) -> None:
    """An HTTP error or a malformed answer: a spoken reason, the session intact."""
    apology = await _failing_turn_keeps_the_session(
        hass, setup_integration, fake_openai, _script(fake_openai, scripting)
    )

    assert apology.startswith("Sorry")
    assert words in apology


async def test_refused_connection_is_apologised_for(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """The server is down for one turn and back for the next."""
    apology = await _failing_turn_keeps_the_session(
        hass, setup_integration, fake_openai, fake_openai.stop, fake_openai.start
    )

    assert apology == "Sorry, I can't reach the language model server right now"


async def test_slow_server_times_out(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A reply slower than the request timeout is given up."""
    with patch("custom_components.home_agent.client.READ_TIMEOUT", 0.2):
        apology = await _failing_turn_keeps_the_session(
            hass, setup_integration, fake_openai, _script(fake_openai, lambda f: f.slow(30))
        )

    assert apology == "Sorry, the language model took too long to answer"


async def test_endless_tool_calls_are_cut_off(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A model that never stops calling tools is stopped after MAX_TOOL_ITERATIONS replies."""

    def endless(fake: FakeOpenAI) -> None:
        for index in range(MAX_TOOL_ITERATIONS):
            fake.tool_call("NoSuchTool", {}, call_id=f"call_{index}")

    apology = await _failing_turn_keeps_the_session(
        hass, setup_integration, fake_openai, _script(fake_openai, endless)
    )

    assert apology == "Sorry, I got stuck carrying that out and gave up"
    # One request for the first turn, the capped loop, one for the turn after it.
    assert len(fake_openai.chat_requests) == 1 + MAX_TOOL_ITERATIONS + 1


async def test_tool_failures_are_told_to_the_model(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """Unknown tools, garbled arguments and tool errors go back to the model, as in core."""
    turn_on = await async_tool_name(hass, "HassTurnOn")
    fake_openai.tool_call("NoSuchTool", {}, call_id="call_unknown")
    fake_openai.tool_call(turn_on, {"name": "Nonexistent lamp"}, call_id="call_missing")
    fake_openai.tool_call(turn_on, '{"name": "Lamp"', call_id="call_garbled")
    fake_openai.tool_call(turn_on, '["Lamp"]', call_id="call_list")
    fake_openai.reply("I could not find that lamp.")

    result = await converse(hass, text="turn on the lamp", device_id=make_device(hass, KITCHEN))

    assert speech_of(result) == "I could not find that lamp."
    _, second, third, fourth, fifth = fake_openai.chat_requests
    assert second.messages[-2]["tool_calls"][0]["function"]["name"] == "NoSuchTool"
    unknown = second.messages[-1]
    assert unknown["role"] == "tool"
    assert unknown["tool_call_id"] == "call_unknown"
    assert json.loads(unknown["content"]) == {
        "error": "HomeAssistantError",
        "error_text": 'Tool "NoSuchTool" not found',
    }
    missing = json.loads(third.messages[-1]["content"])
    assert third.messages[-1]["tool_call_id"] == "call_missing"
    assert missing["error"] == "MatchFailedError"
    assert "Nonexistent lamp" in missing["error_text"]
    garbled = json.loads(fourth.messages[-1]["content"])
    assert garbled["error"] == "InvalidArguments"
    assert garbled["error_text"].startswith("Arguments are not JSON")
    assert json.loads(fifth.messages[-1]["content"]) == {
        "error": "InvalidArguments",
        "error_text": "Arguments must be a JSON object",
    }
    # Tool traffic is not part of the remembered exchange.
    assert said_in(setup_integration, result.conversation_id) == [
        ("turn on the lamp", "I could not find that lamp.")
    ]


@pytest.mark.parametrize(
    ("data", "apology"),
    [
        pytest.param(
            {CONF_PROMPT: "Hello {{ ha_name "},
            "Sorry, there is a problem with my prompt template",
            id="broken-template",
        ),
        pytest.param(
            {CONF_LLM_HASS_API: ["no_such_api"]},
            "Sorry, the Home Assistant tools no_such_api are not available",
            id="missing-llm-api",
        ),
    ],
)
async def test_broken_settings_are_apologised_for(
    hass: HomeAssistant, fake_openai: FakeOpenAI, data: dict[str, Any], apology: str
) -> None:
    """A broken prompt or a missing LLM API: a spoken reason, and no request is sent."""
    await _setup_agent(hass, fake_openai, **data)

    result = await converse(hass, text="hello", device_id=make_device(hass, KITCHEN))

    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert speech_of(result) == apology
    assert fake_openai.chat_requests == []


async def test_user_text_is_logged_only_at_debug_level(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What people say (and what the model answers) never reaches logs above debug."""
    caplog.set_level(logging.DEBUG)
    fake_openai.reply("Your secret is safe.")
    fake_openai.status(500, "my secret phrase echoed back")

    await converse(hass, text="my secret phrase", device_id=make_device(hass, KITCHEN))
    await converse(hass, text="my secret phrase again", device_id=make_device(hass, KITCHEN))

    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    louder = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert any("my secret phrase" in r.getMessage() for r in debug)
    assert any("Your secret is safe" in r.getMessage() for r in debug)
    assert louder  # the failed turn is reported...
    for record in louder:  # ...without what was said
        assert "secret" not in record.getMessage()


class _NotesTool(llm.Tool):
    """A tool of the test's own LLM API that records its calls."""

    integration = "test"

    def __init__(self, name: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        """Name the tool and where its calls go."""
        self.name = name
        self.description = f"Test tool {name}"
        self.parameters = vol.Schema({vol.Optional("number"): int})
        self._calls = calls

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        """Record the call and answer."""
        self._calls.append((self.name, tool_input.tool_args))
        data = {"noted": tool_input.tool_args.get("number")}
        # Home Assistant 2026.10+ expects a ToolResult.
        result_type = getattr(llm, "ToolResult", None)
        return result_type(data=data) if result_type else data


class _NotesAPI(llm.API):
    """An LLM API whose tools record their calls."""

    def __init__(self, hass: HomeAssistant, tools: list[llm.Tool]) -> None:
        """Register under the id `notes`."""
        super().__init__(hass=hass, id="notes", name="Notes")
        self._tools = tools

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Offer the tools with a prompt of their own."""
        return llm.APIInstance(
            api=self,
            api_prompt="Write notes with the notes tools.",
            llm_context=llm_context,
            tools=self._tools,
        )


async def test_tools_of_several_apis_go_to_the_api_that_owns_them(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """Two LLM APIs: both prompts, all tools offered, each call answered by its own API."""
    await _setup_agent(hass, fake_openai, **{CONF_LLM_HASS_API: [llm.LLM_API_ASSIST, "notes"]})
    turn_on = await async_tool_name(hass, "HassTurnOn")
    calls: list[tuple[str, dict[str, Any]]] = []
    # The second tool has the same name as one of the Assist API's tools.
    unregister = llm.async_register_api(
        hass, _NotesAPI(hass, [_NotesTool("TakeNote", calls), _NotesTool(turn_on, calls)])
    )
    fake_openai.tool_call("TakeNote", {"number": 7}, call_id="call_note")
    fake_openai.tool_call(f"notes__{turn_on}", {"number": 8}, call_id="call_clash")
    fake_openai.reply("Noted twice.")

    result = await converse(hass, text="note 7 and 8", device_id=make_device(hass, KITCHEN))
    unregister()

    assert speech_of(result) == "Noted twice."
    assert calls == [("TakeNote", {"number": 7}), (turn_on, {"number": 8})]
    first, second, third = fake_openai.chat_requests
    offered = {tool["function"]["name"] for tool in first.body["tools"]}
    assert {"TakeNote", turn_on, f"notes__{turn_on}"} <= offered
    assert "Write notes with the notes tools." in first.system_prompt
    assert json.loads(second.messages[-1]["content"]) == {"noted": 7}
    assert json.loads(third.messages[-1]["content"]) == {"noted": 8}


async def test_tool_arguments_sent_as_an_object_are_accepted(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """Some servers send arguments as an object and no call id; the tool still runs."""
    turn_on = await async_tool_name(hass, "HassTurnOn")
    call = {"type": "function", "function": {"name": turn_on, "arguments": {"name": "Attic"}}}
    fake_openai.raw(
        json.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}).encode()
    )
    fake_openai.reply("There is no attic light.")

    result = await converse(hass, text="attic light on", device_id=make_device(hass, KITCHEN))

    assert speech_of(result) == "There is no attic light."
    tool_message = fake_openai.chat_requests[1].messages[-1]
    assert tool_message["tool_call_id"] == "call_0"
    assert "Attic" in json.loads(tool_message["content"])["error_text"]


async def test_an_outage_is_logged_once_and_the_recovery_once(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A down endpoint is one warning however many turns fail, and one line when it is back."""
    await fake_openai.stop()
    for _ in range(3):
        await converse(hass, device_id=make_device(hass, "dev-a"))
    await fake_openai.start()
    await converse(hass, device_id=make_device(hass, "dev-a"))
    await converse(hass, device_id=make_device(hass, "dev-a"))

    ours = [r for r in caplog.records if r.name.startswith("custom_components.home_agent")]
    warnings = [r for r in ours if r.levelno == logging.WARNING and "cannot answer" in r.message]
    recoveries = [r for r in ours if "answers again" in r.message]
    assert len(warnings) == 1
    assert "model_cannot_connect" in warnings[0].message
    assert len(recoveries) == 1


@pytest.mark.parametrize("mode", ["refuse", "ignore"])
async def test_servers_without_streaming_still_answer(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI, mode: str
) -> None:
    """A server that refuses or ignores `stream` answers every turn all the same."""
    fake_openai.stream_mode = mode
    fake_openai.reply("First.")
    fake_openai.reply("Second.")

    kitchen = make_device(hass, KITCHEN)
    first = await converse(hass, text="one", device_id=kitchen)
    second = await converse(hass, text="two", device_id=kitchen)

    assert (speech_of(first), speech_of(second)) == ("First.", "Second.")
    assert second.conversation_id == first.conversation_id
    # A refusing server is asked without streaming from its first refusal on.
    expected = 3 if mode == "refuse" else 2
    assert len(fake_openai.chat_requests) == expected


async def test_half_an_emoji_in_what_was_said_still_reaches_the_model(
    hass: HomeAssistant, setup_integration: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A lone surrogate (half an emoji) in the user's text is sent as JSON's escape, answered."""
    fake_openai.reply("Thumbs up to you too.")

    result = await converse(hass, text="thumbs up \ud83d", device_id=make_device(hass, KITCHEN))

    assert speech_of(result) == "Thumbs up to you too."
    (request,) = fake_openai.chat_requests
    assert request.messages[-1]["content"].startswith("thumbs up \ud83d")


async def test_a_chat_only_agent_tells_its_model_there_are_no_tools(
    hass: HomeAssistant, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """No LLM API, yet the model calls a tool: told there are none, it answers in words."""
    await _setup_agent(hass, fake_openai, **{CONF_LLM_HASS_API: []})
    kitchen = make_device(hass, KITCHEN)
    fake_openai.tool_call("HassTurnOn", {"name": "Kitchen Light"}, call_id="call_light")
    fake_openai.reply("I can't control devices, but I'm happy to chat.")

    result = await converse(hass, text="turn on the kitchen light", device_id=kitchen)
    await converse(hass, text="ok then", device_id=kitchen)

    assert result.response.response_type is intent.IntentResponseType.ACTION_DONE
    assert speech_of(result) == "I can't control devices, but I'm happy to chat."
    asked, answered, later = fake_openai.chat_requests
    assert "tools" not in asked.body
    assert "tools" not in answered.body
    told = answered.messages[-1]
    assert told["role"] == "tool"
    assert told["tool_call_id"] == "call_light"
    assert "No tools are available" in json.loads(told["content"])["error_text"]
    assert later.dialogue[:2] == [
        ("user", "turn on the kitchen light"),
        ("assistant", "I can't control devices, but I'm happy to chat."),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]


# "localhost" resolves to ::1 too; aiohttp tries it first and the test harness (which allows
# 127.0.0.1 only, where the fake server listens) refuses it: the warning says just that (the
# filter's pattern has no colon, which would end it).
@pytest.mark.filterwarnings(r'ignore:A test tried to use socket.* with host "[\W\d]+"')
async def test_an_endpoint_named_localhost_answers(
    hass: HomeAssistant, fake_openai: FakeOpenAI, agent_options: dict[str, Any]
) -> None:
    """The config flow's own suggestion names the host: the name must resolve, on every lane.

    Home Assistant's resolver without its multicast-DNS half (the test harness has no
    zeroconf): aiodns and pycares, as installed in the lane.
    """
    fake_openai.reply("Hello from localhost.")

    def dns_resolver(_hass: HomeAssistant) -> AsyncResolver:
        resolver = AsyncResolver()
        resolver.real_close = resolver.close  # type: ignore[attr-defined]
        return resolver

    with patch.object(aiohttp_client, "_async_make_resolver", dns_resolver):
        await async_add_agent(
            hass, openai_agent_data(fake_openai.url_on("localhost")), agent_options
        )
        result = await converse(hass, text="hello")

    assert result.response.speech["plain"]["speech"] == "Hello from localhost."
