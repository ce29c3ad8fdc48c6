"""OpenAI Responses API bodies: ``instructions`` and an ``input`` string or list of items.

OpenAI does not publish the Responses API's prompt template, so token counts
are estimates that count it as the chat template, as the sandbox does:
``instructions`` as a developer message, each message item by its role and
text, a function call as its name and arguments, a function call output as
its text. Tool definitions are counted as their JSON text.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.prompts.dialect import (
    Dialect,
    Entry,
    Role,
    TextCounter,
    TextSlot,
    content_slots,
    parts_text,
)
from thrifty.tokens.counting import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE

_MESSAGE_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
}
_CALL_TYPES = frozenset({"function_call", "custom_tool_call"})
_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})


class OpenAIResponses(Dialect):
    api = "responses"
    provider = "openai"
    entry_overhead = TOKENS_PER_MESSAGE

    def items(self, body: dict[str, Any]) -> list[Any] | None:
        value = body.get("input")
        return value if isinstance(value, list) else None

    def entry(self, index: int, item: Any) -> Entry:
        if isinstance(item, str):
            return Entry(index, "user", starts_turn=True)
        if not isinstance(item, dict):
            return Entry(index, "other")
        item_type = item.get("type", "message")
        if item_type in _CALL_TYPES:
            return Entry(index, "assistant", calls=(str(item.get("call_id")),))
        if item_type in _OUTPUT_TYPES:
            return Entry(index, "tool", results=(str(item.get("call_id")),))
        if item_type == "message" or "role" in item:
            role = _MESSAGE_ROLES.get(str(item.get("role", "user")), "other")
            return Entry(index, role, starts_turn=role == "user")
        return Entry(index, "other")

    def item_slots(self, index: int, item: Any) -> list[TextSlot]:
        if not isinstance(item, dict):
            return []
        entry = self.entry(index, item)
        item_type = item.get("type", "message")
        if item_type in _CALL_TYPES:
            key = "arguments" if "arguments" in item else "input"
            if isinstance(item.get(key), str):
                return [TextSlot(item, key, "assistant", "tool_arguments", index)]
            return []
        if item_type in _OUTPUT_TYPES:
            return content_slots(item, "output", "tool", "tool_result", index)
        if entry.role in ("system", "user", "assistant"):
            return content_slots(item, "content", entry.role, "text", index)
        return []

    def system_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        if isinstance(body.get("instructions"), str):
            return [TextSlot(body, "instructions", "system", "text", None)]
        return []

    def slots(self, body: dict[str, Any]) -> list[TextSlot]:
        slots = super().slots(body)
        if isinstance(body.get("input"), str):
            slots.append(TextSlot(body, "input", "user", "text", None, True, True))
        return slots

    def item_tokens(self, item: Any, count: TextCounter) -> int:
        if isinstance(item, str):
            return TOKENS_PER_MESSAGE + count("user") + count(item)
        if not isinstance(item, dict):
            return 0
        item_type = item.get("type", "message")
        if item_type in _CALL_TYPES:
            text = f"{item.get('name', '')}{item.get('arguments', item.get('input', ''))}"
            return TOKENS_PER_MESSAGE + count("assistant") + count(text)
        if item_type in _OUTPUT_TYPES:
            return TOKENS_PER_MESSAGE + count("tool") + count(parts_text(item.get("output")))
        if item_type == "message" or "role" in item:
            role = str(item.get("role", "user"))
            return TOKENS_PER_MESSAGE + count(role) + count(parts_text(item.get("content")))
        # Reasoning and built-in tool items carry no text the estimate counts.
        return TOKENS_PER_MESSAGE + count(str(item_type))

    def system_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        instructions = body.get("instructions")
        if not instructions:
            return 0
        return TOKENS_PER_MESSAGE + count("developer") + count(parts_text(instructions))

    def tool_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        return sum(count(orjson.dumps(tool).decode()) for tool in self.tools(body))

    def fixed_overhead(self, body: dict[str, Any]) -> int:
        return REPLY_PRIMING_TOKENS

    def total_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        total = super().total_tokens(body, count)
        value = body.get("input")
        if isinstance(value, str):
            total += self.item_tokens(value, count)
        return total

    def insert_context(self, body: dict[str, Any], before: int, text: str) -> bool:
        items = self.items(body)
        if items is None:
            return False
        items.insert(before, {"role": "developer", "content": text})
        return True
