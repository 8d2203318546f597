"""Expired sessions turned into notes: one request each, checked, never for a cleared session."""

from __future__ import annotations

from datetime import timedelta
import json
import re
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.home_agent.const import DOMAIN
from custom_components.home_agent.notes_extraction import (
    EXTRACTION_INSTRUCTIONS,
    RETRY_DELAYS,
    START_DELAY,
    TRY_FOR,
)
from custom_components.home_agent.session import Exchange

from ..fake_openai import FakeOpenAI, Recorded
from ..helpers import (
    AGENT_ENTITY_ID,
    async_add_agent,
    async_advance,
    async_restarted,
    make_device,
    record_exchange,
    setup_entry,
    start_session,
)
from ..pipeline_runs import async_voice
from .household import (
    MEMORY_OPTIONS,
    act,
    assert_nothing_kept,
    async_later,
    async_people,
    async_saved,
    listed,
    prompt_notes,
    remember,
    stored,
    voice_satellite,
)

COFFEE = "Bob takes his coffee black."
MILK = "Bob takes his coffee with milk."
CARLA = "Carla visits on 14 June."
SAID = "my sister Carla visits on the fourteenth of June"


def extractions(fake: FakeOpenAI) -> list[Recorded]:
    """Return the extraction requests the server received."""
    return [r for r in fake.chat_requests if r.messages[0]["content"] == EXTRACTION_INSTRUCTIONS]


def proposal(
    text: str, about: str = "household", replaces: Any = None, **more: Any
) -> dict[str, Any]:
    """Return one note as the model proposes it."""
    return {"text": text, "about": about, "replaces": replaces, "rule": False, **more}


def notes_reply(*proposals: Any) -> str:
    """Return an extraction reply."""
    return json.dumps({"notes": list(proposals)})


def shown_number(request: Recorded, text: str) -> int:
    """Return the number a kept note was shown under in an extraction request."""
    found = re.search(rf"^(\d+)\. {re.escape(text)}$", request.messages[1]["content"], re.M)
    assert found is not None, request.messages[1]["content"]
    return int(found.group(1))


async def assert_never_asked_again(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake: FakeOpenAI
) -> None:
    """Check that a day on, no second extraction was asked and what was said is off disk."""
    await async_later(hass, freezer, 86400)
    assert len(extractions(fake)) == 1
    await async_saved(hass, freezer)
    assert SAID.encode() not in stored(hass)


