"""Home Assistant LLM API tools as OpenAI function tools: offered to a model, its calls read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
import json
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util import slugify

from .compat import SELECTOR_SERIALIZER, schema_converter
from .const import DOMAIN


@dataclass(slots=True)
class UnreadableToolInput(llm.ToolInput):
    """A tool call whose arguments are not a JSON object.

    `tool_args` is empty and must not be run: the tool runner reports `problem` back to
    the model as the call's error result (as for any failing tool), so the model can
    correct itself; `arguments_text` is what the model sent, to show it in the history.
    """

    arguments_text: str = ""
    problem: str = ""


class InvalidArguments(HomeAssistantError):
    """The model's arguments for a tool were not a JSON object (reported to the model)."""


class NoToolsAvailable(HomeAssistantError):
    """A chat-only agent's model called a tool (reported to the model, which can then talk)."""


def raise_if_unreadable(call: llm.ToolInput) -> None:
    """Refuse to run a call whose arguments could not be read.

    Call it where a tool call is run (e.g. the LLM API instance a chat log calls): Home
    Assistant's chat log turns the error into the call's result, `{"error":
    "InvalidArguments", "error_text": ...}`.
    """
    if isinstance(call, UnreadableToolInput):
        raise InvalidArguments(call.problem)


def tool_input(call_id: str, name: str, text: str) -> llm.ToolInput:
    """Return the tool call; arguments that are not a JSON object become unreadable."""
    if not text.strip():
        return llm.ToolInput(id=call_id, tool_name=name, tool_args={})
    try:
        parsed = json.loads(text)
    except ValueError as err:
        problem = f"Arguments are not JSON: {err}"
    else:
        if isinstance(parsed, dict):
            return llm.ToolInput(id=call_id, tool_name=name, tool_args=parsed)
        problem = "Arguments must be a JSON object"
    return UnreadableToolInput(
        id=call_id, tool_name=name, tool_args={}, arguments_text=text, problem=problem
    )


# Keys OpenAI-style servers reject at the top level of a function's parameters.
_UNSUPPORTED_TOP_LEVEL_KEYS = frozenset({"oneOf", "anyOf", "allOf"})


# Converted schemas by their source's text: LLM APIs rebuild their schema objects every
# turn, but converting them again each time costs about a millisecond per turn.
_CONVERTED: dict[tuple[str, int], dict[str, Any]] = {}
_CONVERTED_MAX = 512


def tool_parameters(schema: Any, custom_serializer: Callable[[Any], Any] | None) -> dict[str, Any]:
    """Return a tool's parameters as the JSON schema a Chat Completions server accepts."""
    key = (repr(getattr(schema, "schema", schema)), id(custom_serializer))
    if (cached := _CONVERTED.get(key)) is not None:
        return cached
    converted = schema_converter()(schema, custom_serializer=custom_serializer)
    parameters = {k: v for k, v in converted.items() if k not in _UNSUPPORTED_TOP_LEVEL_KEYS}
    if len(_CONVERTED) >= _CONVERTED_MAX:
        _CONVERTED.clear()
    _CONVERTED[key] = parameters
    return parameters


class ToolBox:
    """The tools of the selected LLM APIs, each call routed to the API that owns it."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start without any API."""
        self._hass = hass
        self.apis: list[llm.APIInstance] = []
        # Name shown to the model -> the API instance and the tool.
        self._owners: dict[str, tuple[llm.APIInstance, llm.Tool]] = {}

    @property
    def prompts(self) -> list[str]:
        """Return the instructions of every API."""
        return [api.api_prompt for api in self.apis if api.api_prompt]

    @property
    def tool_names(self) -> list[str]:
        """Return the names the model calls the tools by."""
        return list(self._owners)

    def add(self, api: llm.APIInstance) -> None:
        """Offer an API's tools; a name another API already uses gets the API's prefix."""
        self.apis.append(api)
        for tool in api.tools:
            name = tool.name
            if name in self._owners:
                name = f"{slugify(api.api.id)}__{tool.name}"
            self._owners[name] = (api, tool)

    def schemas(self) -> list[dict[str, Any]]:
        """Return the tools in the Chat Completions `tools` format."""
        fallback = SELECTOR_SERIALIZER
        specs: list[dict[str, Any]] = []
        for name, (api, tool) in self._owners.items():
            function: dict[str, Any] = {
                "name": name,
                "parameters": tool_parameters(tool.parameters, api.custom_serializer or fallback),
            }
            if tool.description:
                function["description"] = tool.description
            specs.append({"type": "function", "function": function})
        return specs

    def api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the API instance a chat log runs this toolbox's tools with.

        Without any API too: a chat log without one fails the whole turn when the model
        calls a tool anyway; this one answers the call with an error result instead.
        """
        first = self.apis[0] if self.apis else None
        return _RoutedAPIInstance(
            api=_NoTools(hass=self._hass, id=DOMAIN, name="None") if first is None else first.api,
            api_prompt="\n".join(self.prompts),
            llm_context=llm_context,
            tools=[tool for _api, tool in self._owners.values()],
            custom_serializer=None if first is None else first.custom_serializer,
            routes=dict(self._owners),
        )


@dataclass(slots=True, kw_only=True)
class _NoTools(llm.API):
    """What a chat-only agent's tool calls go to: no API was selected."""

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return an instance without tools (the toolbox builds its own; kept for the ABC)."""
        return llm.APIInstance(api=self, api_prompt="", llm_context=llm_context, tools=[])


@dataclass(slots=True)
class _RoutedAPIInstance(llm.APIInstance):
    """The selected LLM APIs as one: each call goes to the API that owns the tool's name.

    Calls whose arguments the model garbled are refused here, before any tool runs; the
    chat log reports the refusal to the model as the call's result.
    """

    routes: dict[str, tuple[llm.APIInstance, llm.Tool]] = field(default_factory=dict)

    async def async_call_tool(self, tool_input: llm.ToolInput) -> Any:
        """Call the tool on its own API, under the name that API knows it by."""
        if not self.routes:
            raise NoToolsAvailable("No tools are available: answer without them")
        raise_if_unreadable(tool_input)
        if (route := self.routes.get(tool_input.tool_name)) is None:
            raise HomeAssistantError(f'Tool "{tool_input.tool_name}" not found')
        api, tool = route
        return await api.async_call_tool(replace(tool_input, tool_name=tool.name))


async def async_get_toolbox(
    hass: HomeAssistant, api_ids: list[str], llm_context: llm.LLMContext
) -> ToolBox:
    """Instantiate each selected LLM API (one id per call works on every version)."""
    toolbox = ToolBox(hass)
    for api_id in api_ids:
        try:
            api = await llm.async_get_api(hass, api_id, llm_context)
        except HomeAssistantError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="llm_api_unavailable",
                translation_placeholders={"api_id": api_id},
            ) from err
        toolbox.add(api)
    return toolbox
