"""POST /v1/responses: ``response`` objects and their server-sent event streams."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.catalog import encoding_name, is_reasoning_model
from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.openai_prompt import chat_prompt_tokens, responses_messages
from thrifty.sandbox.output import Output, plan_output, with_answer
from thrifty.sandbox.params import (
    optional_bool,
    optional_integer,
    require_model,
    require_present,
    served_service_tier,
)
from thrifty.sandbox.prompt_cache import OpenAIPromptCache
from thrifty.sandbox.settings import SandboxSettings
from thrifty.sandbox.state import Admission, admit, check_flex_capacity, check_model
from thrifty.sandbox.wire import EventStream, json_response, read_json_object, sse_event

# The Responses API rejects max_output_tokens below 16.
MIN_OUTPUT_TOKENS = 16


@dataclass(frozen=True, slots=True)
class ResponsesRequest:
    """The parts of a Responses API request the sandbox acts on."""

    model: str
    messages: list[dict[str, Any]]
    limit: int | None
    stream: bool
    service_tier: str
    body: Mapping[str, Any]


def parse_responses_request(body: Mapping[str, Any]) -> ResponsesRequest:
    model = require_model(body)
    messages = responses_messages(body.get("instructions"), require_present(body, "input"))
    limit = optional_integer(body, "max_output_tokens", MIN_OUTPUT_TOKENS)
    stream = optional_bool(body, "stream")
    return ResponsesRequest(model, messages, limit, stream, served_service_tier(body), body)


async def create_response(request: Request) -> Response:
    admission = await admit(request, "openai")
    ask = parse_responses_request(await read_json_object(request))
    check_model(admission, ask.model)
    check_flex_capacity(request, admission, ask.service_tier)

    output, usage, ids = _plan(
        ask, admission.settings, admission.state.openai_cache, admission.answer
    )
    if ask.stream:
        return EventStream(
            _response_events(ask, output, usage, ids, admission),
            admission.headers,
            admission.disconnect_after_chunks,
        )
    await admission.pacing.wait_whole_output(output.tokens)
    body = _response_object(ask, ids, _output_items(ids, output.text), usage, "completed")
    return json_response(body, admission.headers, admission.disconnect_after_chunks is not None)


def batch_response(
    body: Mapping[str, Any], settings: SandboxSettings, cache: OpenAIPromptCache
) -> dict[str, Any]:
    """Return the ``response`` a batch request gets; raise ApiError as the endpoint does."""
    ask = parse_responses_request(body)
    if ask.stream:
        raise ApiError(400, "Batch requests cannot stream; remove 'stream'.", param="stream")
    output, usage, ids = _plan(ask, settings, cache)
    return _response_object(ask, ids, _output_items(ids, output.text), usage, "completed")


def _plan(
    ask: ResponsesRequest,
    settings: SandboxSettings,
    cache: OpenAIPromptCache,
    answer: str = "filler",
) -> tuple[Output, dict[str, Any], _ItemIds]:
    encoding = encoding_name(ask.model, "openai")
    prompt = chat_prompt_tokens(ask.messages, encoding)
    cached = cache.cached_tokens(ask.model, prompt)
    share = settings.reasoning_share if is_reasoning_model(ask.model) else 0.0
    output = with_answer(
        plan_output(encoding, ask.limit, settings.default_max_tokens, share), answer
    )
    usage = responses_usage(len(prompt), cached, output)
    return output, usage, _ItemIds.new(reasoning=is_reasoning_model(ask.model))


def responses_usage(input_tokens: int, cached_tokens: int, output: Output) -> dict[str, Any]:
    """Return Responses ``usage``: input includes cached tokens, output includes reasoning."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output.tokens,
        "output_tokens_details": {"reasoning_tokens": output.reasoning_tokens},
        "total_tokens": input_tokens + output.tokens,
    }


@dataclass(frozen=True, slots=True)
class _ItemIds:
    response: str
    created_at: int
    message: str
    reasoning: str | None

    @classmethod
    def new(cls, *, reasoning: bool) -> _ItemIds:
        return cls(
            response="resp_" + uuid.uuid4().hex,
            created_at=int(time.time()),
            message="msg_" + uuid.uuid4().hex,
            reasoning="rs_" + uuid.uuid4().hex if reasoning else None,
        )


def _reasoning_item(ids: _ItemIds) -> dict[str, Any] | None:
    if ids.reasoning is None:
        return None
    return {"type": "reasoning", "id": ids.reasoning, "summary": []}


def _message_item(ids: _ItemIds, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {
        "type": "message",
        "id": ids.message,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _output_items(ids: _ItemIds, text: str) -> list[dict[str, Any]]:
    reasoning = _reasoning_item(ids)
    message = _message_item(ids, text, "completed")
    return [message] if reasoning is None else [reasoning, message]


def _response_object(
    ask: ResponsesRequest,
    ids: _ItemIds,
    output_items: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    status: str,
) -> dict[str, Any]:
    # NOTE: a real response that reaches max_output_tokens has status
    # "incomplete" (incomplete_details.reason "max_output_tokens") and its
    # stream ends with response.incomplete; the sandbox always reports
    # "completed".
    body = ask.body
    return {
        "id": ids.response,
        "object": "response",
        "created_at": ids.created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": ask.limit,
        "metadata": body.get("metadata") or {},
        "model": ask.model,
        "output": output_items,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "service_tier": ask.service_tier,
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
    }


async def _response_events(
    ask: ResponsesRequest,
    output: Output,
    usage: dict[str, Any],
    ids: _ItemIds,
    admission: Admission,
) -> AsyncIterator[bytes]:
    """Yield the Responses API events of one text reply, numbered from 0."""
    sequence = 0

    def event(name: str, payload: dict[str, Any]) -> bytes:
        nonlocal sequence
        encoded = sse_event(name, {"type": name, "sequence_number": sequence, **payload})
        sequence += 1
        return encoded

    pending = _response_object(ask, ids, [], None, "in_progress")
    yield event("response.created", {"response": pending})
    yield event("response.in_progress", {"response": pending})
    await admission.pacing.wait_first_token(output.reasoning_tokens)

    message_index = 0
    reasoning = _reasoning_item(ids)
    if reasoning is not None:
        yield event("response.output_item.added", {"output_index": 0, "item": reasoning})
        yield event("response.output_item.done", {"output_index": 0, "item": reasoning})
        message_index = 1

    where = {"item_id": ids.message, "output_index": message_index}
    yield event(
        "response.output_item.added",
        {"output_index": message_index, "item": _message_item(ids, None, "in_progress")},
    )
    yield event(
        "response.content_part.added", {**where, "content_index": 0, "part": _text_part("")}
    )
    for text, tokens in output.chunks(admission.settings.tokens_per_chunk):
        await admission.pacing.wait_tokens(tokens)
        yield event(
            "response.output_text.delta",
            {**where, "content_index": 0, "delta": text, "logprobs": []},
        )

    text = output.text
    yield event(
        "response.output_text.done", {**where, "content_index": 0, "text": text, "logprobs": []}
    )
    yield event(
        "response.content_part.done", {**where, "content_index": 0, "part": _text_part(text)}
    )
    yield event(
        "response.output_item.done",
        {"output_index": message_index, "item": _message_item(ids, text, "completed")},
    )
    final = _response_object(ask, ids, _output_items(ids, text), usage, "completed")
    yield event("response.completed", {"response": final})
