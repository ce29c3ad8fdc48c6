"""The chat completion a request that forces a tool gets: one tool call, whole or streamed.

The completion tokens are the tokens of the call's arguments; the prompt
counts are the request's as for any other reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from thrifty.sandbox.state import Admission
from thrifty.sandbox.tool_calls import ToolCall, split_json
from thrifty.sandbox.wire import SSE_DONE, EventStream, json_response, sse_data

if TYPE_CHECKING:
    from thrifty.sandbox.openai_chat import ChatRequest


def tool_call_reply(
    envelope: dict[str, Any],
    chat: ChatRequest,
    call: ToolCall,
    usage: dict[str, Any],
    admission: Admission,
) -> Response:
    """Return the completion (or its stream) that calls ``call``'s tool once."""
    usage = _tool_usage(usage, call)
    tool_id = "call_" + str(envelope["id"])[-24:]
    if chat.stream:
        events = _events(envelope, chat.include_usage, call, tool_id, usage)
        return EventStream(events, admission.headers, admission.disconnect_after_chunks)
    tool = {
        "id": tool_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }
    message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [tool]}
    body = {
        **envelope,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}
        ],
        "usage": usage,
    }
    return json_response(body, admission.headers)


def _tool_usage(usage: dict[str, Any], call: ToolCall) -> dict[str, Any]:
    details = {**usage["completion_tokens_details"], "reasoning_tokens": 0}
    return {
        **usage,
        "completion_tokens": call.tokens,
        "total_tokens": usage["prompt_tokens"] + call.tokens,
        "completion_tokens_details": details,
    }


async def _events(
    envelope: dict[str, Any],
    include_usage: bool,
    call: ToolCall,
    tool_id: str,
    usage: dict[str, Any],
) -> AsyncIterator[bytes]:
    base = {**envelope, "object": "chat.completion.chunk"}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_data({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": None, "refusal": None})
    start = {"index": 0, "id": tool_id, "type": "function"}
    yield chunk({"tool_calls": [{**start, "function": {"name": call.name, "arguments": ""}}]})
    for piece in split_json(call.arguments_json):
        yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls")
    if include_usage:
        yield sse_data({**base, "choices": [], "usage": usage})
    yield SSE_DONE
