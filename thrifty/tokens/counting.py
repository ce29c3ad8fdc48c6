"""Offline token counts for text and chat requests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from thrifty.tokens.encoding import encoding_for_model

# OpenAI's chat format adds a fixed overhead: each message is wrapped in
# start and end markers with its role (3 tokens), a ``name`` adds 1, and the
# reply is primed with 3 more. These are the values OpenAI documents for the
# gpt-3.5-turbo-0613 and later chat models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


def count_text(text: str, model: str) -> int:
    """Count the tokens of plain text with the model's encoding."""
    return len(encoding_for_model(model).encode(text, disallowed_special=()))


def message_text(content: Any) -> str:
    """Return the text of a message ``content``: a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part) for part in content)
    return str(content)


def count_chat_messages(messages: Iterable[Mapping[str, Any]], model: str) -> int:
    """Count the prompt tokens of an OpenAI-style chat request.

    Text parts are counted exactly; images, audio and tool definitions are not
    counted here.
    """
    encoding = encoding_for_model(model)
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(encoding.encode(str(message.get("role", "")), disallowed_special=()))
        total += len(encoding.encode(message_text(message.get("content")), disallowed_special=()))
        name = message.get("name")
        if name:
            total += TOKENS_PER_NAME + len(encoding.encode(str(name), disallowed_special=()))
    return total


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping):
        text = part.get("text")
        if isinstance(text, str):
            return text
    return ""
