"""Config, options, reconfigure and reauth flows: one config entry is one agent."""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

from homeassistant.components import conversation
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_NAME, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import config_validation as cv, entity_registry as er, llm
from homeassistant.helpers.selector import (
    BooleanSelector,
    ConversationAgentSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TemplateSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from .client import ModelClient, ModelError, normalize_base_url
from .const import (
    CONF_AGENT_ID,
    CONF_API_KEY,
    CONF_BACKEND,
    CONF_BASE_URL,
    CONF_HISTORY_MAX_TOKENS,
    CONF_HISTORY_MAX_TURNS,
    CONF_HISTORY_SUMMARY,
    CONF_LLM_HASS_API,
    CONF_MAX_TOKENS,
    CONF_MEMORY,
    CONF_MEMORY_PROMPT_TOKENS,
    CONF_MODEL,
    CONF_PROMPT,
    CONF_SESSION_SCOPE,
    CONF_SESSION_TIMEOUT,
    CONF_TEMPERATURE,
    CONF_WARM_UP,
    DOMAIN,
    LOGGER,
    MAX_HISTORY_MAX_TOKENS,
    MAX_HISTORY_MAX_TURNS,
    MAX_MEMORY_PROMPT_TOKENS,
    MAX_SESSION_TIMEOUT,
    MIN_HISTORY_MAX_TOKENS,
    MIN_HISTORY_MAX_TURNS,
    MIN_MEMORY_PROMPT_TOKENS,
    MIN_SESSION_TIMEOUT,
    Backend,
    SessionScope,
)
from .redact import is_local_address, redact_url, url_credentials
from .settings import DEFAULTS, entry_settings, warm_up

DEFAULT_NAME = "Home Agent"
NUMBER_FIELDS = (
    CONF_SESSION_TIMEOUT,
    CONF_HISTORY_MAX_TURNS,
    CONF_HISTORY_MAX_TOKENS,
    CONF_TEMPERATURE,
    CONF_MAX_TOKENS,
    CONF_MEMORY_PROMPT_TOKENS,
)

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
        vol.Required(CONF_BACKEND, default=Backend.OPENAI.value): SelectSelector(
            SelectSelectorConfig(
                options=[backend.value for backend in Backend],
                translation_key=CONF_BACKEND,
                mode=SelectSelectorMode.LIST,
            )
        ),
    }
)

CONNECTION_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_BASE_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Optional(CONF_API_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)


def _whole_number(
    minimum: int, maximum: int | None = None, *, unit: str | None = None
) -> NumberSelector:
    """Return a box for a whole number from `minimum` (to `maximum`, when it has one)."""
    config = NumberSelectorConfig(min=minimum, step=1, mode=NumberSelectorMode.BOX)
    if maximum is not None:
        config["max"] = maximum
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


API_KEY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_API_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)

AGENT_SCHEMA = vol.Schema(
    {vol.Required(CONF_AGENT_ID, default=DEFAULTS[CONF_AGENT_ID]): ConversationAgentSelector()}
)

SESSION_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_SESSION_TIMEOUT, default=DEFAULTS[CONF_SESSION_TIMEOUT]): _whole_number(
            MIN_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT, unit=UnitOfTime.SECONDS
        ),
        vol.Required(CONF_SESSION_SCOPE, default=str(DEFAULTS[CONF_SESSION_SCOPE])): SelectSelector(
            SelectSelectorConfig(
                options=[scope.value for scope in SessionScope],
                translation_key=CONF_SESSION_SCOPE,
                mode=SelectSelectorMode.DROPDOWN,
            )
        ),
        vol.Required(
            CONF_HISTORY_MAX_TURNS, default=DEFAULTS[CONF_HISTORY_MAX_TURNS]
        ): _whole_number(MIN_HISTORY_MAX_TURNS, MAX_HISTORY_MAX_TURNS),
    }
)

# Household memory, for both backends; the session settings and these end every form.
MEMORY_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_MEMORY, default=DEFAULTS[CONF_MEMORY]): BooleanSelector(),
        vol.Required(
            CONF_MEMORY_PROMPT_TOKENS, default=DEFAULTS[CONF_MEMORY_PROMPT_TOKENS]
        ): _whole_number(MIN_MEMORY_PROMPT_TOKENS, MAX_MEMORY_PROMPT_TOKENS),
    }
)
SHARED_SCHEMA = SESSION_SCHEMA.extend(MEMORY_SCHEMA.schema)


