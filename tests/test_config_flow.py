"""Config, options, reconfigure and reauth flows, against a real /models endpoint on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import timedelta
import json
import logging
from pathlib import Path
import re
import socket
from typing import Any

from aiohttp import web
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_USER,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from homeassistant.helpers import llm
from homeassistant.helpers.selector import SelectSelector, TextSelector
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.home_agent.const import DOMAIN, EVENT_SESSION_EXPIRED, SessionScope

from .helpers import (
    async_advance,
    converse,
    loaded_agent,
    make_device,
    session_of,
    session_of_key,
    session_settings,
    setup_entry,
    start_session,
)

STRINGS: dict[str, Any] = json.loads(
    (
        Path(__file__).parents[1] / "custom_components" / "home_agent" / "translations" / "en.json"
    ).read_text(encoding="utf-8")
)
MODELS = ["qwen2.5:7b", "llama3.2:3b"]
SESSION_INPUT = {"session_timeout": 600, "session_scope": "user", "history_max_turns": 4}
# Household memory is off unless chosen.
MEMORY_DEFAULTS = {"memory": False, "memory_prompt_tokens": 300}
OPENAI_OPTIONS = {
    "model": "llama3.2:3b",
    "prompt": "You are the kitchen assistant.",
    "llm_hass_api": ["assist"],
    "temperature": 0.3,
    "max_tokens": 256,
    "session_timeout": 3600,
    "session_scope": "device",
    "history_max_turns": 10,
}


class ModelsEndpoint:
    """Answer `GET /v1/models` like an OpenAI-compatible server, or however a test says."""

    def __init__(self) -> None:
        """Serve two models to anybody."""
        self.models = list(MODELS)
        self.api_key: str | None = None
        self.answer: tuple[int, str] | None = None
        self.authorizations: list[str | None] = []
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.Response:
        """List the models, refuse a wrong key, or give the scripted answer."""
        self.authorizations.append(request.headers.get("Authorization"))
        if self.answer is not None:
            status, text = self.answer
            return web.Response(status=status, text=text, content_type="text/html")
        if self.api_key is not None and (
            request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return web.json_response({"error": {"message": "Incorrect API key"}}, status=401)
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        )


@pytest.fixture(autouse=True)
async def core(hass: HomeAssistant) -> None:
    """Set up Home Assistant's core integration, as a running instance always has."""
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture
async def endpoint(socket_enabled: None) -> AsyncGenerator[ModelsEndpoint]:
    """Run the /models endpoint on a free port of 127.0.0.1, then close it."""
    fake = ModelsEndpoint()
    app = web.Application()
    app.router.add_get("/v1/models", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    yield fake
    await runner.cleanup()


@pytest.fixture
def closed_url(socket_enabled: None) -> str:
    """Return the URL of a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def assert_translated(result: ConfigFlowResult, section: str = "config") -> None:
    """Check en.json has every string the frontend needs to show this result."""
    strings = STRINGS[section]
    if result["type"] is FlowResultType.CREATE_ENTRY:
        return
    if result["type"] is FlowResultType.ABORT:
        assert result["reason"] in strings["abort"]
        return
    assert result["type"] is FlowResultType.FORM
    step = strings["step"][result["step_id"]]
    assert step["title"]
    for key, selector in result["data_schema"].schema.items():
        assert step["data"][str(key)]
        assert step["data_description"][str(key)]
        if isinstance(selector, SelectSelector) and "translation_key" in selector.config:
            labels = STRINGS["selector"][selector.config["translation_key"]]["options"]
            assert set(selector.config["options"]) == set(labels)
    texts = [step.get("description", "")]
    texts.extend(strings["error"][error] for error in (result["errors"] or {}).values())
    placeholders = result["description_placeholders"] or {}
    for text in texts:
        for name in re.findall(r"{(\w+)}", text):
            assert name in placeholders, f"{result['step_id']}: {{{name}}} is not filled in"


def field(result: ConfigFlowResult, name: str) -> tuple[Any, Any]:
    """Return (schema key, selector) of a form field."""
    for key, selector in result["data_schema"].schema.items():
        if str(key) == name:
            return key, selector
    raise AssertionError(f"{name} is not in the form")


def suggested(result: ConfigFlowResult, name: str) -> Any:
    """Return the value a form field is pre-filled with."""
    key, _selector = field(result, name)
    if key.description and "suggested_value" in key.description:
        return key.description["suggested_value"]
    return key.default()


async def configure(
    hass: HomeAssistant, result: ConfigFlowResult, user_input: dict[str, Any]
) -> ConfigFlowResult:
    """Submit a config flow form; check what comes back is translated."""
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert_translated(result)
    return result


async def configure_options(
    hass: HomeAssistant, result: ConfigFlowResult, user_input: dict[str, Any]
) -> ConfigFlowResult:
    """Submit an options flow form; check what comes back is translated."""
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert_translated(result, "options")
    return result


async def start_user_flow(hass: HomeAssistant, name: str, backend: str) -> ConfigFlowResult:
    """Open the add-integration dialog and pick a name and backend."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert_translated(result)
    return await configure(hass, result, {"name": name, "backend": backend})


async def start_options(hass: HomeAssistant, entry: MockConfigEntry) -> ConfigFlowResult:
    """Open the options dialog of an entry."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert_translated(result, "options")
    return result


def openai_entry(
    hass: HomeAssistant, base_url: str, api_key: str = "", **options: Any
) -> MockConfigEntry:
    """Add an `openai` agent as the config flow stores it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Kitchen",
        data={"backend": "openai", "base_url": base_url, "api_key": api_key},
        options={**OPENAI_OPTIONS, **options},
    )
    entry.add_to_hass(hass)
    return entry


