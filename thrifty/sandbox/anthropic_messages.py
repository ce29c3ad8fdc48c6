"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API.

Input counts are estimates made with ``o200k_base`` (Anthropic's tokenizer is
not public); see ``thrifty.sandbox.anthropic_prompt`` for the rule.
``usage.input_tokens`` excludes cache reads and writes, as Anthropic reports it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.anthropic_prompt import ENCODING, input_tokens, prompt_blocks
from thrifty.sandbox.catalog import anthropic_cache_minimum, find_model
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.output import Output, plan_output, with_answer
from thrifty.sandbox.prompt_cache import AnthropicCacheUsage, AnthropicPromptCache
from thrifty.sandbox.settings import SandboxSettings
from thrifty.sandbox.state import Admission, admit, check_model
from thrifty.sandbox.tool_calls import ToolCall, forced_anthropic_tool, split_json
from thrifty.sandbox.wire import EventStream, json_response, read_json_object, sse_event


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """The parts of a Messages API request the sandbox acts on."""

    model: str
    max_tokens: int
    stream: bool
    body: Mapping[str, Any]


def parse_messages_request(body: Mapping[str, Any]) -> MessagesRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise ApiError(400, "max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(
            400, f"max_tokens: Input should be an integer of at least 1, got {max_tokens!r}"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream: Input should be a valid boolean")
    return MessagesRequest(model, max_tokens, stream, body)


async def create_message(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    ask = parse_messages_request(await read_json_object(request))
    check_model(admission, ask.model)

    blocks = prompt_blocks(ask.body)
    cache = admission.state.anthropic_cache.apply(
        ask.model, blocks, anthropic_cache_minimum(ask.model)
    )
    usage = messages_usage(input_tokens(blocks), cache)
    output = with_answer(
        plan_output(ENCODING, ask.max_tokens, ask.max_tokens, 0.0), admission.answer
    )
    message_id = "msg_" + uuid.uuid4().hex
    tool_call = forced_anthropic_tool(ask.body, ENCODING)

    if ask.stream and tool_call is not None:
        events = _tool_use_events(message_id, ask, tool_call, usage)
        return EventStream(events, admission.headers, admission.disconnect_after_chunks)
    if ask.stream:
        events = _message_events(message_id, ask, output, usage, admission)
        return EventStream(events, admission.headers, admission.disconnect_after_chunks)
    if tool_call is not None:
        body = _message(
            message_id,
            ask.model,
            [_tool_use_block(message_id, tool_call)],
            "tool_use",
            {**usage, "output_tokens": tool_call.tokens},
        )
        return json_response(body, admission.headers)
    await admission.pacing.wait_whole_output(output.tokens)
    body = _message(
        message_id,
        ask.model,
        [_text_block(output.text)],
        _stop_reason(output),
        {**usage, "output_tokens": output.tokens},
    )
    return json_response(body, admission.headers, admission.disconnect_after_chunks is not None)


def batch_message(
    body: Mapping[str, Any], settings: SandboxSettings, cache: AnthropicPromptCache
) -> dict[str, Any]:
    """Return the message a batch request gets, with ``service_tier`` "batch" in its usage.

    Raises ApiError for an invalid request, as the endpoint does.
    """
    ask = parse_messages_request(body)
    if ask.stream:
        raise ApiError(400, "stream: batch requests cannot stream")
    if settings.reject_unknown_models and find_model(ask.model) is None:
        raise ApiError(404, f"model: {ask.model}")
    blocks = prompt_blocks(ask.body)
    usage = messages_usage(
        input_tokens(blocks), cache.apply(ask.model, blocks, anthropic_cache_minimum(ask.model))
    )
    output = plan_output(ENCODING, ask.max_tokens, ask.max_tokens, 0.0)
    return _message(
        "msg_" + uuid.uuid4().hex,
        ask.model,
        [_text_block(output.text)],
        "max_tokens",
        {**usage, "service_tier": "batch", "output_tokens": output.tokens},
    )


async def count_tokens(request: Request) -> Response:
    admission = await admit(request, "anthropic")
    body = await read_json_object(request)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "model: Field required")
    return json_response({"input_tokens": input_tokens(prompt_blocks(body))}, admission.headers)


def messages_usage(prompt_tokens: int, cache: AnthropicCacheUsage) -> dict[str, Any]:
    """Return Anthropic ``usage`` but output_tokens; input_tokens exclude cache reads and writes."""
    return {
        "input_tokens": prompt_tokens - cache.read_tokens - cache.write_tokens,
        "cache_creation_input_tokens": cache.write_tokens,
        "cache_read_input_tokens": cache.read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.write_5m_tokens,
            "ephemeral_1h_input_tokens": cache.write_1h_tokens,
        },
        "service_tier": "standard",
    }


def _text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use_block(message_id: str, call: ToolCall, *, streamed: bool = False) -> dict[str, Any]:
    tool_id = "toolu_" + message_id.removeprefix("msg_")[:24]
    arguments = {} if streamed else call.arguments
    return {"type": "tool_use", "id": tool_id, "name": call.name, "input": arguments}


async def _tool_use_events(
    message_id: str, ask: MessagesRequest, call: ToolCall, usage: dict[str, Any]
) -> AsyncIterator[bytes]:
    """Yield a streamed tool call: one tool_use block whose input arrives as JSON deltas."""
    start = _message(message_id, ask.model, [], None, {**usage, "output_tokens": 1})
    yield sse_event("message_start", {"type": "message_start", "message": start})
    block = _tool_use_block(message_id, call, streamed=True)
    yield sse_event(
        "content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}
    )
    for piece in split_json(call.arguments_json):
        delta = {"type": "input_json_delta", "partial_json": piece}
        yield sse_event(
            "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
        )
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": call.tokens,
    }
    stop = {"stop_reason": "tool_use", "stop_sequence": None}
    yield sse_event("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
    yield sse_event("message_stop", {"type": "message_stop"})


def _message(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    usage: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


async def _message_events(
    message_id: str,
    ask: MessagesRequest,
    output: Output,
    usage: dict[str, Any],
    admission: Admission,
) -> AsyncIterator[bytes]:
    """Yield a streamed message: start, one text block, the final usage, stop."""
    pacing = admission.pacing
    # Anthropic reports a token or so of output at the start and the total in message_delta.
    start = _message(message_id, ask.model, [], None, {**usage, "output_tokens": 1})
    yield sse_event("message_start", {"type": "message_start", "message": start})
    await pacing.wait_first_token()
    yield sse_event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": _text_block("")},
    )
    yield sse_event("ping", {"type": "ping"})
    for text, tokens in output.chunks(admission.settings.tokens_per_chunk):
        await pacing.wait_tokens(tokens)
        text_delta = {"type": "text_delta", "text": text}
        yield sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": text_delta},
        )
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})

    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": output.tokens,
    }
    stop = {"stop_reason": _stop_reason(output), "stop_sequence": None}
    yield sse_event("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
    yield sse_event("message_stop", {"type": "message_stop"})


def _stop_reason(output: Output) -> str:
    return "max_tokens" if output.capped else "end_turn"