def _model_schema(
    hass: HomeAssistant, models: list[str] | None, *, warm_up_default: bool
) -> vol.Schema:
    """Return the model settings; a free text model when the list is unknown.

    Warming the model up is on by default for an endpoint on this machine or the local
    network, off for others (a warm-up is a request, which a public service may bill).
    """
    model_selector: SelectSelector | TextSelector = (
        TextSelector()
        if models is None
        else SelectSelector(
            SelectSelectorConfig(
                options=models, custom_value=True, mode=SelectSelectorMode.DROPDOWN
            )
        )
    )
    apis = [SelectOptionDict(label=api.name, value=api.id) for api in llm.async_get_apis(hass)]
    return vol.Schema(
        {
            vol.Required(CONF_MODEL): model_selector,
            vol.Required(CONF_PROMPT, default=DEFAULTS[CONF_PROMPT]): TemplateSelector(),
            vol.Optional(CONF_LLM_HASS_API, default=DEFAULTS[CONF_LLM_HASS_API]): SelectSelector(
                SelectSelectorConfig(options=apis, multiple=True)
            ),
            vol.Required(CONF_TEMPERATURE, default=DEFAULTS[CONF_TEMPERATURE]): NumberSelector(
                NumberSelectorConfig(min=0, max=2, step=0.05, mode=NumberSelectorMode.SLIDER)
            ),
            vol.Required(CONF_MAX_TOKENS, default=DEFAULTS[CONF_MAX_TOKENS]): _whole_number(1),
            vol.Required(
                CONF_HISTORY_MAX_TOKENS, default=DEFAULTS[CONF_HISTORY_MAX_TOKENS]
            ): _whole_number(MIN_HISTORY_MAX_TOKENS, MAX_HISTORY_MAX_TOKENS),
            vol.Required(
                CONF_HISTORY_SUMMARY, default=DEFAULTS[CONF_HISTORY_SUMMARY]
            ): BooleanSelector(),
            vol.Required(CONF_WARM_UP, default=warm_up_default): BooleanSelector(),
        }
    )


def _number_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Return a field error for each number that is not finite."""
    # `nan` and `inf` pass NumberSelector's range checks on every Home Assistant version.
    return {
        name: "not_a_number"
        for name in NUMBER_FIELDS
        if name in user_input and not math.isfinite(float(user_input[name]))
    }


def _session_options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the session and memory options of a submitted form, as stored."""
    return {
        CONF_SESSION_TIMEOUT: int(user_input[CONF_SESSION_TIMEOUT]),
        CONF_SESSION_SCOPE: user_input[CONF_SESSION_SCOPE],
        CONF_HISTORY_MAX_TURNS: int(user_input[CONF_HISTORY_MAX_TURNS]),
        CONF_MEMORY: bool(user_input[CONF_MEMORY]),
        CONF_MEMORY_PROMPT_TOKENS: int(user_input[CONF_MEMORY_PROMPT_TOKENS]),
    }


def _openai_options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the options of an `openai` agent from a submitted form."""
    return {
        CONF_MODEL: user_input[CONF_MODEL],
        CONF_PROMPT: user_input[CONF_PROMPT],
        CONF_LLM_HASS_API: list(user_input[CONF_LLM_HASS_API]),
        CONF_TEMPERATURE: float(user_input[CONF_TEMPERATURE]),
        CONF_MAX_TOKENS: int(user_input[CONF_MAX_TOKENS]),
        CONF_HISTORY_MAX_TOKENS: int(user_input[CONF_HISTORY_MAX_TOKENS]),
        CONF_HISTORY_SUMMARY: bool(user_input[CONF_HISTORY_SUMMARY]),
        CONF_WARM_UP: bool(user_input[CONF_WARM_UP]),
        **_session_options(user_input),
    }


def _agent_options(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the options of an `agent` agent from a submitted form."""
    return {CONF_AGENT_ID: user_input[CONF_AGENT_ID], **_session_options(user_input)}


