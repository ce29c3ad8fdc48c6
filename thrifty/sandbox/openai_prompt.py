"""OpenAI prompts as token sequences: counted like ``count_chat_messages``, hashed for caching."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from thrifty.sandbox.errors import ApiError
from thrifty.tokens import get_encoding, message_text
from thrifty.tokens.counting import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_NAME

# Stand-ins for the chat template's marker tokens, laid out as OpenAI's
# template is: <|im_start|>{role}<|im_sep|>{content}<|im_end|>, so a shared
# prefix that ends inside a message has the real length. Negative, so they
# never equal a real token id.
_START = [-1]
_SEPARATOR = [-2]
_END = [-3] * (TOKENS_PER_MESSAGE - 2)
_NAME_MARKERS = [-4] * TOKENS_PER_NAME
_REPLY_MARKERS = [-5] * REPLY_PRIMING_TOKENS


@lru_cache(maxsize=4096)
def encode_text(encoding_name: str, text: str) -> tuple[int, ...]:
    """Encode text as ``thrifty.tokens.count_text`` does, remembering recent texts.

    Repeated system prompts and documents are encoded once. The cache keeps
    at most 4,096 texts.
    """
    return tuple(get_encoding(encoding_name).encode(text, disallowed_special=()))


def chat_prompt_tokens(messages: Iterable[Mapping[str, Any]], encoding_name: str) -> list[int]:
    """Return the prompt of a chat request as tokens, chat template markers included.

    Its length equals ``thrifty.tokens.count_chat_messages`` for the same
    messages: the same encoding, the same per-message and reply overheads.
    """
    tokens: list[int] = []
    for message in messages:
        tokens += _START
        tokens += encode_text(encoding_name, str(message.get("role", "")))
        name = message.get("name")
        if name:
            tokens += _NAME_MARKERS
            tokens += encode_text(encoding_name, str(name))
        tokens += _SEPARATOR
        tokens += encode_text(encoding_name, message_text(message.get("content")))
        tokens += _END
    tokens += _REPLY_MARKERS
    return tokens


def responses_messages(instructions: Any, input_value: Any) -> list[dict[str, Any]]:
    """Turn a Responses API ``instructions`` and ``input`` into chat-style messages.

    NOTE: OpenAI does not publish the Responses API's prompt template. The
    sandbox counts it as the chat template, so its input counts are estimates.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "developer", "content": message_text(instructions)})
    if isinstance(input_value, str):
        messages.append({"role": "user", "content": input_value})
        return messages
    if not isinstance(input_value, list):
        raise ApiError(
            400,
            "Invalid type for 'input': expected a string or an array of input items.",
            param="input",
            code="invalid_type",
        )
    for index, item in enumerate(input_value):
        messages.append(_input_item_message(index, item))
    return messages


def _input_item_message(index: int, item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"role": "user", "content": item}
    if not isinstance(item, Mapping):
        raise ApiError(
            400,
            f"Invalid type for 'input[{index}]': expected an object.",
            param=f"input[{index}]",
            code="invalid_type",
        )
    item_type = item.get("type", "message")
    if item_type == "message" or "role" in item:
        return {"role": item.get("role", "user"), "content": item.get("content")}
    if item_type == "function_call":
        return {
            "role": "assistant",
            "content": f"{item.get('name', '')}{item.get('arguments', '')}",
        }
    if item_type == "function_call_output":
        return {"role": "tool", "content": message_text(item.get("output"))}
    # Other items (reasoning, tool results of built-in tools) carry no text
    # the sandbox counts.
    return {"role": str(item_type), "content": ""}
