"""Anthropic messages bodies: a top-level ``system``, ``messages`` of content blocks, ``tools``.

Anthropic's tokenizer is not public, so token counts are estimates with
``o200k_base`` under the sandbox's rule: each tool's JSON definition (keys
sorted, ``cache_control`` left out), the system text, and per message 3 tokens
of turn markers plus the text of its blocks (text, tool_use name and input
JSON, tool_result content, thinking). Images and documents count 0.
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
    is_text_part,
)

MESSAGE_OVERHEAD_TOKENS = 3


class AnthropicMessages(Dialect):
    api = "messages"
    provider = "anthropic"
    entry_overhead = MESSAGE_OVERHEAD_TOKENS

    def items(self, body: dict[str, Any]) -> list[Any] | None:
        messages = body.get("messages")
        return messages if isinstance(messages, list) else None

    def entry(self, index: int, item: Any) -> Entry:
        if not isinstance(item, dict):
            return Entry(index, "other")
        blocks = _blocks(item)
        if item.get("role") == "assistant":
            calls = tuple(str(b.get("id")) for b in blocks if b.get("type") == "tool_use")
            return Entry(index, "assistant", calls=calls)
        results = tuple(str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result")
        if results:
            return Entry(index, "tool", results=results)
        return Entry(index, "user", starts_turn=True)

    def item_slots(self, index: int, item: Any) -> list[TextSlot]:
        if not isinstance(item, dict):
            return []
        role: Role = "assistant" if item.get("role") == "assistant" else "user"
        if isinstance(item.get("content"), str):
            return [TextSlot(item, "content", role, "text", index)]
        slots: list[TextSlot] = []
        for block in _blocks(item):
            if is_text_part(block):
                slots.append(TextSlot(block, "text", role, "text", index))
            elif block.get("type") == "tool_result":
                slots += content_slots(block, "content", "tool", "tool_result", index)
        return slots

    def system_slots(self, body: dict[str, Any]) -> list[TextSlot]:
        return content_slots(body, "system", "system", "text", None)

    def item_tokens(self, item: Any, count: TextCounter) -> int:
        if not isinstance(item, dict):
            return 0
        content = item.get("content")
        if isinstance(content, str):
            return MESSAGE_OVERHEAD_TOKENS + count(content)
        total = 0
        for position, block in enumerate(_blocks(item)):
            overhead = MESSAGE_OVERHEAD_TOKENS if position == 0 else 0
            total += overhead + count(_block_text(block))
        return total

    def system_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        system = body.get("system")
        if isinstance(system, str):
            return count(system)
        if isinstance(system, list):
            return sum(count(block["text"]) for block in system if is_text_part(block))
        return 0

    def tool_tokens(self, body: dict[str, Any], count: TextCounter) -> int:
        total = 0
        for tool in self.tools(body):
            if isinstance(tool, dict):
                definition = {key: value for key, value in tool.items() if key != "cache_control"}
                total += count(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS).decode())
        return total

    def fixed_overhead(self, body: dict[str, Any]) -> int:
        return 0

    def insert_context(self, body: dict[str, Any], before: int, text: str) -> bool:
        items = self.items(body)
        if items is None or not 0 <= before < len(items) or not isinstance(items[before], dict):
            return False
        message = items[before]
        block = {"type": "text", "text": text}
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = [block, {"type": "text", "text": content}]
        elif isinstance(content, list):
            content.insert(0, block)
        else:
            return False
        return True

    def normalize(self, body: dict[str, Any]) -> None:
        """Merge neighbouring messages of the same role, as Anthropic itself would.

        Dropping a message can leave two user or two assistant messages side
        by side. The API combines such turns itself, so merging them here
        keeps the roles alternating without changing what the model reads.
        """
        items = self.items(body)
        if not items:
            return
        merged: list[Any] = []
        for item in items:
            previous = merged[-1] if merged else None
            if (
                isinstance(previous, dict)
                and isinstance(item, dict)
                and previous.get("role") == item.get("role")
            ):
                previous["content"] = _as_blocks(previous.get("content")) + _as_blocks(
                    item.get("content")
                )
                continue
            merged.append(item)
        items[:] = merged


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, dict)]


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return list(content)
    return []


def _block_text(block: dict[str, Any]) -> str:
    """Return the text of a content block that counts as input tokens."""
    block_type = block.get("type")
    if block_type == "text":
        return str(block.get("text", ""))
    if block_type == "tool_use":
        return str(block.get("name", "")) + orjson.dumps(block.get("input", {})).decode()
    if block_type == "tool_result":
        result = block.get("content", "")
        if isinstance(result, list):
            return "".join(str(p.get("text", "")) for p in result if isinstance(p, dict))
        return str(result)
    if block_type == "thinking":
        return str(block.get("thinking", ""))
    return ""
