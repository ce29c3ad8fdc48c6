"""Converting chat requests between OpenAI's Chat Completions and Anthropic's Messages.

A conversion either keeps a request's meaning or reports why it cannot.
Text and image content, system prompts, the sampling settings both APIs
share, stop sequences and the end user convert. Tools, audio, logprobs and
other fields one API lacks are reported, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Fields that convert, and fields a batch request may leave out because they
# do not change the output (the batch itself sets the service tier).
_CHAT_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p"}
    | {"stop", "user", "metadata", "service_tier", "store"}
)
_ANTHROPIC_FIELDS = frozenset(
    {"model", "messages", "system", "max_tokens", "temperature", "top_p", "stop_sequences"}
    | {"metadata"}
)
_SYSTEM_ROLES = ("system", "developer")
_ANTHROPIC_MAX_TEMPERATURE = 1.0
_OPENAI_MAX_STOPS = 4


def chat_to_anthropic(
    body: Mapping[str, Any], default_max_tokens: int | None
) -> tuple[dict[str, Any], list[str]]:
    """Convert a chat completion body into Messages ``params``; return them and any problems."""
    problems = [
        f"field '{name}' has no Anthropic Messages equivalent; remove it to convert"
        for name in body
        if name not in _CHAT_FIELDS
    ]
    params: dict[str, Any] = {"model": body.get("model")}
    system, messages = _split_system(body.get("messages"), problems)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", default_max_tokens))
    if max_tokens is None:
        problems.append(
            "max_tokens is missing and Anthropic requires it; set it in the request "
            "or pass a default (--max-tokens)"
        )
    params["max_tokens"] = max_tokens
    params["messages"] = messages
    if system:
        params["system"] = system
    _copy_sampling(body, params, problems)
    stop = body.get("stop")
    if stop is not None:
        params["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    user = body.get("user")
    if isinstance(user, str) and user:
        params["metadata"] = {"user_id": user}
    return params, problems


def anthropic_to_chat(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Convert Messages ``params`` into a chat completion body; return it and any problems."""
    problems = [
        f"field '{name}' has no Chat Completions equivalent; remove it to convert"
        for name in params
        if name not in _ANTHROPIC_FIELDS
    ]

    messages: list[dict[str, Any]] = []
    system = params.get("system")
    if system:
        messages.append({"role": "system", "content": _system_text(system, problems)})
    raw_messages = params.get("messages")
    for index, message in enumerate(raw_messages if isinstance(raw_messages, list) else []):
        messages.append(_openai_message(index, message, problems))

    body: dict[str, Any] = {
        "model": params.get("model"),
        "messages": messages,
        "max_completion_tokens": params.get("max_tokens"),
    }
    for name in ("temperature", "top_p"):
        if name in params:
            body[name] = params[name]
    stops = params.get("stop_sequences")
    if stops:
        if isinstance(stops, list) and len(stops) > _OPENAI_MAX_STOPS:
            problems.append(
                f"stop_sequences has {len(stops)} entries; OpenAI accepts at most "
                f"{_OPENAI_MAX_STOPS}"
            )
        body["stop"] = stops
    metadata = params.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"]
    return body, problems


def _split_system(messages: Any, problems: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
    if not isinstance(messages, list):
        return None, []
    system: list[str] = []
    converted: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            problems.append(f"messages[{index}] is not an object")
            continue
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            system.append(_chat_text(index, message.get("content"), problems))
        elif role in ("user", "assistant"):
            if message.get("tool_calls") or message.get("audio"):
                problems.append(f"messages[{index}] has tool calls or audio, which do not convert")
            converted.append(
                {
                    "role": role,
                    "content": _anthropic_content(index, message.get("content"), problems),
                }
            )
        else:
            problems.append(
                f"messages[{index}] has role {role!r}; only system, developer, user and "
                "assistant messages convert"
            )
    return ("\n\n".join(system) or None), converted


def _chat_text(index: int, content: Any, problems: list[str]) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, Mapping)]
        if all(isinstance(text, str) for text in texts):
            return "\n".join(str(text) for text in texts)
    problems.append(f"messages[{index}] has system content that is not text")
    return ""


def _anthropic_content(index: int, content: Any, problems: list[str]) -> Any:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        problems.append(f"messages[{index}].content is neither text nor a list of parts")
        return content
    blocks: list[dict[str, Any]] = []
    for part_index, part in enumerate(content):
        where = f"messages[{index}].content[{part_index}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part, Mapping):
            blocks.append({"type": "text", "text": part.get("text")})
        elif kind == "image_url" and isinstance(part, Mapping):
            blocks.append(_anthropic_image(where, part.get("image_url"), problems))
        else:
            problems.append(f"{where} has type {kind!r}; only text and image_url parts convert")
    return blocks


def _anthropic_image(where: str, image: Any, problems: list[str]) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, Mapping) else None
    if not isinstance(url, str):
        problems.append(f"{where} has no image URL")
        return {"type": "image"}
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").removesuffix(";base64")
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _copy_sampling(body: Mapping[str, Any], params: dict[str, Any], problems: list[str]) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, int | float) and temperature > _ANTHROPIC_MAX_TEMPERATURE:
            problems.append(
                f"temperature {temperature} is above Anthropic's maximum of "
                f"{_ANTHROPIC_MAX_TEMPERATURE:g}"
            )
        params["temperature"] = temperature
    if body.get("top_p") is not None:
        params["top_p"] = body["top_p"]


def _system_text(system: Any, problems: list[str]) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        texts = [block.get("text") for block in system if isinstance(block, Mapping)]
        if all(isinstance(text, str) for text in texts):
            return "\n\n".join(str(text) for text in texts)
    problems.append("system is neither text nor a list of text blocks")
    return ""


def _openai_message(index: int, message: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        problems.append(f"messages[{index}] is not an object")
        return {}
    content = message.get("content")
    if isinstance(content, str):
        return {"role": message.get("role"), "content": content}
    parts: list[dict[str, Any]] = []
    for block_index, block in enumerate(content if isinstance(content, list) else []):
        where = f"messages[{index}].content[{block_index}]"
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text" and isinstance(block, Mapping):
            parts.append({"type": "text", "text": block.get("text")})
        elif kind == "image" and isinstance(block, Mapping):
            parts.append(_openai_image(where, block.get("source"), problems))
        else:
            problems.append(f"{where} has type {kind!r}; only text and image blocks convert")
    return {"role": message.get("role"), "content": parts}


def _openai_image(where: str, source: Any, problems: list[str]) -> dict[str, Any]:
    if isinstance(source, Mapping) and source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": source.get("url")}}
    if isinstance(source, Mapping) and source.get("type") == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    problems.append(f"{where} has an image source that is neither a URL nor base64 data")
    return {"type": "image_url", "image_url": {}}
