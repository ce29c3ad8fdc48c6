"""The facts about a request body that routing reads, computed lazily.

Reads OpenAI chat completions (``messages``, ``tools``, ``functions``,
``response_format``), the OpenAI Responses API (``input``, ``instructions``,
``text.format``) and Anthropic messages (top-level ``system``, content
blocks of type ``image``). Every property is computed on first use, so a
rule that looks only at the feature never walks the messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from thrifty.tokens import count_text, message_text

_IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
_JSON_FORMATS = frozenset({"json_object", "json_schema"})
# Token counts are estimated with this model's encoding when the route's
# models are unknown here.
ENCODING_MODEL = "gpt-4o"


class RequestView:
    """Read-only, lazily computed facts about one request body."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body

    @cached_property
    def messages(self) -> list[Mapping[str, Any]]:
        """The conversation as role/content mappings, in any of the three formats."""
        raw = self.body.get("messages")
        if raw is None:
            raw = self.body.get("input")
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
        if not isinstance(raw, list):
            return []
        return [item for item in raw if isinstance(item, Mapping)]

    @cached_property
    def system_text(self) -> str:
        system = self.body.get("system", self.body.get("instructions"))
        return message_text(system) if system else ""

    @cached_property
    def prompt(self) -> str:
        """The text of the last user message: what a learned router scores."""
        for message in reversed(self.messages):
            if message.get("role", "user") == "user":
                return message_text(message.get("content"))
        return ""

    @cached_property
    def input_text(self) -> str:
        """All the text the model would read: system prompt and every message."""
        texts = [self.system_text] if self.system_text else []
        texts.extend(message_text(message.get("content")) for message in self.messages)
        return "\n".join(texts)

    @cached_property
    def input_tokens(self) -> int:
        """The input's token count, estimated offline."""
        return count_text(self.input_text, ENCODING_MODEL)

    def input_tokens_at_most(self, limit: int) -> bool:
        """Check that the input has at most ``limit`` tokens, counting only when needed.

        A token is at least one byte of UTF-8, so an input of at most
        ``limit`` bytes has at most ``limit`` tokens without counting.
        """
        if len(self.input_text.encode("utf-8")) <= limit:
            return True
        return self.input_tokens <= limit

    @cached_property
    def has_tools(self) -> bool:
        return bool(self.body.get("tools") or self.body.get("functions"))

    @cached_property
    def has_images(self) -> bool:
        return any(_has_image(message.get("content")) for message in self.messages)

    @cached_property
    def json_schema(self) -> Mapping[str, Any] | None:
        """The JSON schema the request requires of the answer, if any."""
        response_format = self._response_format
        if response_format.get("type") != "json_schema":
            return None
        wrapper = response_format.get("json_schema", response_format)
        schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
        return schema if isinstance(schema, Mapping) else None

    @cached_property
    def wants_json(self) -> bool:
        """Whether the response format is JSON (``json_object`` or ``json_schema``)."""
        return self._response_format.get("type") in _JSON_FORMATS

    @cached_property
    def _response_format(self) -> Mapping[str, Any]:
        response_format = self.body.get("response_format")
        if isinstance(response_format, Mapping):
            return response_format
        text = self.body.get("text")
        if isinstance(text, Mapping) and isinstance(text.get("format"), Mapping):
            fmt: Mapping[str, Any] = text["format"]
            return fmt
        return {}


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    return any(
        isinstance(part, Mapping) and part.get("type") in _IMAGE_PART_TYPES for part in content
    )
