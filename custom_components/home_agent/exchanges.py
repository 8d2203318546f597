"""What a session remembers of a turn, read from Home Assistant's chat log, and back again.

A turn runs in the chat log of the pipeline's conversation. What Home Agent added there
(tool calls, their results, the reply) becomes one `Exchange` of the session transcript;
what Home Assistant answered itself (a local intent, a sentence trigger) becomes an
exchange marked `local`. The transcript is sent to the model in OpenAI's message form.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
import json
from typing import Any

from homeassistant.components import conversation

from .compat import tool_result_data
from .const import TOOL_RESULT_MAX_CHARS
from .session import Exchange, ToolCall, ToolRound

# Marks a tool result the transcript keeps only the start of.
CUT_MARKER = "…[cut]"


def json_text(data: Any) -> str:
    """Return JSON text the same way for live turns and the transcript (a stable prompt)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def compact_result(data: Any) -> str:
    """Return a tool result as JSON text of at most TOOL_RESULT_MAX_CHARS, cut visibly."""
    text = json_text(data)
    if len(text) <= TOOL_RESULT_MAX_CHARS:
        return text
    return text[: TOOL_RESULT_MAX_CHARS - len(CUT_MARKER)] + CUT_MARKER


def turn_rounds(contents: Sequence[conversation.Content]) -> tuple[ToolRound, ...]:
    """Return the tool rounds among the content a turn added, results matched by call id."""
    results = {
        content.tool_call_id: compact_result(tool_result_data(content))
        for content in contents
        if isinstance(content, conversation.ToolResultContent)
    }
    return tuple(
        ToolRound(
            text=content.content or None,
            calls=tuple(
                ToolCall(
                    id=call.id,
                    name=call.tool_name,
                    arguments=dict(call.tool_args),
                    result=results.get(call.id, json_text({"error": "no result"})),
                )
                for call in content.tool_calls
            ),
        )
        for content in contents
        if isinstance(content, conversation.AssistantContent) and content.tool_calls
    )


def last_text(contents: Sequence[conversation.Content]) -> str:
    """Return the last assistant text among some chat-log content ("" if none)."""
    answer = _last_answer(contents)
    return answer.content if answer is not None and answer.content else ""


def _last_answer(contents: Sequence[conversation.Content]) -> conversation.AssistantContent | None:
    """Return the last assistant message with text among some chat-log content."""
    return next(
        (
            content
            for content in reversed(contents)
            if isinstance(content, conversation.AssistantContent) and content.content
        ),
        None,
    )


def turn_exchange(
    text: str, speech: str, contents: Sequence[conversation.Content], facts: str | None
) -> Exchange:
    """Return what the transcript keeps of an answered turn (`contents`: what it added)."""
    return Exchange(text, speech, turn_rounds(contents), facts=facts)


# Who answers a turn Home Assistant handles itself, in the chat log: the built-in agent
# (a local intent) or a sentence trigger.
LOCAL_AGENT_IDS = frozenset({conversation.HOME_ASSISTANT_AGENT, "sentence_trigger"})


def local_exchanges(contents: Iterable[conversation.Content]) -> list[Exchange]:
    """Return the exchanges Home Assistant answered itself, in order.

    Each user message answered by Home Assistant's own text is one exchange, with what was
    done on the way (from 2026.x Home Assistant writes its intent as a tool call of the
    pipeline's agent); a message answered by any agent (Home Agent's, another's), or not at
    all, is no local turn.
    """
    exchanges: list[Exchange] = []
    for user, answer in _spans(contents):
        text = _last_answer(answer)
        if text is not None and text.content and text.agent_id in LOCAL_AGENT_IDS:
            exchanges.append(Exchange(user, text.content, turn_rounds(answer), local=True))
    return exchanges


def _spans(
    contents: Iterable[conversation.Content],
) -> Iterator[tuple[str, list[conversation.Content]]]:
    """Yield each user message with the content that follows it, up to the next one."""
    user: str | None = None
    answer: list[conversation.Content] = []
    for content in contents:
        if isinstance(content, conversation.UserContent):
            if user is not None:
                yield user, answer
            user, answer = content.content, []
        elif user is not None:
            answer.append(content)
    if user is not None:
        yield user, answer


def _tool_call_message(
    round_: ToolRound, arguments_texts: dict[str, str] | None = None
) -> dict[str, Any]:
    """Return the assistant message that asks for a round's tools.

    `arguments_texts` holds, by call id, arguments the model sent that were not a JSON
    object: the model is shown what it sent.
    """
    texts = arguments_texts or {}
    return {
        "role": "assistant",
        "content": round_.text,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": texts.get(call.id) or json_text(call.arguments),
                },
            }
            for call in round_.calls
        ],
    }


def round_messages(round_: ToolRound) -> list[dict[str, Any]]:
    """Return a tool round as OpenAI messages: the calls, then one message per result."""
    return [
        _tool_call_message(round_),
        *(
            {"role": "tool", "tool_call_id": call.id, "content": call.result}
            for call in round_.calls
        ),
    ]


def with_facts(text: str, facts: str | None) -> str:
    """Return a user message with the facts of its turn (the same way every time)."""
    return f"{text}\n\n({facts})" if facts else text


def exchange_messages(exchange: Exchange) -> list[dict[str, Any]]:
    """Return one exchange as OpenAI chat messages, tool rounds included."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": with_facts(exchange.user, exchange.facts)}
    ]
    for round_ in exchange.rounds:
        messages.extend(round_messages(round_))
    messages.append({"role": "assistant", "content": exchange.assistant})
    return messages


def exchange_json(exchange: Exchange) -> str:
    """Return one exchange's messages as JSON, comma-separated: its part of a message list."""
    return ",".join(json_text(message) for message in exchange_messages(exchange))


def live_messages(contents: Sequence[conversation.Content]) -> list[dict[str, Any]]:
    """Return the current turn's chat-log content (from its user message) as OpenAI messages.

    Tool results go to the model whole during the turn; the transcript keeps them compact.
    """
    messages: list[dict[str, Any]] = []
    for content in contents:
        if isinstance(content, conversation.UserContent):
            messages.append({"role": "user", "content": content.content})
        elif isinstance(content, conversation.AssistantContent):
            if content.tool_calls:
                calls = tuple(
                    ToolCall(call.id, call.tool_name, dict(call.tool_args), "")
                    for call in content.tool_calls
                )
                garbled = {
                    call.id: text
                    for call in content.tool_calls
                    if (text := getattr(call, "arguments_text", None))
                }
                messages.append(
                    _tool_call_message(ToolRound(content.content or None, calls), garbled)
                )
            elif content.content:
                messages.append({"role": "assistant", "content": content.content})
        elif isinstance(content, conversation.ToolResultContent):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": content.tool_call_id,
                    "content": json_text(tool_result_data(content)),
                }
            )
    return messages


def transcript_lines(exchanges: Iterable[Exchange]) -> list[str]:
    """Return exchanges as plain text lines, tool calls included (for prompts, not the API)."""
    lines: list[str] = []
    for exchange in exchanges:
        lines.append(f"User: {exchange.user}")
        lines.extend(
            f"(Assistant used {call.name} {call.arguments}: {call.result})"
            for round_ in exchange.rounds
            for call in round_.calls
        )
        lines.append(f"Assistant: {exchange.assistant}")
    return lines