async def test_an_expired_session_becomes_notes_with_one_request(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """What was said and the kept notes, with a schema, in one request; the note lives on."""
    await remember(hass, COFFEE)
    added = async_capture_events(hass, "home_agent_memory_added")
    satellite = voice_satellite(hass, "Kitchen")
    await satellite.say(SAID)
    await satellite.say("she likes tea")
    fake_openai.reply(notes_reply(proposal(CARLA)))

    await async_later(hass, freezer, 3601)
    await async_later(hass, freezer, 3600)

    (request,) = extractions(fake_openai)
    assert request.body["response_format"]["type"] == "json_schema"
    assert "tools" not in request.body
    question = request.messages[1]["content"]
    assert f"User: {SAID}" in question
    assert "User: she likes tea" in question
    assert f"1. {COFFEE}" in question
    memories = (await act(hass, "list_memories"))["memories"]
    assert [(m["text"], m["origin"]) for m in memories] == [
        (COFFEE, "action"),
        (CARLA, "session_end"),
    ]
    assert [e.data["origin"] for e in added] == ["session_end"]
    await satellite.say("who visits")
    assert prompt_notes(fake_openai.chat_requests[-1].system_prompt) == [CARLA, COFFEE]


async def test_a_cleared_session_is_never_sent_to_the_model_again(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Cleared, then a day passes: no extraction request, nothing stored."""
    satellite = voice_satellite(hass, "Kitchen")
    await satellite.say(SAID)
    requests = len(fake_openai.chat_requests)

    await hass.services.async_call(
        DOMAIN, "clear_conversation", {"device_id": satellite.device_id}, blocking=True
    )
    await async_later(hass, freezer, 86400)

    assert len(fake_openai.chat_requests) == requests
    await assert_nothing_kept(hass, freezer, b"fourteenth")


async def test_every_proposal_is_checked(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """Updates supersede, a speaker's note is theirs; secrets, bad ids, long texts are dropped."""
    people = await async_people(hass, Ada=hass_admin_user, Bob=hass_read_only_user)
    await remember(hass, COFFEE)
    bobs = await remember(hass, "Bob's birthday is on 2 March.", person=people["Bob"])
    updated = async_capture_events(hass, "home_agent_memory_updated")

    def model(request: Recorded) -> dict[str, Any] | None:
        if request.messages[0]["content"] != EXTRACTION_INSTRUCTIONS:
            return None
        assert "Bob's birthday" not in request.messages[1]["content"]  # not Ada's to see
        assert "The person speaking is Ada." in request.messages[1]["content"]
        reply = notes_reply(
            proposal(MILK, replaces=shown_number(request, COFFEE)),
            proposal("Ada prefers the window seat.", about="speaker"),
            proposal("The front door PIN is 1234."),
            proposal("The garage password is swordfish."),
            proposal("x" * 201),
            proposal("Bob's birthday is on 3 March.", replaces=99),
            proposal("Nobody mentioned this.", about="everyone", replaces="1"),
            {"about": "household"},
            "not a note",
        )
        return {"role": "assistant", "content": f"```json\n{reply}\n```"}

    fake_openai.responder = model
    ada = await async_voice(hass, hass_ws_client, AGENT_ENTITY_ID)
    await ada.say("Bob drinks his coffee with milk now, and I like the window seat", None)
    await async_later(hass, freezer, 3601)

    assert len(extractions(fake_openai)) == 1
    assert await listed(hass, hass_admin_user) == [
        "Bob's birthday is on 2 March.",
        MILK,
        "Ada prefers the window seat.",
    ]
    assert await listed(hass, person=people["Ada"]) == ["Ada prefers the window seat."]
    assert len(updated) == 1
    assert bobs in json.dumps(await act(hass, "list_memories"))
    await async_saved(hass, freezer)
    on_disk = stored(hass)
    assert COFFEE.encode() in on_disk  # extraction never deletes: kept as history
    assert b"1234" not in on_disk
    assert b"swordfish" not in on_disk


async def test_a_shared_device_never_makes_a_persons_note(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A satellite has no user: a note "about the speaker" is dropped, not made the household's."""
    await voice_satellite(hass, "Kitchen").say("I am allergic to nuts")
    fake_openai.reply(notes_reply(proposal("The speaker is allergic to nuts.", about="speaker")))

    await async_later(hass, freezer, 3601)

    assert len(extractions(fake_openai)) == 1
    assert "not known" in extractions(fake_openai)[0].messages[1]["content"]
    assert await listed(hass) == []


async def test_a_pending_extraction_survives_a_restart(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The server fails, Home Assistant restarts: the session is still turned into notes."""
    satellite = voice_satellite(hass, "Kitchen")
    await satellite.say(SAID)
    fake_openai.status(500)
    await async_later(hass, freezer, 3601)
    assert len(extractions(fake_openai)) == 1
    assert await listed(hass) == []

    async with async_restarted(hass, setup_integration) as (hass2, entry2):
        await setup_entry(hass2, entry2)
        fake_openai.reply(notes_reply(proposal(CARLA)))
        await async_later(hass2, freezer, START_DELAY)
        assert await listed(hass2) == [CARLA]
        await async_saved(hass2, freezer)
        assert SAID.encode() not in stored(hass2)  # what was said left with the extraction

    assert len(extractions(fake_openai)) == 2


async def test_a_server_too_slow_to_answer_is_tried_again(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The extraction runs out of time: what was said waits, and the next try keeps notes."""
    monkeypatch.setattr("custom_components.home_agent.notes_extraction.TURN_TIME_LIMIT", 0.2)
    await voice_satellite(hass, "Kitchen").say(SAID)
    fake_openai.slow(60)
    requests = len(fake_openai.chat_requests)
    for step in (3601, 1):  # the session runs out; its extraction falls due
        await async_advance(hass, freezer, timedelta(seconds=step))
    await fake_openai.requested(requests + 1)
    # The clock is frozen: the time limit runs out when it moves on.
    await async_later(hass, freezer, 1)
    assert len(extractions(fake_openai)) == 1
    assert await listed(hass) == []
    await async_saved(hass, freezer)
    assert SAID.encode() in stored(hass)

    fake_openai.reply(notes_reply(proposal(CARLA)))
    await async_later(hass, freezer, RETRY_DELAYS[0])

    assert len(extractions(fake_openai)) == 2
    assert await listed(hass) == [CARLA]


async def test_a_failing_server_is_tried_for_a_bounded_time(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Tried again with growing pauses, then given up: what was said leaves the disk."""
    await voice_satellite(hass, "Kitchen").say(SAID)
    await fake_openai.stop()
    await async_later(hass, freezer, 3601)
    await async_saved(hass, freezer)
    assert SAID.encode() in stored(hass)

    for delay in (*RETRY_DELAYS, *[RETRY_DELAYS[-1]] * 30):
        await async_later(hass, freezer, delay)
    await async_saved(hass, freezer)

    assert timedelta(seconds=sum(RETRY_DELAYS) + 30 * RETRY_DELAYS[-1]) > TRY_FOR
    assert SAID.encode() not in stored(hass)
    await fake_openai.start()
    await async_later(hass, freezer, 86400)
    assert extractions(fake_openai) == []
    assert await listed(hass) == []


async def test_forgetting_everything_drops_the_pending_extractions(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Forget all while a session waits to be turned into notes: it never is."""
    await voice_satellite(hass, "Kitchen").say(SAID)
    fake_openai.status(503)
    await async_later(hass, freezer, 3601)
    assert len(extractions(fake_openai)) == 1

    assert await act(hass, "forget") == {"forgotten": 0}

    await assert_never_asked_again(hass, freezer, fake_openai)


async def test_a_server_without_json_schemas_is_asked_plainly(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A 400 to the schema: asked again without it, and so from then on."""
    satellite = voice_satellite(hass, "Kitchen")
    await satellite.say(SAID)
    fake_openai.status(400)  # the streamed request
    fake_openai.status(400)  # and the same unstreamed
    fake_openai.reply(notes_reply(proposal(CARLA)))
    await async_later(hass, freezer, 3601)

    assert await listed(hass) == [CARLA]
    plain = extractions(fake_openai)[-1]
    assert "response_format" not in plain.body
    await satellite.say("Bob takes his coffee black")
    fake_openai.reply(notes_reply(proposal(COFFEE)))
    await async_later(hass, freezer, 3601)
    assert "response_format" not in extractions(fake_openai)[-1].body
    assert await listed(hass) == [CARLA, COFFEE]


async def test_a_reply_that_is_no_json_keeps_nothing_and_is_not_repeated(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A model that answers in prose: nothing stored, the session is done with."""
    await voice_satellite(hass, "Kitchen").say(SAID)
    fake_openai.reply("Carla visits soon, how lovely!")

    await async_later(hass, freezer, 3601)
    await async_later(hass, freezer, 86400)

    assert len(extractions(fake_openai)) == 1
    assert await listed(hass) == []


async def test_turns_home_assistant_answered_alone_make_no_request(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A session that never reached the model ends without an extraction request."""
    session = start_session(setup_integration, device_id=make_device(hass, "Hall"))
    record_exchange(
        setup_integration, session, Exchange("turn on the light", "Turned on", local=True)
    )

    await async_later(hass, freezer, 3601)

    assert extractions(fake_openai) == []


async def test_turning_memory_off_drops_what_waits_to_be_extracted(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Another agent keeps the notes; what this one's sessions said leaves the disk."""
    await async_add_agent(
        hass,
        {"backend": "agent", "agent_id": "conversation.home_assistant"},
        dict(MEMORY_OPTIONS),
        title="Delegating agent",
    )
    await voice_satellite(hass, "Kitchen").say(SAID)
    fake_openai.status(503)
    await async_later(hass, freezer, 3601)
    await async_saved(hass, freezer)
    assert SAID.encode() in stored(hass)

    hass.config_entries.async_update_entry(
        setup_integration, options={**MEMORY_OPTIONS, "memory": False}
    )
    await hass.async_block_till_done()

    await assert_never_asked_again(hass, freezer, fake_openai)


async def test_a_session_that_runs_out_while_stopped_is_turned_into_notes(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Home Assistant stops mid-session and starts after the timeout: one request all the same."""
    await voice_satellite(hass, "Kitchen").say(SAID)

    async with async_restarted(hass, setup_integration) as (hass2, entry2):
        freezer.tick(timedelta(seconds=7200))
        await setup_entry(hass2, entry2)
        fake_openai.reply(notes_reply(proposal(CARLA)))
        await async_later(hass2, freezer, START_DELAY)
        assert await listed(hass2) == [CARLA]
        await async_saved(hass2, freezer)
        assert SAID.encode() not in stored(hass2)

    (request,) = extractions(fake_openai)
    assert f"User: {SAID}" in request.messages[1]["content"]


async def test_a_session_that_goes_on_after_a_restart_is_extracted_once_at_its_end(
    hass: HomeAssistant,
    setup_integration: MockConfigEntry,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Back within the timeout: nothing is extracted at the start, once when it ends."""
    kitchen = voice_satellite(hass, "Kitchen")
    await kitchen.say(SAID)

    async with async_restarted(hass, setup_integration) as (hass2, entry2):
        await setup_entry(hass2, entry2)
        await async_later(hass2, freezer, START_DELAY)
        assert extractions(fake_openai) == []
        await async_saved(hass2, freezer)
        assert SAID.encode() not in stored(hass2)  # no copy waits for it any more
        fake_openai.reply(notes_reply(proposal(CARLA)))
        await async_later(hass2, freezer, 3601)
        assert await listed(hass2) == [CARLA]

    assert len(extractions(fake_openai)) == 1
