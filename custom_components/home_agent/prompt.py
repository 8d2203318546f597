"""The system prompt of the `openai` backend, built the way core LLM agents build it."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, TemplateError
from homeassistant.helpers import llm, template
from homeassistant.util.hass_dict import HassKey

from .compat import DATE_TIME_PROMPT
from .const import DOMAIN, LOGGER


async def async_user_name(hass: HomeAssistant, llm_context: llm.LLMContext) -> str | None:
    """Return the name of the person talking, if Home Assistant knows them."""
    context = llm_context.context
    if context is None or not context.user_id:
        return None
    user = await hass.auth.async_get_user(context.user_id)
    return user.name if user else None


# Compiled prompt templates by source. Home Assistant caches compiled templates only
# while a Template object refers to them, so building a new one per turn recompiles it.
DATA_PROMPT_TEMPLATES: HassKey[dict[str, template.Template]] = HassKey(f"{DOMAIN}_prompts")
_TEMPLATES_MAX = 32


def _template(hass: HomeAssistant, source: str) -> template.Template:
    """Return the (compiled, reused) template of a prompt."""
    templates = hass.data.setdefault(DATA_PROMPT_TEMPLATES, {})
    if (cached := templates.get(source)) is None:
        if len(templates) >= _TEMPLATES_MAX:
            templates.clear()
        cached = templates[source] = template.Template(source, hass)
    return cached


def render_template(
    hass: HomeAssistant, source: str, llm_context: llm.LLMContext, user_name: str | None
) -> str:
    """Render a prompt template with the variables core agents offer."""
    try:
        rendered = _template(hass, source).async_render(
            {
                "ha_name": hass.config.location_name,
                "user_name": user_name,
                "llm_context": llm_context,
            },
            parse_result=False,
        )
    except TemplateError as err:
        LOGGER.error("Error rendering the prompt template: %s", err)
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="prompt_invalid"
        ) from err
    return str(rendered)


async def async_system_prompt(
    hass: HomeAssistant,
    prompt_template: str,
    llm_context: llm.LLMContext,
    *,
    api_prompts: list[str],
    extra_system_prompt: str | None,
    notes: str = "",
) -> str:
    """Return the instructions, the LLM APIs' prompts, the notes and the caller's extra prompt.

    Nothing here changes from one turn to the next (the time goes with the turn, see
    `async_turn_facts`; the notes are chosen once per session, see `notes_prompt.py`), so
    consecutive requests of a session share their prefix.
    """
    user_name = await async_user_name(hass, llm_context)
    parts = [render_template(hass, prompt_template, llm_context, user_name), *api_prompts]
    if notes:
        parts[-1] += notes
    if extra_system_prompt:
        parts.append(extra_system_prompt)
    return "\n".join(parts)


async def async_turn_facts(
    hass: HomeAssistant, llm_context: llm.LLMContext, tool_names: list[str]
) -> str | None:
    """Return what holds for this turn only: the date and time, unless a tool tells them."""
    if not DATE_TIME_PROMPT or any(name.endswith("GetDateTime") for name in tool_names):
        return None
    user_name = await async_user_name(hass, llm_context)
    return render_template(hass, DATE_TIME_PROMPT, llm_context, user_name).strip()