def agent_entry(hass: HomeAssistant, agent_id: str) -> MockConfigEntry:
    """Add an `agent` agent as the config flow stores it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home Agent",
        data={"backend": "agent"},
        options={
            "agent_id": agent_id,
            "session_timeout": 3600,
            "session_scope": "device",
            "history_max_turns": 10,
        },
    )
    entry.add_to_hass(hass)
    return entry


# --- config flow: openai ---------------------------------------------------------------


async def test_openai_agent_is_created_with_the_chosen_model(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """Endpoint checked, its models offered, connection in data and the rest in options."""
    endpoint.api_key = "sk-kitchen"
    result = await start_user_flow(hass, "Kitchen", "openai")
    assert result["step_id"] == "openai"
    assert suggested(result, "base_url") == "http://localhost:11434/v1"

    result = await configure(
        hass, result, {"base_url": f" {endpoint.base_url}/ ", "api_key": "sk-kitchen"}
    )
    assert result["step_id"] == "model"
    assert endpoint.authorizations == ["Bearer sk-kitchen"]
    _key, models = field(result, "model")
    assert models.config["options"] == sorted(MODELS)
    assert models.config["custom_value"] is True
    assert suggested(result, "model") == "llama3.2:3b"
    assert suggested(result, "llm_hass_api") == ["assist"]
    _key, apis = field(result, "llm_hass_api")
    assert {"value": "assist", "label": "Assist"} in apis.config["options"]

    result = await configure(
        hass,
        result,
        {
            "model": "qwen2.5:7b",
            "prompt": "You are the kitchen assistant. It is {{ now().hour }} o'clock.",
            "llm_hass_api": [],
            "temperature": 0.2,
            "max_tokens": 300,
            "history_max_tokens": 6000,
            "history_summary": False,
            **SESSION_INPUT,
            "memory": True,
            "memory_prompt_tokens": 500,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Kitchen"
    assert result["data"] == {
        "backend": "openai",
        "base_url": endpoint.base_url,
        "api_key": "sk-kitchen",
    }
    assert result["options"] == {
        "model": "qwen2.5:7b",
        "prompt": "You are the kitchen assistant. It is {{ now().hour }} o'clock.",
        "llm_hass_api": [],
        "temperature": 0.2,
        "max_tokens": 300,
        "history_max_tokens": 6000,
        "history_summary": False,
        # The endpoint is on this machine: warming the model up is on by default.
        "warm_up": True,
        "session_timeout": 600,
        "session_scope": "user",
        "history_max_turns": 4,
        "memory": True,
        "memory_prompt_tokens": 500,
    }
    assert isinstance(result["options"]["session_timeout"], int)
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    assert session_settings(entry).timeout == timedelta(seconds=600)


async def test_openai_defaults_and_a_model_the_endpoint_does_not_list(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """Without an API key and with every default, a typed model name is kept."""
    result = await start_user_flow(hass, "Home Agent", "openai")
    result = await configure(hass, result, {"base_url": endpoint.base_url})
    assert endpoint.authorizations == [None]

    result = await configure(hass, result, {"model": "mistral:latest"})
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {"backend": "openai", "base_url": endpoint.base_url, "api_key": ""}
    assert result["options"] == {
        "model": "mistral:latest",
        "prompt": llm.DEFAULT_INSTRUCTIONS_PROMPT.strip(),
        "llm_hass_api": ["assist"],
        "temperature": 0.7,
        "max_tokens": 512,
        "history_max_tokens": 1536,
        "history_summary": True,
        "warm_up": True,
        "session_timeout": 3600,
        "session_scope": "device",
        "history_max_turns": 10,
        **MEMORY_DEFAULTS,
    }


@pytest.mark.parametrize(
    ("problem", "error"),
    [
        ("closed port", {"base": "cannot_connect"}),
        ("wrong key", {"base": "invalid_auth"}),
        ("forbidden", {"base": "invalid_auth"}),
        ("not json", {"base": "unknown"}),
        ("no model list", {"base": "unknown"}),
        ("not found", {"base": "unknown"}),
        ("server error", {"base": "cannot_connect"}),
        ("no scheme", {"base_url": "invalid_url"}),
    ],
)
async def test_openai_endpoint_problem_is_shown_then_fixed(
    hass: HomeAssistant, endpoint: ModelsEndpoint, closed_url: str, problem: str, error: Any
) -> None:
    """Each endpoint problem is a translated form error; once fixed the agent is created."""
    endpoint.api_key = "sk-right"
    base_url, api_key = endpoint.base_url, "sk-right"
    if problem == "closed port":
        base_url = closed_url
    elif problem == "wrong key":
        api_key = "sk-wrong"
    elif problem == "no scheme":
        base_url = "127.0.0.1:11434/v1"
    else:
        endpoint.answer = {
            "forbidden": (403, "Forbidden"),
            "not json": (200, "<html>It works!</html>"),
            "no model list": (200, '{"object": "list"}'),
            "not found": (404, "404 page not found"),
            "server error": (502, "Bad Gateway"),
        }[problem]

    result = await start_user_flow(hass, "Kitchen", "openai")
    result = await configure(hass, result, {"base_url": base_url, "api_key": api_key})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "openai"
    assert result["errors"] == error
    assert suggested(result, "base_url") == base_url

    endpoint.answer = None
    result = await configure(hass, result, {"base_url": endpoint.base_url, "api_key": "sk-right"})
    assert result["step_id"] == "model"
    result = await configure(hass, result, {"model": "qwen2.5:7b"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["api_key"] == "sk-right"


async def test_broken_prompt_template_is_rejected(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """A prompt that is not a valid template is refused on its field, not a broken agent."""
    result = await start_user_flow(hass, "Kitchen", "openai")
    result = await configure(hass, result, {"base_url": endpoint.base_url})
    with pytest.raises(InvalidData) as err:
        await configure(hass, result, {"model": "qwen2.5:7b", "prompt": "It is {{ now( }}"})
    assert set(err.value.schema_errors) == {"prompt"}
    assert not hass.config_entries.async_entries(DOMAIN)

    result = await configure(hass, result, {"model": "qwen2.5:7b", "prompt": "Be brief."})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_several_agents_share_one_endpoint_and_model(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """Jarvis and Friday: one endpoint and model, two prompts, two agents."""
    openai_entry(hass, endpoint.base_url, model="qwen2.5:7b")

    for name, prompt in (("Jarvis", "You are Jarvis."), ("Friday", "You are Friday.")):
        result = await start_user_flow(hass, name, "openai")
        result = await configure(hass, result, {"base_url": endpoint.base_url + "/"})
        result = await configure(hass, result, {"model": "qwen2.5:7b", "prompt": prompt})
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
    entries = hass.config_entries.async_entries(DOMAIN)
    assert [entry.title for entry in entries] == ["Kitchen", "Jarvis", "Friday"]
    assert {entry.data["base_url"] for entry in entries} == {endpoint.base_url}
    assert [entry.options["prompt"] for entry in entries[1:]] == [
        "You are Jarvis.",
        "You are Friday.",
    ]


# --- config flow: agent ----------------------------------------------------------------


async def test_agent_backend_is_created(hass: HomeAssistant) -> None:
    """Delegating to the built-in agent stores only the backend in data."""
    result = await start_user_flow(hass, "Living room", "agent")
    assert result["step_id"] == "agent"
    assert suggested(result, "agent_id") == "conversation.home_assistant"
    assert suggested(result, "session_timeout") == 3600
    assert suggested(result, "session_scope") == "device"
    assert suggested(result, "history_max_turns") == 10
    _key, timeout = field(result, "session_timeout")
    assert timeout.config["unit_of_measurement"] == "s"
    _key, scope = field(result, "session_scope")
    assert scope.config["options"] == [scope.value for scope in SessionScope]

    result = await configure(
        hass, result, {"agent_id": "conversation.home_assistant", **SESSION_INPUT}
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Living room"
    assert result["data"] == {"backend": "agent"}
    assert result["options"] == {
        "agent_id": "conversation.home_assistant",
        **SESSION_INPUT,
        **MEMORY_DEFAULTS,
    }
    assert result["result"].state is ConfigEntryState.LOADED


async def test_agent_cannot_delegate_to_home_agent_or_to_nothing(hass: HomeAssistant) -> None:
    """Home Agent agents (by entity or entry id) and unknown agents are refused."""
    own = agent_entry(hass, "conversation.elsewhere")
    await setup_entry(hass, own)

    result = await start_user_flow(hass, "Loop", "agent")
    for agent_id, error in (
        ("conversation.home_agent", "own_agent"),
        (own.entry_id, "own_agent"),
        ("conversation.nobody", "agent_not_found"),
    ):
        result = await configure(hass, result, {"agent_id": agent_id})
        assert result["step_id"] == "agent"
        assert result["errors"] == {"agent_id": error}

    result = await configure(hass, result, {"agent_id": "conversation.home_assistant"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_several_agents_share_one_delegate(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """A second agent delegating to the same agent, with another scope, is its own agent."""
    result = await start_user_flow(hass, "Night", "agent")
    result = await configure(
        hass,
        result,
        {**SESSION_INPUT, "agent_id": "conversation.home_assistant", "session_scope": "user"},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    night = result["result"]
    assert night.state is ConfigEntryState.LOADED
    kitchen = make_device(hass, "Kitchen satellite")
    day_turn = await converse(hass, device_id=kitchen)
    night_turn = await converse(hass, device_id=kitchen, agent_id="conversation.night")
    assert day_turn.conversation_id != night_turn.conversation_id
    assert session_settings(night).scope is SessionScope.USER


# --- options flow ----------------------------------------------------------------------


async def test_options_change_reloads_and_keeps_sessions(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A session started before the change continues afterwards, under the new timeout."""
    entry = agent_entry(hass, "conversation.home_assistant")
    await setup_entry(hass, entry)
    device_id = make_device(hass, "Kitchen satellite")
    first = await converse(hass, device_id=device_id)
    before = loaded_agent(entry)

    result = await start_options(hass, entry)
    assert suggested(result, "agent_id") == "conversation.home_assistant"
    assert suggested(result, "session_timeout") == 3600
    result = await configure_options(
        hass,
        result,
        {
            "agent_id": "conversation.home_assistant",
            "session_timeout": 120,
            "session_scope": "device",
            "history_max_turns": 3,
        },
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "agent_id": "conversation.home_assistant",
        "session_timeout": 120,
        "session_scope": "device",
        "history_max_turns": 3,
        **MEMORY_DEFAULTS,
    }
    assert entry.state is ConfigEntryState.LOADED
    assert loaded_agent(entry) is not before
    settings = session_settings(entry)
    assert settings.timeout == timedelta(seconds=120)
    assert settings.max_turns == 3
    session = session_of(entry, first.conversation_id)
    assert session is not None
    assert session.expires_at == session.last_activity + timedelta(seconds=120)

    second = await converse(hass, device_id=device_id)
    assert second.conversation_id == first.conversation_id

    expired = async_capture_events(hass, EVENT_SESSION_EXPIRED)
    await async_advance(hass, freezer, timedelta(seconds=121))
    assert [event.data["conversation_id"] for event in expired] == [first.conversation_id]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("session_timeout", 59),
        ("session_timeout", 86401),
        ("session_scope", "room"),
        ("history_max_turns", 0),
        ("history_max_turns", 101),
    ],
)
async def test_options_out_of_range_are_rejected(
    hass: HomeAssistant, setup_integration: MockConfigEntry, key: str, value: Any
) -> None:
    """An invalid option is reported on its field; nothing changes; the form stays usable."""
    entry = setup_integration
    before = dict(entry.options)
    loaded = loaded_agent(entry)
    valid = {
        "agent_id": "conversation.home_assistant",
        "session_timeout": 60,
        "session_scope": "device_user",
        "history_max_turns": 100,
    }
    result = await start_options(hass, entry)

    with pytest.raises(InvalidData) as err:
        await hass.config_entries.options.async_configure(result["flow_id"], {**valid, key: value})
    assert set(err.value.schema_errors) == {key}
    await hass.async_block_till_done()
    assert dict(entry.options) == before
    assert loaded_agent(entry) is loaded

    result = await configure_options(hass, result, valid)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert session_settings(entry).timeout == timedelta(seconds=60)
    assert session_settings(entry).scope is SessionScope.DEVICE_USER


