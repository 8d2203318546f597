"""The `home_agent.remember`, `forget` and `list_memories` actions.

Administrators, automations and scripts may act on every note. A user who is not an
administrator may list, add and forget the household's notes and their own person's,
nothing else; anything else is refused with a translated error and nothing changes.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .const import (
    DOMAIN,
    PERSON_DOMAIN,
    SERVICE_FORGET,
    SERVICE_LIST_MEMORIES,
    SERVICE_REMEMBER,
)
from .notebook import Notebook, open_notebook
from .notes import Note, NoteRefused, Origin, normalize_text, reads_as_rule
from .notes_access import Caller, known_person

ATTR_TEXT = "text"
ATTR_PERSON = "person"
ATTR_MEMORY_ID = "memory_id"

REMEMBER_SCHEMA = vol.Schema(
    {vol.Required(ATTR_TEXT): cv.string, vol.Optional(ATTR_PERSON): cv.entity_id}
)
FORGET_SCHEMA = vol.Schema(
    {
        vol.Exclusive(ATTR_MEMORY_ID, "what"): cv.string,
        vol.Exclusive(ATTR_PERSON, "what"): cv.entity_id,
    }
)
LIST_SCHEMA = vol.Schema({vol.Optional(ATTR_PERSON): cv.entity_id})


@callback
def async_setup_memory_services(hass: HomeAssistant) -> None:
    """Register the memory actions (they answer once an agent has memory on)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_REMEMBER,
        _async_remember,
        schema=REMEMBER_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_FORGET,
        _async_forget,
        schema=FORGET_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_LIST_MEMORIES,
        _async_list_memories,
        schema=LIST_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )


def _notebook(hass: HomeAssistant) -> Notebook:
    """Return the open notebook, or refuse: no agent has memory on."""
    if (notebook := open_notebook(hass)) is None:
        raise NoteRefused("memory_off")
    return notebook


async def _async_remember(call: ServiceCall) -> ServiceResponse:
    """Add a note of the household or of a person."""
    notebook = _notebook(call.hass)
    caller = await Caller.async_of(call.hass, call.context)
    person: str | None = call.data.get(ATTR_PERSON)
    if person is not None:
        if not person.startswith(f"{PERSON_DOMAIN}.") or call.hass.states.get(person) is None:
            raise NoteRefused("memory_unknown_person", person=person)
        caller.check_scope(person)
    text = normalize_text(call.data[ATTR_TEXT])
    note = notebook.async_add(
        text, person, Origin.ACTION, rule=reads_as_rule(text), context=call.context
    )
    return {"memory_id": note.id} if call.return_response else None


async def _async_forget(call: ServiceCall) -> ServiceResponse:
    """Forget one note, a person's notes, or every note."""
    hass = call.hass
    notebook = _notebook(hass)
    caller = await Caller.async_of(hass, call.context)
    data: dict[str, Any] = call.data
    notes: list[Note]
    if (memory_id := data.get(ATTR_MEMORY_ID)) is not None:
        notes = [caller.note(notebook, memory_id)]
    elif (person := data.get(ATTR_PERSON)) is not None:
        known_person(hass, notebook, person)
        caller.check_scope(person)
        notes = [note for note in notebook.notes.values() if note.person == person]
        # What that person said in sessions not yet turned into notes goes too.
        notebook.async_drop_pending(lambda pending: pending.person == person)
    else:
        caller.check_everything()
        notes = list(notebook.notes.values())
        notebook.async_drop_pending(lambda _pending: True)
    forgotten = notebook.async_forget(notes, call.context)
    return {"forgotten": forgotten} if call.return_response else None


async def _async_list_memories(call: ServiceCall) -> ServiceResponse:
    """List the current notes the caller may see (or one person's), oldest first."""
    hass = call.hass
    notebook = _notebook(hass)
    caller = await Caller.async_of(hass, call.context)
    person: str | None = call.data.get(ATTR_PERSON)
    if person is not None:
        known_person(hass, notebook, person)
        caller.check_scope(person)
    notes = sorted(
        (
            note
            for note in notebook.notes.values()
            if note.active
            and caller.viewer.sees(note)
            and (person is None or note.person == person)
        ),
        key=lambda note: note.updated_at,  # ties: the order they were written
    )
    return {
        "memories": [
            {
                "memory_id": note.id,
                "text": note.text,
                "person": note.person,
                "origin": str(note.origin),
                "created_at": note.created_at.isoformat(),
                "updated_at": note.updated_at.isoformat(),
            }
            for note in notes
        ]
    }
