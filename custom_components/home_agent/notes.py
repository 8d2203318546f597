"""A household note: one short sentence of the household or of one person, and its checks.

A note's text never changes: an update is a new note that supersedes the old one (kept,
hidden, for its history until it is forgotten). What a note may hold is decided here, in
one place, for every way a note is written (actions, the model's tools, extraction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
import re
import secrets
import unicodedata

from homeassistant.exceptions import ServiceValidationError

from .const import DOMAIN
from .session import sanitize_text

MAX_NOTE_CHARS = 200
# Active notes per scope (the household, or one person), and notes kept in all (earlier
# versions of updated notes included).
MAX_NOTES_PER_SCOPE = 500
MAX_NOTES = 2000


class Origin(StrEnum):
    """Who wrote a note."""

    ACTION = "action"
    CONVERSATION = "conversation"
    SESSION_END = "session_end"


@dataclass(slots=True, eq=False)
class Note:
    """One note. `person` None: the household's (every speaker sees it)."""

    id: str
    text: str
    person: str | None
    origin: Origin
    # When the fact was first noted (an update keeps the time of what it supersedes) and
    # when this text was written.
    created_at: datetime
    updated_at: datetime
    # How often recall found it (ranks the notes a prompt has room for).
    uses: int = 0
    # The note that replaced this one; None while it is current.
    superseded_by: str | None = None
    # A standing instruction of the household ("never above 20 degrees"): ranked first.
    rule: bool = False

    @property
    def active(self) -> bool:
        """Tell whether the note is current (not superseded)."""
        return self.superseded_by is None


class NoteRefused(ServiceValidationError):
    """A note (or a change of notes) was refused; the message says why, translated."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Build the refusal from its translation key."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders=placeholders or None,
        )


def new_note_id(taken: set[str] | dict[str, Note]) -> str:
    """Return a short random id (10 hex digits): few tokens in a prompt or tool result."""
    while (note_id := secrets.token_hex(5)) in taken:
        pass  # pragma: no cover - one in a trillion
    return note_id


_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return a note's text as kept: one line, composed characters, single spaces.

    Raise NoteRefused when nothing is left or it is longer than MAX_NOTE_CHARS.
    """
    text = unicodedata.normalize("NFC", sanitize_text(text))
    # Control and format characters (new lines, zero-width spaces) become spaces.
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in text)
    text = _SPACE.sub(" ", text).strip()
    if not text:
        raise NoteRefused("memory_text_empty")
    if len(text) > MAX_NOTE_CHARS:
        raise NoteRefused("memory_text_too_long", max=str(MAX_NOTE_CHARS))
    return text


# What a secret is called (English and a few neighbours) and long digit runs: a model's
# note is refused when it looks like one, whatever the model was told.
_SECRET_WORDS = re.compile(
    r"\b(pass(word|wort|code|phrase)s?|pins?|pin[- ]?codes?|codes?|combinations?"
    r"|credentials?|api[- ]?keys?|mot de passe|contraseñas?|wachtwoord|kennwort"
    r"|geheimzahl|iban|cvv|cvc)\b",
    re.IGNORECASE,
)
_LONG_NUMBER = re.compile(r"\d(?:[\s-]?\d){5,}")


def looks_secret(text: str) -> bool:
    """Tell whether a note written by a model might hold a code, password or PIN."""
    return bool(_SECRET_WORDS.search(text) or _LONG_NUMBER.search(text))


_RULE_WORDS = re.compile(
    r"\b(never|always|must|mustn't|must not|do not|don't|should|shouldn't|only|not allowed"
    r"|no one|nobody may)\b",
    re.IGNORECASE,
)


def reads_as_rule(text: str) -> bool:
    """Tell whether a note reads as a standing instruction (for notes without a flag)."""
    return bool(_RULE_WORDS.search(text))
