"""The token budget of the history a model is sent, estimated without a tokenizer.

Tokens are estimated from characters; the ratio starts at a cautious 3 characters per
token (small models' tokenizers make more tokens of English than OpenAI's, about 4) and
learns from the prompt tokens the server reports. When the transcript
outgrows the budget, the oldest exchanges leave — enough of them to get well under it,
so the start of the history (and a server's prompt cache) changes rarely.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_CHARS_PER_TOKEN = 3.0
# Bounds of a learned ratio (a server reporting nonsense must not disable the budget).
MIN_CHARS_PER_TOKEN = 1.5
MAX_CHARS_PER_TOKEN = 8.0
# How much a new measurement moves the ratio.
LEARNING_RATE = 0.3
# After trimming, the history fills at most this share of the budget.
LOW_WATER = 0.75


class TokenEstimator:
    """Estimate tokens from characters, calibrated by the server's own counts."""

    def __init__(self) -> None:
        """Start from a typical ratio."""
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN

    def tokens(self, chars: int) -> int:
        """Return the estimated tokens of a text of `chars` characters."""
        return round(chars / self.chars_per_token)

    def calibrate(self, chars: int, prompt_tokens: int) -> None:
        """Learn from a request of `chars` characters the server counted as `prompt_tokens`."""
        if chars <= 0 or prompt_tokens <= 0:
            return
        measured = min(max(chars / prompt_tokens, MIN_CHARS_PER_TOKEN), MAX_CHARS_PER_TOKEN)
        self.chars_per_token += LEARNING_RATE * (measured - self.chars_per_token)


def exchanges_over_budget(
    exchange_chars: Sequence[int], budget: int, estimator: TokenEstimator
) -> int:
    """Return how many of the oldest exchanges must leave for the rest to fit the budget.

    `exchange_chars` is what each exchange, oldest first, takes of a request, in characters.
    """
    sizes = [estimator.tokens(chars) for chars in exchange_chars]
    total = sum(sizes)
    if total <= budget:
        return 0
    target = budget * LOW_WATER
    leaving = 0
    while leaving < len(sizes) and total > target:
        total -= sizes[leaving]
        leaving += 1
    return leaving
