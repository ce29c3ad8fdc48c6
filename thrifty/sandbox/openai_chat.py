"""POST /v1/chat/completions: ``chat.completion`` objects and ``chat.completion.chunk`` streams."""

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
from thrifty.sandbox.openai_prompt import chat_prompt_tokens
from thrifty.sandbox.openai_tool_reply import tool_call_reply
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
from thrifty.sandbox.tool_calls import forced_openai_tool
from thrifty.sandbox.wire import SSE_DONE, EventStream, json_response, read_json_object, sse_data

SYSTEM_FINGERPRINT = "fp_sandbox"
MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of a chat completion request the sandbox acts on."""

    model: str
    messages: list[Mapping[str, Any]]
    limit: int | None
    choices: int
    stream: bool
    include_usage: bool
    service_tier: str


def parse_chat_request(body: Mapping[str, Any]) -> ChatRequest:
    """Check a request body as OpenAI does; raise ApiError 400 on the first problem."""
    model = require_model(body)
    messages = _messages(require_present(body, "messages"))
    limit = optional_integer(body, "max_completion_tokens", 1)
    if limit is None:
        limit = optional_integer(body, "max_tokens", 1)
    choices = optional_integer(body, "n", 1, MAX_CHOICES) or 1
    stream = optional_bool(body, "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise ApiError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    include_usage = (
        isinstance(stream_options, Mapping) and stream_options.get("include_usage") is True
    )
    return ChatRequest(
        model, messages, limit, choices, stream, include_usage, served_service_tier(body)
    )


def _messages(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise ApiError(
            400,
            "Invalid type for 'messages': expected an array.",
            param="messages",
            code="invalid_type",
        )
    if not value:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for index, message in enumerate(value):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ApiError(
                400,
                f"Invalid 'messages[{index}]': expected an object with a string 'role'.",
                param=f"messages[{index}]",
                code="invalid_type",
            )
    return value


async def chat_completions(request: Request) -> Response:
    admission = await admit(request, "openai")
    body = await read_json_object(request)
    chat = parse_chat_request(body)
    check_model(admission, chat.model)
    check_flex_capacity(request, admission, chat.service_tier)

    envelope, output, usage = _plan(
        chat, admission.settings, admission.state.openai_cache, admission.answer
    )
    tool_call = forced_openai_tool(body, encoding_name(chat.model, "openai"))
    if tool_call is not None:
        return tool_call_reply(envelope, chat, tool_call, usage, admission)
    if chat.stream:
        events = _chat_events(envelope, chat, output, usage, admission)
        return EventStream(events, admission.headers, admission.disconnect_after_chunks)
    await admission.pacing.wait_whole_output(output.tokens)
    reply = _completion(envelope, chat.choices, output, usage)
    return json_response(reply, admission.headers, admission.disconnect_after_chunks is not None)


def batch_chat_completion(
    body: Mapping[str, Any], settings: SandboxSettings, cache: OpenAIPromptCache
) -> dict[str, Any]:
    """Return the ``chat.completion`` a batch request gets; raise ApiError as the endpoint does."""
    chat = parse_chat_request(body)
    if chat.stream:
        raise ApiError(400, "Batch requests cannot stream; remove 'stream'.", param="stream")
    envelope, output, usage = _plan(chat, settings, cache)
    return _completion(envelope, chat.choices, output, usage)


def _plan(
    chat: ChatRequest, settings: SandboxSettings, cache: OpenAIPromptCache, answer: str = "filler"
) -> tuple[dict[str, Any], Output, dict[str, Any]]:
    """Return a reply's envelope fields, output and usage."""
    encoding = encoding_name(chat.model, "openai")
    prompt = chat_prompt_tokens(chat.messages, encoding)
    cached = cache.cached_tokens(chat.model, prompt)
    share = settings.reasoning_share if is_reasoning_model(chat.model) else 0.0
    output = plan_output(encoding, chat.limit, settings.default_max_tokens, share)
    output = with_answer(output, answer)
    usage = chat_usage(len(prompt), cached, output, chat.choices)
    envelope = {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "created": int(time.time()),
        "model": chat.model,
        "service_tier": chat.service_tier,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return envelope, output, usage


def chat_usage(
    prompt_tokens: int, cached_tokens: int, output: Output, choices: int
) -> dict[str, Any]:
    """Return chat ``usage``: prompt_tokens include cached_tokens, completion includes reasoning."""
    completion_tokens = output.tokens * choices
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": output.reasoning_tokens * choices,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(output: Output) -> str:
    return "length" if output.capped else "stop"


def _completion(
    envelope: dict[str, Any], choices: int, output: Output, usage: dict[str, Any]
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": output.text,
        "refusal": None,
        "annotations": [],
    }
    return {
        **envelope,
        "object": "chat.completion",
        "choices": [
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(output),
            }
            for index in range(choices)
        ],
        "usage": usage,
    }


async def _chat_events(
    envelope: dict[str, Any],
    chat: ChatRequest,
    output: Output,
    usage: dict[str, Any],
    admission: Admission,
) -> AsyncIterator[bytes]:
    """Yield the chunks of a streamed completion, then ``[DONE]``.

    With ``include_usage``, every chunk carries ``"usage": null`` and a last
    chunk with no choices carries the usage, as OpenAI sends them.
    """
    base = {**envelope, "object": "chat.completion.chunk"}
    if chat.include_usage:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_data({**base, "choices": [choice]})

    pacing = admission.pacing
    await pacing.wait_first_token(output.reasoning_tokens)
    for index in range(chat.choices):
        yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
    for text, tokens in output.chunks(admission.settings.tokens_per_chunk):
        await pacing.wait_tokens(tokens)
        for index in range(chat.choices):
            yield chunk(index, {"content": text})
    for index in range(chat.choices):
        yield chunk(index, {}, _finish_reason(output))
    if chat.include_usage:
        yield sse_data({**base, "choices": [], "usage": usage})
    yield SSE_DONE
