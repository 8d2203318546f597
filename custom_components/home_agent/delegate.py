"""Backend `agent`: hand each turn to another conversation agent, with our context.

The delegate answers inside the turn's own chat log (it is given that log's
conversation id, which Home Assistant resolves to the chat session already open), so
an agent that streams reaches the pipeline as early as when it is used directly.
"""

from __future__ import annotations

from homeassistant.components.conversation import (
    ChatLog,
    ConversationEntityFeature,
    ConversationInput,
)
from homeassistant.const import ATTR_SUPPORTED_FEATURES
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from .backend import Reply
from .compat import async_converse, satellite_id_of
from .const import DOMAIN
from .memory import transcript_lines
from .session import Session


def transcript_prompt(session: Session) -> str | None:
    """Describe the session so far for an agent whose own memory may have lapsed."""
    if not session.transcript and not session.recap:
        return None
    lines = ["This is a continuing voice conversation."]
    if session.recap:
        lines.append(f"Summary of what was said before: {session.recap}")
    if session.transcript:
        lines.append("Earlier turns, oldest first:")
        lines.extend(transcript_lines(session.transcript))
    return "\n".join(lines)


class DelegateBackend:
    """Answer through another Home Assistant conversation agent."""

    def __init__(self, hass: HomeAssistant, delegate_id: str, own_entry_id: str) -> None:
        """Remember which agent to delegate to."""
        self._hass = hass
        self.delegate_id = delegate_id
        self._own_entry_id = own_entry_id

    @property
    def can_act(self) -> bool:
        """Tell whether the delegate can control the home (it offers CONTROL)."""
        state = self._hass.states.get(self.delegate_id)
        features = state.attributes.get(ATTR_SUPPORTED_FEATURES, 0) if state else 0
        return bool(features & ConversationEntityFeature.CONTROL)

    async def async_answer(
        self,
        user_input: ConversationInput,
        chat_log: ChatLog,
        session: Session,
    ) -> Reply:
        """Delegate the turn in the turn's chat log; answer with the delegate's response.

        The delegate's own costs are not known here.
        """
        if self.delegate_id in (user_input.agent_id, self._own_entry_id):
            raise HomeAssistantError(translation_domain=DOMAIN, translation_key="delegate_loop")
        extra = "\n\n".join(
            part for part in (transcript_prompt(session), user_input.extra_system_prompt) if part
        )
        # A delegate that never answers is bounded by the whole turn's time limit.
        try:
            result = await async_converse(
                self._hass,
                text=user_input.text,
                conversation_id=chat_log.conversation_id,
                context=user_input.context,
                language=user_input.language,
                agent_id=self.delegate_id,
                device_id=user_input.device_id,
                satellite_id=satellite_id_of(user_input),
                extra_system_prompt=extra or None,
            )
        except ValueError as err:  # the agent is gone
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="delegate_missing",
                translation_placeholders={"agent_id": self.delegate_id},
            ) from err
        return Reply(response=result.response, continue_conversation=result.continue_conversation)
