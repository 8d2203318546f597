"""The endpoint's HTTP client against the fake server: streaming, fallbacks, bounds, errors."""

from __future__ import annotations

import json
import logging
import time
import tracemalloc
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError
from homeassistant.helpers import llm
import pytest

from custom_components.home_agent.client import (
    MAX_BODY_BYTES,
    ModelAuthError,
    ModelClient,
    ModelError,
)
from custom_components.home_agent.llm_tools import UnreadableToolInput, raise_if_unreadable
from custom_components.home_agent.metrics import TurnStats

from .fake_openai import FakeOpenAI

# 121 characters, as in issue 8's measurement.
REPLY = (
    "The kitchen light is on, the hallway is dark, and the front door is locked. "
    "Anything else you would like me to do tonight?"
)
PAYLOAD: dict[str, Any] = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    """Return one stream chunk's event data."""
    return json.dumps(
        {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    ).encode()


async def collect(
    client: ModelClient, stats: TurnStats | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """Return each delta of one reply with the time it arrived."""
    return [
        (time.monotonic(), delta)
        async for delta in client.async_stream_chat(PAYLOAD, stats or TurnStats())
    ]


async def deltas_before_failure(
    client: ModelClient,
) -> tuple[list[dict[str, Any]], ModelError]:
    """Return the deltas that came before the reply failed, and the error."""
    received: list[dict[str, Any]] = []

    async def _read() -> None:
        """Read the reply to its end (or failure)."""
        async for delta in client.async_stream_chat(PAYLOAD, TurnStats()):
            received.append(delta)  # noqa: PERF401 (a comprehension loses them on failure)

    with pytest.raises(ModelError) as failure:
        await _read()
    return received, failure.value


def text_of(deltas: list[dict[str, Any]]) -> str:
    """Return the text of the content deltas."""
    return "".join(delta.get("content", "") for delta in deltas)


@pytest.fixture
def client(hass: HomeAssistant, fake_openai: FakeOpenAI) -> ModelClient:
    """Return a client of the fake server, with a key."""
    return ModelClient(hass, fake_openai.base_url, "sk-test-key")


async def test_text_arrives_as_the_server_streams_it(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """16 chunks 80 ms apart: the first text comes at once, the usage counts are kept."""
    fake_openai.stream_reply(REPLY, chunks=16, interval=0.08)
    stats = TurnStats()
    started = time.monotonic()

    received = await collect(client, stats)

    deltas = [delta for _, delta in received]
    assert deltas[0] == {"role": "assistant"}
    texts = [(at, delta["content"]) for at, delta in received if "content" in delta]
    assert len(texts) == 16
    assert "".join(text for _, text in texts) == REPLY
    assert texts[0][0] - started < 0.3
    assert texts[-1][0] - started >= 1.0
    assert stats.first_text_at is not None
    assert 0 <= stats.first_text_at - started < 0.3
    assert (stats.prompt_tokens, stats.completion_tokens, stats.cached_tokens) == (120, 16, 100)
    (request,) = fake_openai.chat_requests
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.headers["Authorization"] == "Bearer sk-test-key"


async def test_tool_calls_in_pieces_come_out_whole(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """Two tool calls whose names and arguments arrive in pieces: one delta, both calls."""
    fake_openai.tool_calls(
        [
            {"id": "call_a", "name": "HassTurnOn", "arguments": {"name": "Kitchen Light"}},
            {"id": "call_b", "name": "HassTurnOff", "arguments": {"area": "Hallway", "n": 2}},
        ],
        text="On it.",
    )

    deltas = [delta for _, delta in await collect(client)]

    assert text_of(deltas) == "On it."
    (calls_delta,) = [delta for delta in deltas if "tool_calls" in delta]
    assert calls_delta["tool_calls"] == [
        llm.ToolInput(id="call_a", tool_name="HassTurnOn", tool_args={"name": "Kitchen Light"}),
        llm.ToolInput(id="call_b", tool_name="HassTurnOff", tool_args={"area": "Hallway", "n": 2}),
    ]
    # The calls are handed over once, before the usage chunk and the end of the stream.
    assert deltas[-1] is calls_delta


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "not-streamed"])
async def test_unreadable_tool_arguments_are_kept_for_the_model(
    client: ModelClient, fake_openai: FakeOpenAI, streamed: bool
) -> None:
    """Arguments that are not a JSON object: a call that must not run, with the reason."""
    if not streamed:
        fake_openai.stream_mode = "ignore"
    fake_openai.tool_calls(
        [
            {"id": "call_garbled", "name": "HassTurnOn", "arguments": '{"name": "Lamp"'},
            {"id": "call_list", "name": "HassTurnOn", "arguments": '["Lamp"]'},
            {"id": "call_empty", "name": "HassCancelAllTimers", "arguments": ""},
        ]
    )

    deltas = [delta for _, delta in await collect(client)]

    garbled, listed, empty = deltas[-1]["tool_calls"]
    assert isinstance(garbled, UnreadableToolInput)
    assert garbled.tool_args == {}
    assert garbled.problem.startswith("Arguments are not JSON")
    assert garbled.arguments_text == '{"name": "Lamp"'
    assert isinstance(listed, UnreadableToolInput)
    assert listed.problem == "Arguments must be a JSON object"
    assert not isinstance(empty, UnreadableToolInput)
    assert empty.tool_args == {}
    with pytest.raises(HomeAssistantError, match="Arguments are not JSON"):
        raise_if_unreadable(garbled)
    raise_if_unreadable(empty)


async def test_a_server_that_ignores_stream_gives_the_same_deltas(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A whole JSON completion in answer to a streamed request is read as one reply."""
    fake_openai.stream_mode = "ignore"
    fake_openai.reply("Plain answer.")
    fake_openai.tool_call("HassTurnOn", {"name": "Lamp"}, call_id="call_x")

    first = [delta for _, delta in await collect(client)]
    second = [delta for _, delta in await collect(client)]

    assert first == [{"role": "assistant"}, {"content": "Plain answer."}]
    assert second == [
        {"role": "assistant"},
        {
            "tool_calls": [
                llm.ToolInput(id="call_x", tool_name="HassTurnOn", tool_args={"name": "Lamp"})
            ]
        },
    ]
    assert all(request.body["stream"] for request in fake_openai.chat_requests)


async def test_a_server_that_refuses_stream_is_asked_again_and_remembered(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A 400 to the streamed request: asked once more without streaming, and from then on."""
    fake_openai.stream_mode = "refuse"
    fake_openai.reply("Unstreamed.")
    fake_openai.reply("Still unstreamed.")

    first = await collect(client)
    second = await collect(client)

    assert text_of([delta for _, delta in first]) == "Unstreamed."
    assert text_of([delta for _, delta in second]) == "Still unstreamed."
    refused, retried, later = fake_openai.chat_requests
    assert refused.body["stream"] is True
    assert "stream" not in retried.body
    assert "stream_options" not in retried.body
    assert "stream" not in later.body


async def test_a_stream_cut_off_midway_fails_after_its_first_words(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """The connection drops mid-reply: the words so far came, then a spoken reason."""
    fake_openai.cut_stream(REPLY, after=4, chunks=8)

    received, error = await deltas_before_failure(client)

    assert received[0] == {"role": "assistant"}
    assert 0 < len(text_of(received)) < len(REPLY)
    assert error.translation_key == "model_cannot_connect"


async def test_a_stream_that_ends_without_finishing_fails(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A stream that closes cleanly before the end of the reply is not taken as complete."""
    fake_openai.events([chunk({"role": "assistant", "content": "Half a"})])

    received, error = await deltas_before_failure(client)

    assert text_of(received) == "Half a"
    assert error.translation_key == "model_cannot_connect"


async def test_a_garbage_chunk_fails_the_reply(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A chunk that is not JSON: the reply fails with "could not understand"."""
    fake_openai.events([chunk({"content": "Hello"}), b"{not json", chunk({}, "stop"), b"[DONE]"])

    received, error = await deltas_before_failure(client)

    assert text_of(received) == "Hello"
    assert error.translation_key == "model_bad_response"


async def test_an_error_event_fails_the_reply(client: ModelClient, fake_openai: FakeOpenAI) -> None:
    """Servers report some failures as an `error` event inside a 200 stream."""
    fake_openai.events([b'{"error": {"message": "out of memory"}}'])

    _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_bad_response"


async def test_half_an_emoji_per_chunk_is_joined_and_a_lone_half_replaced(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """Surrogate halves split over chunks become the emoji; a lone half becomes U+FFFD."""
    fake_openai.events(
        [
            chunk({"content": "Smile \ud83d"}),
            chunk({"content": "\ude00 and half \ud83d"}),
            chunk({}, "stop"),
            b"[DONE]",
        ]
    )

    deltas = [delta for _, delta in await collect(client)]

    text = text_of(deltas)
    assert text == "Smile \U0001f600 and half \ufffd"
    text.encode("utf-8")  # storable as JSON


async def test_llama_cpp_timings_fill_the_stats(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """llama.cpp sends `timings` instead of `usage`; the counts add up over requests.

    Its `prompt_n` leaves out what the cache held (`cache_n`): the prompt is both, as
    OpenAI's `prompt_tokens` (what the token budget learns from) counts it.
    """
    timings = {"prompt_n": 30, "predicted_n": 5, "cache_n": 400}
    fake_openai.events([chunk({"content": "One."}, "stop", timings=timings), b"[DONE]"])
    fake_openai.events([chunk({"content": "Two."}, "stop", timings=timings), b"[DONE]"])
    stats = TurnStats()

    await collect(client, stats)
    await collect(client, stats)

    assert stats.requests == 2
    assert (stats.prompt_tokens, stats.completion_tokens, stats.cached_tokens) == (860, 10, 800)


async def test_a_50_mb_body_is_not_read_whole(client: ModelClient, fake_openai: FakeOpenAI) -> None:
    """A 50 MB answer: given up after the first MiB, without holding it in memory."""
    fake_openai.huge(50 * 1024 * 1024)

    tracemalloc.start()
    try:
        _, error = await deltas_before_failure(client)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.translation_key == "model_reply_too_long"
    assert peak < 8 * MAX_BODY_BYTES
    assert fake_openai.huge_bytes_sent < 20 * 1024 * 1024


async def test_an_endless_event_line_is_not_read_whole(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A streamed event of 50 MB (no line end): given up at the line bound."""
    fake_openai.huge(50 * 1024 * 1024, streamed=True)

    _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_reply_too_long"
    assert fake_openai.huge_bytes_sent < 20 * 1024 * 1024


async def test_a_reply_longer_than_the_cap_fails(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """Streamed text beyond MAX_REPLY_CHARS stops the reply with a spoken reason."""
    fake_openai.stream_reply("word " * 100, chunks=50, interval=0)

    with patch("custom_components.home_agent.client.MAX_REPLY_CHARS", 200):
        received, error = await deltas_before_failure(client)

    assert len(text_of(received)) <= 200
    assert error.translation_key == "model_reply_too_long"


@pytest.mark.parametrize(
    ("status", "key", "auth"),
    [
        (401, "model_invalid_auth", True),
        (403, "model_invalid_auth", True),
        (429, "model_rate_limited", False),
        (500, "model_server_error", False),
        (404, "model_request_rejected", False),
    ],
)
async def test_statuses_become_translated_errors(
    client: ModelClient, fake_openai: FakeOpenAI, status: int, key: str, auth: bool
) -> None:
    """Each error status has its spoken reason; a refused key is told apart."""
    fake_openai.status(status)

    received, error = await deltas_before_failure(client)

    assert received == []
    assert error.translation_key == key
    assert isinstance(error, ModelAuthError) is auth


async def test_a_server_that_is_down(client: ModelClient, fake_openai: FakeOpenAI) -> None:
    """Nothing listening: "can't reach"."""
    await fake_openai.stop()

    _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_cannot_connect"


async def test_no_first_byte_in_time(client: ModelClient, fake_openai: FakeOpenAI) -> None:
    """A server that does not start answering within READ_TIMEOUT: "took too long"."""
    fake_openai.slow(30)

    with patch("custom_components.home_agent.client.READ_TIMEOUT", 0.2):
        _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_timeout"


async def test_a_long_silence_mid_stream(client: ModelClient, fake_openai: FakeOpenAI) -> None:
    """A gap between chunks longer than READ_TIMEOUT fails; a long reply as such does not."""
    fake_openai.events(
        [chunk({"content": "Part one,"}), chunk({"content": " part two."}, "stop"), b"[DONE]"],
        interval=0.5,
    )
    fake_openai.stream_reply(REPLY, chunks=10, interval=0.1)

    with patch("custom_components.home_agent.client.READ_TIMEOUT", 0.3):
        received, error = await deltas_before_failure(client)
        complete = await collect(client)

    assert text_of(received) == "Part one,"
    assert error.translation_key == "model_timeout"
    assert text_of([delta for _, delta in complete]) == REPLY


async def test_keep_alive_comments_are_not_the_start_of_an_answer(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A stream of `: keep-alive` comments and no data: given up after READ_TIMEOUT."""
    fake_openai.events(
        [chunk({"content": "Too late."}, "stop"), b"[DONE]"], lead=5, keep_alive=0.05
    )
    started = time.monotonic()

    with patch("custom_components.home_agent.client.READ_TIMEOUT", 0.3):
        received, error = await deltas_before_failure(client)

    assert error.translation_key == "model_timeout"
    assert time.monotonic() - started < 1.5
    assert text_of(received) == ""


async def test_keep_alive_comments_are_not_progress(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """Comments in a pause between chunks do not shorten it; within READ_TIMEOUT they harm not."""
    fake_openai.events(
        [chunk({"content": "Part one,"}), chunk({"content": " part two."}, "stop"), b"[DONE]"],
        interval=0.6,
        keep_alive=0.05,
    )
    fake_openai.events(
        [chunk({"content": "Part one,"}), chunk({"content": " part two."}, "stop"), b"[DONE]"],
        interval=0.15,
        keep_alive=0.05,
    )

    with patch("custom_components.home_agent.client.READ_TIMEOUT", 0.3):
        received, error = await deltas_before_failure(client)
        complete = await collect(client)

    assert text_of(received) == "Part one,"
    assert error.translation_key == "model_timeout"
    assert text_of([delta for _, delta in complete]) == "Part one, part two."


async def test_list_models_and_the_setup_check(
    hass: HomeAssistant, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Models are listed; a refused key fails setup; a down server only warns, safely."""
    port = fake_openai.base_url.split(":")[2].split("/")[0]
    secret_url = f"http://someone:url-secret@127.0.0.1:{port}/v1?token=query-secret"
    client = ModelClient(hass, secret_url, "sk-key-secret")
    caplog.set_level(logging.DEBUG)

    assert await client.async_list_models() == ["fake-model"]
    await fake_openai.stop()
    await client.async_check()
    with pytest.raises(ModelError) as down:
        await client.async_list_models()

    assert down.value.flow_error == "cannot_connect"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("not answering yet" in message for message in warnings)
    for record in caplog.records:
        if not record.name.startswith("custom_components.home_agent"):
            continue  # the fake server's own access log
        for secret in ("url-secret", "query-secret", "sk-key-secret"):
            assert secret not in record.getMessage()


async def test_a_refused_key_fails_the_setup_check(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """401 on the model list: re-authentication, not a warning."""
    client = ModelClient(hass, fake_openai.base_url, "sk-wrong")
    fake_openai.models_status = 401

    with pytest.raises(ConfigEntryAuthFailed):
        await client.async_check()
    with pytest.raises(ModelAuthError) as refused:
        await client.async_list_models()

    assert refused.value.flow_error == "invalid_auth"


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(chunk({"content": 42}), id="content-not-text"),
        pytest.param(chunk({"tool_calls": ["HassTurnOn"]}), id="tool-call-not-object"),
        pytest.param(chunk({"tool_calls": [{"index": 0, "id": "c"}]}, "stop"), id="no-tool-name"),
        pytest.param(b'{"choices": {"delta": {}}}', id="choices-not-a-list"),
        pytest.param(b'{"choices": [{"index": 0, "delta": "text"}]}', id="delta-not-object"),
        pytest.param(b"[1, 2]", id="chunk-not-object"),
    ],
)
async def test_malformed_chunks_fail_the_reply(
    client: ModelClient, fake_openai: FakeOpenAI, event: bytes
) -> None:
    """A chunk of the wrong shape: "could not understand", not a traceback."""
    fake_openai.events([event, chunk({}, "stop"), b"[DONE]"])

    _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_bad_response"


async def test_only_the_first_choice_is_spoken(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """Chunks of other choices (n > 1) are not part of the reply."""
    other = b'{"choices": [{"index": 1, "delta": {"content": "Other"}}]}'
    fake_openai.events([other, chunk({"content": "Mine."}, "stop")])

    deltas = [delta for _, delta in await collect(client)]

    assert text_of(deltas) == "Mine."


async def test_a_declared_huge_body_is_refused_unread(
    client: ModelClient, fake_openai: FakeOpenAI
) -> None:
    """A Content-Length over the bound fails before anything is read."""
    fake_openai.stream_mode = "ignore"
    fake_openai.raw(b" " * (MAX_BODY_BYTES + 1))

    _, error = await deltas_before_failure(client)

    assert error.translation_key == "model_reply_too_long"
