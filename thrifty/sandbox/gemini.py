"""POST /v1beta/models/{model}:generateContent and :streamGenerateContent, the Gemini API.

The usage follows Gemini's rules: ``promptTokenCount`` counts the prompt,
``candidatesTokenCount`` the visible output and ``thoughtsTokenCount`` the
thinking, outside ``candidatesTokenCount``; ``totalTokenCount`` is their sum.
Gemini 2.5 and later models think: ``reasoning_share`` of the output limit is
thoughts and the rest visible text. Gemini's tokenizer is not public, so the
sandbox counts with ``o200k_base`` and every count is an estimate.

A request whose ``toolConfig`` mode is ``ANY`` gets a ``functionCall`` of the
first allowed function, with arguments built from its schema.

NOTE: the ``X-Sandbox-*`` controls (faults, latency, fixed replies) are not
applied on these routes.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from thrifty.sandbox.errors import ApiError
from thrifty.sandbox.output import Output, plan_output
from thrifty.sandbox.state import sandbox_state
from thrifty.sandbox.tool_calls import arguments_for_schema
from thrifty.sandbox.wire import EventStream, json_response
from thrifty.tokens import get_encoding

ENCODING = "o200k_base"
_METHODS = ("generateContent", "streamGenerateContent")
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
_THINKING_PREFIXES = ("gemini-2.5", "gemini-3")


async def generate_content(request: Request) -> Response:
    """Serve both methods, and return errors in Gemini's error shape."""
    try:
        return await _generate(request)
    except ApiError as exc:
        return gemini_error(exc)


def gemini_error(error: ApiError) -> Response:
    status = _STATUS_NAMES.get(error.status, "INTERNAL" if error.status >= 500 else "UNKNOWN")
    body = {"error": {"code": error.status, "message": error.message, "status": status}}
    return Response(orjson.dumps(body), status_code=error.status, media_type="application/json")


async def _generate(request: Request) -> Response:
    model, method = _model_and_method(str(request.path_params["target"]))
    _authenticate(request)
    body = _json_body(await request.body())
    settings = sandbox_state(request).settings
    prompt = _prompt_tokens(body)
    call = _forced_call(body)
    config = body.get("generationConfig") or {}
    limit = config.get("maxOutputTokens") if isinstance(config, Mapping) else None
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ApiError(400, f"maxOutputTokens must be a positive integer, got {limit!r}")
    share = settings.reasoning_share if model.startswith(_THINKING_PREFIXES) else 0.0
    output = plan_output(ENCODING, limit, settings.default_max_tokens, share)
    envelope = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
    if method == "streamGenerateContent":
        events = _stream(envelope, prompt, output, call, settings.tokens_per_chunk)
        return EventStream(events, {}, None)
    parts, visible = _reply_parts(output, call)
    return json_response(
        {
            **envelope,
            "candidates": [_candidate(parts, _finish_reason(output, call))],
            "usageMetadata": _usage(prompt, visible, output.reasoning_tokens),
        },
        {},
    )


def _model_and_method(target: str) -> tuple[str, str]:
    model, _, method = target.partition(":")
    if method not in _METHODS or not model:
        raise ApiError(404, f"models/{target} is not a method of the Gemini API")
    return model, method


def _authenticate(request: Request) -> None:
    if request.headers.get("x-goog-api-key", "").strip() or request.query_params.get("key"):
        return
    raise ApiError(
        403,
        "Method doesn't allow unregistered callers. Send an API key in the x-goog-api-key "
        "header; the sandbox accepts any key.",
    )


def _json_body(raw: bytes) -> Mapping[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"Invalid JSON payload received: {exc.msg}") from exc
    if not isinstance(body, Mapping):
        raise ApiError(400, "Invalid JSON payload received: the body must be an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
    return body


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    """Count the text, function calls and function responses of the prompt."""
    encoding = get_encoding(ENCODING)
    contents = list(body.get("contents") or [])
    system = body.get("systemInstruction")
    if isinstance(system, Mapping):
        contents.append(system)
    total = 0
    for content in contents:
        parts = content.get("parts") if isinstance(content, Mapping) else None
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, Mapping):
                continue
            if isinstance(part.get("text"), str):
                total += len(encoding.encode(part["text"]))
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    total += len(encoding.encode(orjson.dumps(part[key]).decode()))
    tools = body.get("tools")
    if tools:
        total += len(encoding.encode(orjson.dumps(tools).decode()))
    return total


def _forced_call(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the ``functionCall`` that mode ``ANY`` forces, or None."""
    config = body.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, Mapping) else None
    if not isinstance(calling, Mapping) or calling.get("mode") != "ANY":
        return None
    declarations = [
        declaration
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping)
        for declaration in tool.get("functionDeclarations") or []
        if isinstance(declaration, Mapping)
    ]
    allowed = calling.get("allowedFunctionNames") or [d.get("name") for d in declarations]
    chosen = next((d for d in declarations if d.get("name") in allowed), None)
    if chosen is None:
        return None
    schema = chosen.get("parametersJsonSchema") or chosen.get("parameters")
    return {"name": chosen.get("name"), "args": arguments_for_schema(schema)}


def _reply_parts(output: Output, call: dict[str, Any] | None) -> tuple[list[dict[str, Any]], int]:
    """Return the reply's parts and their visible tokens."""
    if call is not None:
        tokens = len(get_encoding(ENCODING).encode(orjson.dumps(call["args"]).decode()))
        return [{"functionCall": call}], tokens
    return [{"text": output.text}], output.text_tokens


def _finish_reason(output: Output, call: dict[str, Any] | None) -> str:
    return "MAX_TOKENS" if output.capped and call is None else "STOP"


def _candidate(parts: list[dict[str, Any]], finish_reason: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish_reason is not None:
        candidate["finishReason"] = finish_reason
    return candidate


def _usage(prompt: int, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if thoughts:
        # Gemini omits counts that are 0.
        usage["thoughtsTokenCount"] = thoughts
    return usage


async def _stream(
    envelope: dict[str, Any],
    prompt: int,
    output: Output,
    call: dict[str, Any] | None,
    tokens_per_chunk: int,
) -> AsyncIterator[bytes]:
    """Yield ``data:`` chunks, the last with the finish reason and the final usage."""
    if call is not None:
        parts, visible = _reply_parts(output, call)
        chunk = {
            **envelope,
            "candidates": [_candidate(parts, "STOP")],
            "usageMetadata": _usage(prompt, visible, output.reasoning_tokens),
        }
        yield _sse(chunk)
        return
    pieces = output.chunks(tokens_per_chunk) or [("", 0)]
    sent = 0
    for number, (text, tokens) in enumerate(pieces, start=1):
        sent += tokens
        last = number == len(pieces)
        chunk = {
            **envelope,
            "candidates": [
                _candidate([{"text": text}], _finish_reason(output, None) if last else None)
            ],
            # Thinking comes before the first text, so its count is whole from the start.
            "usageMetadata": _usage(prompt, sent, output.reasoning_tokens),
        }
        yield _sse(chunk)


def _sse(payload: Mapping[str, Any]) -> bytes:
    # CRLF line ends, which server-sent events allow, so clients' CRLF handling is exercised.
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"
