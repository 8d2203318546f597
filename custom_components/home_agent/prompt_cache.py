"""What a model server's prompt cache holds, as far as Home Agent can tell.

llama.cpp, llama-cpp-python, Ollama and vLLM keep the prompt of the last request (per slot)
and evaluate only what a new request adds after the longest prefix they share. Home Agent
notes the prompt of its last request to each server (base URL and model, whichever agent
sent it): a warm-up that would send nothing new is skipped. After a few idle minutes the
guess is dropped (Ollama unloads an idle model after 5).
"""

from __future__ import annotations

from dataclasses import dataclass
import time

from homeassistant.core import HomeAssistant
from homeassistant.util.hass_dict import HassKey

from .client import ChatBody
from .const import DOMAIN

# Seconds a server is trusted to keep the last prompt.
CACHE_TRUST = 300.0

_DATA: HassKey[dict[tuple[str, str | None], PromptCacheGuess]] = HassKey(f"{DOMAIN}_prompt_caches")


@dataclass(slots=True)
class PromptCacheGuess:
    """The prompt of the last request to one server, and when it was sent."""

    prompt: str = ""
    at: float = 0.0

    def note(self, body: ChatBody) -> None:
        """Remember the prompt of a request the server evaluated."""
        self.prompt = body.prompt
        self.at = time.monotonic()

    def holds(self, body: ChatBody) -> bool:
        """Tell whether the server most likely holds all of `body`'s prompt but its end.

        True when the last request's prompt, up to where its messages close, starts
        `body`'s: what `body` adds is then the last reply at most.
        """
        if not self.prompt or time.monotonic() - self.at > CACHE_TRUST:
            return False
        return body.prompt.startswith(self.prompt.removesuffix("]"))


def prompt_cache(hass: HomeAssistant, base_url: str, model: str | None) -> PromptCacheGuess:
    """Return the guess about one server's cache (shared by the agents that use it)."""
    caches = hass.data.setdefault(_DATA, {})
    return caches.setdefault((base_url, model), PromptCacheGuess())