def _connection(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return the connection settings of a submitted form, as stored."""
    return {
        CONF_BASE_URL: normalize_base_url(user_input[CONF_BASE_URL]),
        CONF_API_KEY: user_input.get(CONF_API_KEY, ""),
    }


async def _async_probe(
    hass: HomeAssistant, connection: Mapping[str, Any], *, new_url: bool = False
) -> tuple[dict[str, str], list[str]]:
    """Check the endpoint by listing its models; return form errors and the models."""
    try:
        cv.url(connection[CONF_BASE_URL])
    except vol.Invalid:
        return {CONF_BASE_URL: "invalid_url"}, []
    # A newly typed address may not carry credentials: they belong in the API key field,
    # which is kept secret (an address is shown in forms, logs and diagnostics).
    if new_url and url_credentials(connection[CONF_BASE_URL]):
        return {CONF_BASE_URL: "url_credentials"}, []
    client = ModelClient(hass, connection[CONF_BASE_URL], connection[CONF_API_KEY])
    try:
        models = await client.async_list_models()
    except ModelError as err:
        LOGGER.debug("Listing the models of %s failed: %r", client.loggable_base_url, err)
        return {"base": err.flow_error}, []
    return {}, models


def _agent_errors(hass: HomeAssistant, agent_id: str) -> dict[str, str]:
    """Reject agents that do not exist, and Home Agent agents (they would answer themselves)."""
    entity = er.async_get(hass).async_get(agent_id)
    entry = hass.config_entries.async_get_entry(agent_id)
    if (entity is not None and entity.platform == DOMAIN) or (
        entry is not None and entry.domain == DOMAIN
    ):
        return {CONF_AGENT_ID: "own_agent"}
    if conversation.async_get_agent_info(hass, agent_id) is None:
        return {CONF_AGENT_ID: "agent_not_found"}
    return {}


class HomeAgentConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up an agent: where its answers come from and how long it remembers."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._title = DEFAULT_NAME
        self._connection: dict[str, Any] = {}
        self._models: list[str] = []

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> HomeAgentOptionsFlow:
        """Return the options flow (it finds its entry itself)."""
        return HomeAgentOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the agent's name and where its answers come from."""
        if user_input is None:
            return self.async_show_form(step_id="user", data_schema=USER_SCHEMA, last_step=False)
        self._title = user_input[CONF_NAME]
        if user_input[CONF_BACKEND] == Backend.OPENAI:
            return await self.async_step_openai()
        return await self.async_step_agent()

    async def async_step_openai(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the endpoint and check it answers."""
        errors: dict[str, str] = {}
        if user_input is not None:
            connection = _connection(user_input)
            errors, models = await _async_probe(self.hass, connection, new_url=True)
            if not errors:
                self._connection = connection
                self._models = models
                return await self.async_step_model()
        return self.async_show_form(
            step_id="openai",
            data_schema=self.add_suggested_values_to_schema(
                CONNECTION_SCHEMA, user_input or {CONF_BASE_URL: DEFAULTS[CONF_BASE_URL]}
            ),
            errors=errors,
            last_step=False,
        )

    async def async_step_model(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the model, its instructions and the session settings."""
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := _number_errors(user_input)):
            return self.async_create_entry(
                title=self._title,
                data={CONF_BACKEND: Backend.OPENAI.value, **self._connection},
                options=_openai_options(user_input),
            )
        schema = _model_schema(
            self.hass,
            self._models,
            warm_up_default=is_local_address(self._connection[CONF_BASE_URL]),
        ).extend(SHARED_SCHEMA.schema)
        return self.async_show_form(
            step_id="model",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or {CONF_MODEL: next(iter(self._models), None)}
            ),
            errors=errors,
            description_placeholders={"base_url": redact_url(self._connection[CONF_BASE_URL])},
        )

    async def async_step_agent(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask which conversation agent answers, and the session settings."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _number_errors(user_input) or _agent_errors(
                self.hass, user_input[CONF_AGENT_ID]
            )
            if not errors:
                return self.async_create_entry(
                    title=self._title,
                    data={CONF_BACKEND: Backend.AGENT.value},
                    options=_agent_options(user_input),
                )
        return self.async_show_form(
            step_id="agent",
            data_schema=self.add_suggested_values_to_schema(
                AGENT_SCHEMA.extend(SHARED_SCHEMA.schema), user_input
            ),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where an existing agent's answers come from."""
        entry = self._get_reconfigure_entry()
        settings = entry_settings(entry)
        openai = settings[CONF_BACKEND] == Backend.OPENAI
        errors: dict[str, str] = {}
        if user_input is not None:
            if openai:
                connection = _connection(user_input)
                errors, _models = await _async_probe(self.hass, connection, new_url=True)
                data, options = {**entry.data, **connection}, dict(entry.options)
                if is_local_address(connection[CONF_BASE_URL]) != is_local_address(
                    settings[CONF_BASE_URL]
                ):
                    # Moved between a nearby server and a public one: warming up takes the
                    # new endpoint's default again (a public one may bill each warm-up).
                    options.pop(CONF_WARM_UP, None)
            else:
                errors = _agent_errors(self.hass, user_input[CONF_AGENT_ID])
                data = dict(entry.data)
                options = {**entry.options, CONF_AGENT_ID: user_input[CONF_AGENT_ID]}
            if not errors:
                return self._async_update_and_finish(
                    entry, "reconfigure_successful", data=data, options=options
                )
        if user_input is None and url_credentials(settings.get(CONF_BASE_URL, "")):
            # An address from an older release with credentials: offer it without them, so
            # they are re-entered where they are kept secret (the API key field).
            settings = {**settings, CONF_BASE_URL: redact_url(settings[CONF_BASE_URL])}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                CONNECTION_SCHEMA if openai else AGENT_SCHEMA, user_input or settings
            ),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start asking for a new API key after the endpoint refused the old one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for a new API key and check the endpoint accepts it."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            connection = _connection({**entry.data, **user_input})
            errors, _models = await _async_probe(self.hass, connection)
            if not errors:
                return self._async_update_and_finish(
                    entry,
                    "reauth_successful",
                    data={**entry.data, **connection},
                    options=entry.options,
                )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=API_KEY_SCHEMA,
            errors=errors,
            description_placeholders={"base_url": redact_url(entry.data[CONF_BASE_URL])},
        )

    @callback
    def _async_update_and_finish(
        self,
        entry: ConfigEntry,
        reason: str,
        *,
        data: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> ConfigFlowResult:
        """Store the change and finish; the entry reloads whichever state it is in."""
        self.hass.config_entries.async_update_entry(entry, data=data, options=options)
        # A loaded entry reloads through its update listener (ha-api-compat §6); an entry
        # whose setup failed has none, so reload it here.
        if not entry.update_listeners:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_abort(reason=reason)


class HomeAgentOptionsFlow(OptionsFlow):
    """Change any option of an agent; the entry reloads and keeps its sessions."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show every option of the agent's backend and the session settings."""
        settings = entry_settings(self.config_entry)
        if settings[CONF_BACKEND] == Backend.OPENAI:
            return await self._async_openai_options(settings, user_input)
        return self._async_agent_options(settings, user_input)

    async def _async_openai_options(
        self, settings: Mapping[str, Any], user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Offer the endpoint's models again; a text field if it does not answer."""
        errors: dict[str, str] = {}
        if user_input is not None and not (errors := _number_errors(user_input)):
            return self.async_create_entry(data=_openai_options(user_input))
        models: list[str] | None = None
        client = ModelClient(self.hass, settings[CONF_BASE_URL], settings.get(CONF_API_KEY))
        try:
            models = await client.async_list_models()
        except ModelError as err:
            LOGGER.debug("Listing the models of %s failed: %r", client.loggable_base_url, err)
            errors["base"] = "models_unavailable"
        schema = _model_schema(self.hass, models, warm_up_default=warm_up(settings))
        return self._async_show_options(
            schema, {**settings, CONF_WARM_UP: warm_up(settings)}, errors
        )

    @callback
    def _async_agent_options(
        self, settings: Mapping[str, Any], user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """Check a newly chosen agent; keep one accepted before even while it is away."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _number_errors(user_input)
            if not errors and user_input[CONF_AGENT_ID] != settings[CONF_AGENT_ID]:
                errors = _agent_errors(self.hass, user_input[CONF_AGENT_ID])
            if not errors:
                return self.async_create_entry(data=_agent_options(user_input))
        return self._async_show_options(AGENT_SCHEMA, user_input or settings, errors)

    @callback
    def _async_show_options(
        self, schema: vol.Schema, values: Mapping[str, Any], errors: dict[str, str]
    ) -> ConfigFlowResult:
        """Show the options form, pre-filled with the given values."""
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema.extend(SHARED_SCHEMA.schema), values
            ),
            errors=errors,
            description_placeholders={
                "base_url": redact_url(self.config_entry.data.get(CONF_BASE_URL, ""))
            },
        )