async def test_options_refuse_a_new_agent_that_cannot_answer(
    hass: HomeAssistant, setup_integration: MockConfigEntry
) -> None:
    """Switching to Home Agent itself or a missing agent is a form error."""
    result = await start_options(hass, setup_integration)
    for agent_id, error in (
        ("conversation.home_agent", "own_agent"),
        ("conversation.nobody", "agent_not_found"),
    ):
        result = await configure_options(
            hass, result, {"agent_id": agent_id, "session_timeout": 3600}
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"agent_id": error}
    assert setup_integration.options["session_timeout"] == 3600


async def test_openai_options_offer_the_endpoint_models(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """Model list fetched again with the stored key; every setting editable."""
    endpoint.api_key = "sk-kitchen"
    entry = openai_entry(hass, endpoint.base_url, "sk-kitchen")
    await setup_entry(hass, entry)
    endpoint.models.append("phi4:14b")

    result = await start_options(hass, entry)
    assert result["errors"] == {}
    _key, models = field(result, "model")
    assert isinstance(models, SelectSelector)
    assert models.config["options"] == ["llama3.2:3b", "phi4:14b", "qwen2.5:7b"]
    assert suggested(result, "model") == "llama3.2:3b"
    assert suggested(result, "prompt") == "You are the kitchen assistant."
    assert endpoint.authorizations[-1] == "Bearer sk-kitchen"

    new = {
        "model": "phi4:14b",
        "prompt": "You are terse.",
        "llm_hass_api": [],
        "temperature": 1.5,
        "max_tokens": 64,
        "history_max_tokens": 8192,
        "history_summary": False,
        "warm_up": False,
        "session_timeout": 86400,
        "session_scope": "none",
        "history_max_turns": 1,
        "memory": True,
        "memory_prompt_tokens": 0,
    }
    assert suggested(result, "warm_up") is True
    with pytest.raises(InvalidData) as err:
        await configure_options(hass, result, {**new, "prompt": "{% if %}"})
    assert set(err.value.schema_errors) == {"prompt"}

    result = await configure_options(hass, result, new)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == new
    assert entry.data == {
        "backend": "openai",
        "base_url": endpoint.base_url,
        "api_key": "sk-kitchen",
    }
    assert entry.state is ConfigEntryState.LOADED
    assert session_settings(entry).scope is SessionScope.NONE


async def test_openai_options_while_the_endpoint_is_down(
    hass: HomeAssistant, closed_url: str
) -> None:
    """The model becomes a text field with an explanation; the options still save."""
    entry = openai_entry(hass, closed_url)
    await setup_entry(hass, entry)

    result = await start_options(hass, entry)
    assert result["errors"] == {"base": "models_unavailable"}
    assert result["description_placeholders"] == {"base_url": closed_url}
    _key, model = field(result, "model")
    assert isinstance(model, TextSelector)

    result = await configure_options(hass, result, {**OPENAI_OPTIONS, "model": "gemma3:4b"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["model"] == "gemma3:4b"


# --- reconfigure -----------------------------------------------------------------------


async def test_reconfigure_moves_an_openai_agent_to_another_endpoint(
    hass: HomeAssistant, endpoint: ModelsEndpoint, closed_url: str
) -> None:
    """The new endpoint is checked the same way; the agent reloads with it."""
    endpoint.api_key = "sk-new"
    entry = openai_entry(hass, closed_url, "sk-old")
    await setup_entry(hass, entry)
    device_id = make_device(hass, "Kitchen satellite")
    start_session(entry, device_id=device_id)

    result = await entry.start_reconfigure_flow(hass)
    assert_translated(result)
    assert result["step_id"] == "reconfigure"
    assert suggested(result, "base_url") == closed_url
    assert [str(key) for key in result["data_schema"].schema] == ["base_url", "api_key"]

    result = await configure(hass, result, {"base_url": endpoint.base_url, "api_key": "sk-old"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await configure(hass, result, {"base_url": closed_url, "api_key": "sk-new"})
    assert result["errors"] == {"base": "cannot_connect"}

    result = await configure(hass, result, {"base_url": endpoint.base_url, "api_key": "sk-new"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {"backend": "openai", "base_url": endpoint.base_url, "api_key": "sk-new"}
    assert entry.options == OPENAI_OPTIONS
    assert entry.state is ConfigEntryState.LOADED
    assert session_of_key(entry, f"device:{device_id}") is not None


async def test_reconfigure_onto_another_agents_endpoint(
    hass: HomeAssistant, endpoint: ModelsEndpoint, closed_url: str
) -> None:
    """An agent may move onto the endpoint and model another agent uses."""
    openai_entry(hass, endpoint.base_url)
    entry = openai_entry(hass, closed_url)

    result = await entry.start_reconfigure_flow(hass)
    result = await configure(hass, result, {"base_url": endpoint.base_url})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data["base_url"] == endpoint.base_url


async def test_reconfigure_points_an_agent_elsewhere(hass: HomeAssistant) -> None:
    """A delegating agent is pointed at another agent; Home Agent itself is refused."""
    entry = agent_entry(hass, "conversation.elsewhere")
    await setup_entry(hass, entry)
    before = await converse(hass)
    assert "conversation.elsewhere" in before.response.speech["plain"]["speech"]

    result = await entry.start_reconfigure_flow(hass)
    assert_translated(result)
    assert [str(key) for key in result["data_schema"].schema] == ["agent_id"]
    assert suggested(result, "agent_id") == "conversation.elsewhere"

    result = await configure(hass, result, {"agent_id": "conversation.home_agent"})
    assert result["errors"] == {"agent_id": "own_agent"}

    result = await configure(hass, result, {"agent_id": "conversation.home_assistant"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {"backend": "agent"}
    assert entry.options["agent_id"] == "conversation.home_assistant"
    assert entry.state is ConfigEntryState.LOADED
    after = await converse(hass, before.conversation_id)
    assert after.conversation_id == before.conversation_id
    assert "sorry" not in after.response.speech["plain"]["speech"].lower()


# --- setup checks and reauth -----------------------------------------------------------


async def test_refused_key_at_setup_asks_for_a_new_one(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """401 at setup → entry in error and a reauth flow; a good key brings it back."""
    endpoint.api_key = "sk-new"
    entry = openai_entry(hass, endpoint.base_url, "sk-old")
    assert await async_setup_component(hass, "conversation", {})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert flows[0]["context"]["entry_id"] == entry.entry_id
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"])
    assert_translated(result)
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["base_url"] == endpoint.base_url

    result = await configure(hass, result, {"api_key": "sk-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}

    result = await configure(hass, result, {"api_key": "sk-new"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data == {"backend": "openai", "base_url": endpoint.base_url, "api_key": "sk-new"}
    assert entry.state is ConfigEntryState.LOADED


async def test_reauth_while_the_endpoint_is_down(
    hass: HomeAssistant, endpoint: ModelsEndpoint
) -> None:
    """A reauth form explains that the endpoint cannot be reached, and can be retried."""
    entry = openai_entry(hass, endpoint.base_url, "sk-old")
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"

    endpoint.answer = (503, "Service Unavailable")
    result = await configure(hass, result, {"api_key": "sk-new"})
    assert result["errors"] == {"base": "cannot_connect"}

    endpoint.answer = None
    result = await configure(hass, result, {"api_key": "sk-new"})
    await hass.async_block_till_done()
    assert result["reason"] == "reauth_successful"
    assert entry.state is ConfigEntryState.LOADED


async def test_unreachable_endpoint_does_not_block_setup(
    hass: HomeAssistant, closed_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The agent loads (it apologises per turn) and says once why in the log."""
    entry = openai_entry(hass, closed_url, "sk-secret")
    with caplog.at_level(logging.WARNING):
        await setup_entry(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    warnings = [r for r in caplog.records if r.name.startswith("custom_components.home_agent")]
    assert len(warnings) == 1
    assert closed_url in warnings[0].getMessage()
    assert "sk-secret" not in caplog.text


# --- numbers that are not numbers -------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("session_timeout", "nan"),
        ("session_timeout", "-nan"),
        ("history_max_turns", "nan"),
        ("history_max_turns", "NaN"),
    ],
)
async def test_options_refuse_nan_over_http(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    key: str,
    value: str,
) -> None:
    """Typed into the options dialog: the field's error, not an HTTP 500; nothing changes."""
    assert await async_setup_component(hass, "config", {})
    client = await hass_client()
    before = dict(setup_integration.options)
    url = "/api/config/config_entries/options/flow"
    response = await client.post(url, json={"handler": setup_integration.entry_id})
    flow_id = (await response.json())["flow_id"]

    response = await client.post(
        f"{url}/{flow_id}",
        json={
            "agent_id": "conversation.home_assistant",
            "session_timeout": 600,
            "session_scope": "device",
            "history_max_turns": 5,
            key: value,
        },
    )

    assert response.status == 200
    result = await response.json()
    assert result["type"] == "form"
    assert result["errors"] == {key: "not_a_number"}
    assert STRINGS["options"]["error"]["not_a_number"]
    assert dict(setup_integration.options) == before
    # Infinity is out of every field's range: the form says so on the field (HTTP 400).
    response = await client.post(
        f"{url}/{flow_id}",
        json={"agent_id": "conversation.home_assistant", key: "inf"},
    )
    assert response.status == 400
    assert key in json.dumps(await response.json())
    assert dict(setup_integration.options) == before


@pytest.mark.parametrize(
    ("key", "value"), [("temperature", "nan"), ("max_tokens", "inf"), ("session_timeout", "nan")]
)
async def test_openai_forms_refuse_nan_and_inf(
    hass: HomeAssistant, endpoint: ModelsEndpoint, key: str, value: str
) -> None:
    """The model step of a new agent and the options of an existing one say which field."""
    result = await start_user_flow(hass, "Kitchen", "openai")
    result = await configure(hass, result, {"base_url": endpoint.base_url})
    result = await configure(hass, result, {"model": "qwen2.5:7b", key: value})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {key: "not_a_number"}
    result = await configure(hass, result, {"model": "qwen2.5:7b"})
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]

    result = await start_options(hass, entry)
    result = await configure_options(hass, result, {"model": "qwen2.5:7b", key: value})
    assert result["errors"] == {key: "not_a_number"}
    assert entry.options["session_timeout"] == 3600


async def test_agent_form_refuses_nan(hass: HomeAssistant) -> None:
    """The session settings of a new delegating agent."""
    result = await start_user_flow(hass, "Living room", "agent")
    result = await configure(
        hass, result, {"agent_id": "conversation.home_assistant", "session_timeout": "nan"}
    )
    assert result["errors"] == {"session_timeout": "not_a_number"}
    assert not hass.config_entries.async_entries(DOMAIN)
