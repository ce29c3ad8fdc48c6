"""OpenAI chat completions bodies: ``messages`` with system, user, assistant and tool roles.

Token counts follow ``thrifty.tokens.count_chat_messages`` for message text,
which is how OpenAI documents its chat format. Tool definitions and the
assistant's tool call arguments are counted as their JSON text, an estimate:
OpenAI does not publish how it renders them.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.prompts.dialect import (
    Dialect,
    Entry,
    Role,
    SlotKind,
    TextCounter,
    TextSlot,
    content_slots,
    parts_text,
)
from thrifty.tokens.counting import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_NAME

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


class OpenAIChat(Dialect):
    api = "chat.completions"
    provider = "openai"
    entry_overhead = TOKENS_PER_MESSAGE

    def items(self, body: dict[str, Any]) -> list[Any] | None:
        messages = body.get("messages")
        return messages if isinstance(messages, list) else None

    def entry(self, index: int, item: Any) -> Entry:
        if not isinstance(item, dict):
            return Entry(index, "other")
        role = _ROLES.get(str(item.get("role")), "other")
        calls = tuple(_call_ids(item))
        results: tuple[str, ...] = ()
        if role == "tool":
            call_id = item.get("tool_call_id")
            results = (str(call_id) if call_id is not None else f"function:{item.get('name')}",)
        return Entry(index, role, calls, results, starts_turn=role == "user")

    def item_slots(self, index: int, item: Any) -> list[TextSlot]:
        if not isinstance(item, dict):
            return []
        role = _ROLES.get(str(item.get("role")), "other")
        kind: SlotKind = "tool_result" if role == "tool" else "text"
        slots = content_slots(item, "content", role, kind, index)
        for function in _called_functions(item):
            if isinstance(function.get("arguments"), str):
                slots.append(TextSlot(function, "arguments", role, "tool_arguments", index))
        return slots

    def system_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        return []

    def item_tokens(self, item: Any, count: TextCounter) -> int:
        if not isinstance(item, dict):
            return 0
        total = TOKENS_PER_MESSAGE + count(str(item.get("role", "")))
        total += count(parts_text(item.get("content")))
        name = item.get("name")
        if name:
            total += TOKENS_PER_NAME + count(str(name))
        for function in _called_functions(item):
            total += count(str(function.get("name", ""))) + count(
                str(function.get("arguments", ""))
            )
        return total

    def system_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        return 0

    def tool_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        return sum(count(orjson.dumps(tool).decode()) for tool in self.tools(body))

    def fixed_overhead(self, body: dict[str, Any]) -> int:
        return REPLY_PRIMING_TOKENS

    def insert_context(self, body: dict[str, Any], before: int, text: str) -> bool:
        items = self.items(body)
        if items is None:
            return False
        system_roles = [
            item.get("role")
            for item in items
            if isinstance(item, dict) and item.get("role") in ("system", "developer")
        ]
        role = system_roles[0] if system_roles else "system"
        items.insert(before, {"role": role, "content": text})
        return True


def _call_ids(message: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        ids += [str(call.get("id")) for call in calls if isinstance(call, dict)]
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        ids.append(f"function:{function_call.get('name')}")
    return ids


def _called_functions(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ``function`` objects of an assistant message's tool calls."""
    functions: list[dict[str, Any]] = []
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                functions.append(call["function"])
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        functions.append(legacy)
    return functions
