"""What an agent keeps across reloads of its entry (an option change), not across restarts."""

from __future__ import annotations

from dataclasses import dataclass, field

from homeassistant.core import HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .delegate_conversations import DelegateConversations
from .local_turns import LocalTurnLinks


@dataclass(slots=True)
class LastingState:
    """Links to Home Assistant's chat logs and chat sessions: they live in memory only."""

    delegate_conversations: DelegateConversations
    local_turns: LocalTurnLinks = field(default_factory=LocalTurnLinks)


_DATA: HassKey[dict[str, LastingState]] = HassKey(f"{DOMAIN}_lasting")


@callback
def lasting_state(hass: HomeAssistant, entry_id: str) -> LastingState:
    """Return an agent's lasting state, made on its first set-up since start-up."""
    states = hass.data.setdefault(_DATA, {})
    if (state := states.get(entry_id)) is None:
        state = states[entry_id] = LastingState(DelegateConversations(hass))
    return state


@callback
def async_drop_lasting_state(hass: HomeAssistant, entry_id: str) -> None:
    """Forget a deleted agent's lasting state; its delegate conversations end now."""
    state = hass.data.get(_DATA, {}).pop(entry_id, None)
    if state is not None:
        state.delegate_conversations.async_end_all()
