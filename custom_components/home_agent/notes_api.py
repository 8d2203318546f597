"""The LLM API "Home Agent memory": tools to remember, recall and forget household notes.

Home Agent's `openai` agents with memory on add it to their tools; any other LLM agent
(core Ollama, OpenAI, …) can select it. Each call acts as the turn's speaker: a signed-in
user's person sees the household's notes and their own; a satellite or automation the
household's only. Every result stays under 150 tokens. Other agents also get the notes
the speaker may see in the API's prompt (Home Agent puts its own, chosen once per session,
into its system prompt itself). Without an agent that has memory on the API offers nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from homeassistant.util.json import JsonObjectType
import voluptuous as vol

from .compat import tool_result
from .const import DEFAULT_MEMORY_PROMPT_TOKENS, DOMAIN, MEMORY_API_ID, MEMORY_API_NAME
from .notebook import Notebook, Viewer, open_notebook
from .notes import Note, NoteRefused, Origin, looks_secret, normalize_text, reads_as_rule
from .notes_access import speaker_viewer
from .notes_prompt import choose, note_tokens, render

# The most a tool result may take of the model's context.
RESULT_MAX_TOKENS = 150
RECALL_CANDIDATES = 8

API_PROMPT = (
    "You can keep short notes for this household across conversations. When someone asks "
    "you to remember something, or states a lasting fact, preference, plan or house rule, "
    "call MemoryRemember with one short sentence in the third person (names, not pronouns; "
    "dates as dates, not 'tomorrow'), then tell them in a few words what you noted. Set "
    "private when only the person speaking should hear it again. To change a note, pass "
    "its id as replaces. Before saying you do not know something about the household or "
    "its people, call MemoryRecall with a few keywords. To forget a note, find its id with "
    "MemoryRecall, then call MemoryForget. Never note codes, passwords or PINs."
)


class _NoteTool(llm.Tool):
    """A memory tool: checks its arguments and acts on the notebook as the speaker."""

    integration = DOMAIN

    def __init__(self, notebook: Notebook) -> None:
        """Act on `notebook`."""
        self.notebook = notebook

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        """Check the arguments, then act."""
        arguments: dict[str, Any] = self.parameters(tool_input.tool_args)
        context = llm_context.context
        viewer = speaker_viewer(hass, context.user_id if context else None)
        return tool_result(self.act(arguments, viewer, llm_context))

    @abstractmethod
    def act(
        self, arguments: dict[str, Any], viewer: Viewer, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Do what the tool does; raise NoteRefused to tell the model why not."""
        ...


class RememberTool(_NoteTool):
    """Write a note (or a new version of one)."""

    name = "MemoryRemember"
    description = (
        "Keep a note for later conversations: one short sentence in the third person. "
        "Returns what was stored; say it back briefly."
    )
    parameters = vol.Schema(
        {
            vol.Required("text", description="The note, at most 200 characters."): str,
            vol.Optional("private", description="Only the person speaking may see it again."): bool,
            vol.Optional(
                "rule", description="It is a standing house rule (never, always, must)."
            ): bool,
            vol.Optional(
                "replaces", description="The id of a note this one updates (from recall)."
            ): str,
        }
    )

    def act(
        self, arguments: dict[str, Any], viewer: Viewer, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Store the note as the speaker's or the household's."""
        text = normalize_text(arguments["text"])
        if looks_secret(text):
            raise NoteRefused("memory_secret")
        person = None
        if arguments.get("private"):
            if viewer.person is None:
                raise NoteRefused("memory_private_needs_person")
            person = viewer.person
        replaces = None
        if (replaced_id := arguments.get("replaces")) is not None:
            replaces = _visible(self.notebook, viewer, replaced_id)
        note = self.notebook.async_add(
            text,
            person,
            Origin.CONVERSATION,
            rule=bool(arguments.get("rule")) or reads_as_rule(text),
            replaces=replaces,
            context=llm_context.context,
        )
        return {"stored": note.text, "memory_id": note.id, "private": note.person is not None}


class RecallTool(_NoteTool):
    """Search every note the speaker may see."""

    name = "MemoryRecall"
    description = (
        "Search the household's notes (and the speaker's own) by keywords. Returns the best "
        "matches with their ids."
    )
    parameters = vol.Schema(
        {vol.Required("query", description="A few keywords, such as 'Bob coffee'."): str}
    )

    def act(
        self, arguments: dict[str, Any], viewer: Viewer, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return the best matches that fit the result's budget."""
        found = self.notebook.search(arguments["query"], viewer, RECALL_CANDIDATES)
        shown = _within(found, RESULT_MAX_TOKENS)
        if shown:
            self.notebook.async_used(shown)
        return {"notes": [{"id": note.id, "text": note.text} for note in shown]}


class ForgetTool(_NoteTool):
    """Forget a note (and its earlier versions)."""

    name = "MemoryForget"
    description = "Forget a note by its id (find it with MemoryRecall first)."
    parameters = vol.Schema({vol.Required("memory_id", description="The note's id."): str})

    def act(
        self, arguments: dict[str, Any], viewer: Viewer, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Forget the note if the speaker may see it."""
        note = _visible(self.notebook, viewer, arguments["memory_id"])
        return {"forgotten": self.notebook.async_forget([note], llm_context.context)}


def _visible(notebook: Notebook, viewer: Viewer, memory_id: str) -> Note:
    """Return a current note the speaker may see, or refuse as unknown."""
    if (note := notebook.current(viewer, memory_id)) is None:
        raise NoteRefused("memory_unknown_id", memory_id=memory_id)
    return note


def _within(notes: list[Note], budget: int) -> list[Note]:
    """Return the first notes whose result entries fit `budget` tokens."""
    left = budget - note_tokens('{"notes":[]}')
    shown = []
    for note in notes:
        cost = note_tokens(f'{{"id":"{note.id}","text":"{note.text}"}},')
        if cost > left:
            break
        shown.append(note)
        left -= cost
    return shown


class MemoryAPI(llm.API):
    """The household's notes for any LLM agent, as the turn's speaker sees them."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Describe the API."""
        super().__init__(hass=hass, id=MEMORY_API_ID, name=MEMORY_API_NAME)

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the tools (none while no agent has memory on) and, for others, the notes."""
        notebook = open_notebook(self.hass)
        if notebook is None:
            return llm.APIInstance(api=self, api_prompt="", llm_context=llm_context, tools=[])
        prompt = API_PROMPT
        if llm_context.platform != DOMAIN:
            context = llm_context.context
            viewer = speaker_viewer(self.hass, context.user_id if context else None)
            ranked = notebook.visible(viewer)
            chosen = set(choose(ranked, DEFAULT_MEMORY_PROMPT_TOKENS))
            prompt += render(note for note in ranked if note.id in chosen)
        return llm.APIInstance(
            api=self,
            api_prompt=prompt,
            llm_context=llm_context,
            tools=[RememberTool(notebook), RecallTool(notebook), ForgetTool(notebook)],
        )


def async_register_memory_api(hass: HomeAssistant) -> None:
    """Offer the API to every LLM agent (once per start)."""
    llm.async_register_api(hass, MemoryAPI(hass))
