"""Home Agent: persistent, multi-turn conversations for voice assistants."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .backend import AgentBackend
from .client import ModelClient
from .const import DOMAIN
from .data import HomeAgentConfigEntry, HomeAgentData
from .delegate import DelegateBackend
from .lasting import async_drop_lasting_state, lasting_state
from .local_turns import LocalTurnWatcher
from .notes_actions import async_setup_memory_services
from .notes_api import async_register_memory_api
from .notes_setup import async_follow_sessions, async_open_memory, async_remove_memory
from .openai_compatible import OpenAICompatibleBackend
from .services import async_setup_services
from .settings import AgentSettings
from .storage import async_remove_stored
from .summary import SummaryMaker
from .tracker import SessionTracker
from .warmup import Warmer

PLATFORMS = [Platform.CONVERSATION, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions and the memory LLM API (they exist even while no agent is loaded)."""
    async_setup_services(hass)
    async_setup_memory_services(hass)
    async_register_memory_api(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: HomeAgentConfigEntry) -> bool:
    """Restore the agent's sessions and start answering."""
    settings = AgentSettings.of(entry)
    lasting = lasting_state(hass, entry.entry_id)
    tracker = SessionTracker(
        hass,
        entry.entry_id,
        timeout=settings.session_timeout,
        scope=settings.session_scope,
        max_turns=settings.history_max_turns,
        summarize=settings.summarize,
    )
    backend: AgentBackend
    summaries: SummaryMaker | None = None
    client: ModelClient | None = None
    if settings.uses_model:
        client = ModelClient(hass, settings.base_url, settings.api_key)
        await client.async_check()
    memory = await async_open_memory(hass, entry, settings, client)
    if client is not None:
        model_backend = OpenAICompatibleBackend(hass, settings, client, memory.notes)
        if tracker.summarize:
            summaries = SummaryMaker(hass, tracker, model_backend.async_summarize)
            entry.async_on_unload(summaries.async_stop)
        if settings.warm_up:
            entry.async_on_unload(Warmer(hass, tracker, model_backend).async_stop)
        backend = model_backend
    else:
        conversations = lasting.delegate_conversations
        backend = DelegateBackend(
            hass, settings.agent_id, entry.entry_id, conversations, memory.notes
        )
        conversations.async_attach(tracker)
        entry.async_on_unload(conversations.async_detach)
    # Before the start: it announces the sessions that ran out meanwhile at once.
    watcher = LocalTurnWatcher(hass, tracker, lasting.local_turns)
    entry.async_on_unload(watcher.async_stop)
    await tracker.async_start()
    entry.async_on_unload(tracker.async_shutdown)
    async_follow_sessions(entry, tracker, memory)
    if summaries is not None:
        summaries.async_resume()
    entry.runtime_data = HomeAgentData(
        settings=settings,
        tracker=tracker,
        backend=backend,
        notes=memory.notes,
        extractor=memory.extractor,
    )
    entry.async_on_unload(entry.add_update_listener(_async_reload_on_change))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _async_reload_on_change(hass: HomeAssistant, entry: HomeAgentConfigEntry) -> None:
    """Apply changed options (sessions are kept on disk across the reload)."""
    await hass.config_entries.async_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: HomeAgentConfigEntry) -> bool:
    """Stop the agent once its turns in flight are answered and recorded, then save."""
    await entry.runtime_data.tracker.async_wait_for_turns()
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: HomeAgentConfigEntry) -> None:
    """Delete every file holding the agent's sessions and transcripts, and its repairs.

    The household's notes go with the last agent that has memory on.
    """
    async_drop_lasting_state(hass, entry.entry_id)
    await async_remove_stored(hass, entry.entry_id)
    await async_remove_memory(hass, entry)
