"""Who may see and change which notes: a speaker is their user's person, or nobody.

A turn's speaker is its user (the context's user id) and through it their person (the
`person` entity whose `user_id` attribute names that user). Satellites and automations
carry no user: they see the household's notes only. An action's caller is an
administrator, an automation or script (no user: both may do anything), or a user who may
read, add and forget the household's notes and their own person's, nothing else.
"""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.const import ATTR_FRIENDLY_NAME
from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.exceptions import UnknownUser

from .const import PERSON_DOMAIN
from .notebook import EVERYONE, Notebook, Viewer
from .notes import Note, NoteRefused
from .owners import person_of_user


@callback
def person_name(hass: HomeAssistant, person: str | None) -> str | None:
    """Return the name a person goes by in Home Assistant, if known."""
    if person is None or (state := hass.states.get(person)) is None:
        return None
    name = state.attributes.get(ATTR_FRIENDLY_NAME)
    return name if isinstance(name, str) else None


@callback
def speaker_viewer(hass: HomeAssistant, user_id: str | None) -> Viewer:
    """Return what a turn's speaker may see: the household's notes and their person's."""
    return Viewer(person=person_of_user(hass, user_id))


@callback
def known_person(hass: HomeAssistant, notebook: Notebook, person: str) -> str:
    """Return `person` if it is a person entity (or still has notes); else refuse."""
    if person.startswith(f"{PERSON_DOMAIN}.") and (
        hass.states.get(person) is not None
        or any(note.person == person for note in notebook.notes.values())
    ):
        return person
    raise NoteRefused("memory_unknown_person", person=person)


class Caller:
    """Who called an action: what they may see, and whose notes they may change."""

    def __init__(self, viewer: Viewer) -> None:
        """Act as `viewer` (EVERYONE for administrators and automations)."""
        self.viewer = viewer

    @classmethod
    async def async_of(cls, hass: HomeAssistant, context: Context) -> Caller:
        """Return the caller of an action (raise UnknownUser for a user that is gone)."""
        if context.user_id is None:
            return cls(EVERYONE)
        user: User | None = await hass.auth.async_get_user(context.user_id)
        if user is None:
            raise UnknownUser(context=context)
        if user.is_admin:
            return cls(EVERYONE)
        return cls(Viewer(person=person_of_user(hass, user.id)))

    def check_scope(self, person: str | None) -> None:
        """Refuse a scope the caller may not use (another person's notes, or everything)."""
        if self.viewer.everything or person is None or person == self.viewer.person:
            return
        raise NoteRefused("memory_not_allowed")

    def check_everything(self) -> None:
        """Refuse to act on every note unless the caller is an administrator or automation."""
        if not self.viewer.everything:
            raise NoteRefused("memory_not_allowed")

    def note(self, notebook: Notebook, memory_id: str) -> Note:
        """Return a note the caller may see by its id; an unseen one is unknown."""
        note = notebook.notes.get(memory_id)
        if note is None or not self.viewer.sees(note):
            raise NoteRefused("memory_unknown_id", memory_id=memory_id)
        return note
