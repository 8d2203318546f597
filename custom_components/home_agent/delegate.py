"""Backend `agent`: hand each turn to another conversation agent, with our context."""

from __future__ import annotations

from homeassistant.components.conversation import ConversationInput
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent

from .backend import Answer
from .compat import async_converse, satellite_id_of
from .const import DOMAIN
from .session import Session


def transcript_prompt(session: Session) -> str | None:
    """Describe the session so far for an agent whose own memory may have lapsed."""
    if not session.transcript:
        return None
    lines = [
        "This is a continuing voice conversation. Earlier turns, oldest first:",
    ]
    for exchange in session.transcript:
        lines.append(f"User: {exchange.user}")
        lines.append(f"Assistant: {exchange.assistant}")
    return "\n".join(lines)


class DelegateBackend:
    """Answer through another Home Assistant conversation agent."""

    def __init__(self, hass: HomeAssistant, agent_id: str, own_entry_id: str) -> None:
        """Remember which agent to delegate to."""
        self._hass = hass
        self._agent_id = agent_id
        self._own_entry_id = own_entry_id

    async def async_answer(self, user_input: ConversationInput, session: Session) -> Answer:
        """Delegate the turn under the session's conversation id."""
        if self._agent_id in (user_input.agent_id, self._own_entry_id):
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="delegate_loop")
        extra = "\n\n".join(
            part for part in (transcript_prompt(session), user_input.extra_system_prompt) if part
        )
        try:
            result = await async_converse(
                self._hass,
                text=user_input.text,
                conversation_id=session.conversation_id,
                context=user_input.context,
                language=user_input.language,
                agent_id=self._agent_id,
                device_id=user_input.device_id,
                satellite_id=satellite_id_of(user_input),
                extra_system_prompt=extra or None,
            )
        except ValueError as err:  # the agent is gone
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="delegate_missing",
                translation_placeholders={"agent_id": self._agent_id},
            ) from err
        response = result.response
        speech = response.speech.get("plain", {}).get("speech", "")
        return Answer(
            response=response,
            speech=speech,
            continue_conversation=result.continue_conversation,
            remember=response.response_type is not intent.IntentResponseType.ERROR,
        )
