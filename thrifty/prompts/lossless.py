"""Lossless transforms: empty parts, whitespace, JSON formatting and repeated content.

Each one removes only what carries no information for the model: an empty
part, a run of spaces, the indentation of a JSON tool result, a message or
passage the model has already read earlier in the same request.
"""

from __future__ import annotations

from typing import Any

import orjson

from thrifty.prompts.dialect import TextSlot
from thrifty.prompts.retrieval import retrieved_elements
from thrifty.prompts.text import (
    collapse_whitespace,
    merge_spans,
    minify_json,
    paragraph_spans,
    preformatted_spans,
)
from thrifty.prompts.transform import Context, protected_items

REPEATED_NOTE = "[repeated content removed: it appears earlier in this conversation]"

# Adjacent repeated runs of messages longer than this are not looked for.
MAX_REPEATED_RUN = 64
# A paragraph shorter than this many characters is never a repeated block
# worth removing; the check skips counting its tokens.
_MIN_BLOCK_CHARS = 40


class DropEmpty:
    """Drop empty text parts, and messages left with no content."""

    name = "drop_empty"
    lossless = True

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        parts = _drop_empty_system(body, context)
        messages = 0
        items = context.dialect.items(body)
        if items:
            keep = protected_items(body, context)
            kept: list[Any] = []
            for index, item in enumerate(items):
                if index not in keep and isinstance(item, dict):
                    parts += _drop_empty_parts(item, context)
                    if _is_empty_message(item, context, index):
                        messages += 1
                        continue
                kept.append(item)
            items[:] = kept
            if messages:
                context.dialect.normalize(body)
        return {"parts_dropped": parts, "messages_dropped": messages}


def _drop_empty_system(body: dict[str, Any], context: Context) -> int:
    if context.dialect.api != "messages":
        return 0
    system = body.get("system")
    if isinstance(system, str) and not system.strip():
        del body["system"]
        return 1
    if isinstance(system, list):
        kept = [block for block in system if not _is_blank_text_part(block, context)]
        dropped = len(system) - len(kept)
        if kept:
            system[:] = kept
        else:
            del body["system"]
        return dropped
    return 0


def _drop_empty_parts(item: dict[str, Any], context: Context) -> int:
    content = item.get("content")
    if not isinstance(content, list) or len(content) < 2:
        return 0
    kept = [part for part in content if not _is_blank_text_part(part, context)]
    if not kept:
        # Keep one part, so the message itself is dropped or kept as a whole.
        kept = content[:1]
    dropped = len(content) - len(kept)
    content[:] = kept
    return dropped


def _is_blank_text_part(part: Any, context: Context) -> bool:
    if not isinstance(part, dict) or part.get("type") not in ("text", "input_text", "output_text"):
        return False
    text = part.get("text")
    return isinstance(text, str) and not text.strip() and not context.protection.spans(text)


def _is_empty_message(item: dict[str, Any], context: Context, index: int) -> bool:
    """Return whether a message carries nothing: no text, no parts, no tool call or result."""
    entry = context.dialect.entry(index, item)
    if entry.role not in ("system", "user", "assistant") or entry.calls or entry.results:
        return False
    if any(item.get(key) for key in ("audio", "refusal", "function_call", "tool_calls")):
        return False
    content = item.get("content")
    if content is None or isinstance(content, str):
        return not (content or "").strip() and not context.protection.spans(content or "")
    if isinstance(content, list):
        return all(_is_blank_text_part(part, context) for part in content)
    return False


class Whitespace:
    """Collapse whitespace in message text, outside code, preformatted and protected text.

    Tool results and tool call arguments are left alone: they are often
    program output or file contents, where whitespace is data.
    """

    name = "whitespace"
    lossless = True

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        changed = 0
        for slot in context.dialect.slots(body):
            if slot.kind != "text" or context.protection.covers_slot(slot):
                continue
            if _collapse_slot(slot, context):
                changed += 1
        return {"texts_changed": changed}


def _collapse_slot(slot: TextSlot, context: Context) -> bool:
    text = slot.text
    fixed = merge_spans(preformatted_spans(text) + context.protection.spans(text))
    collapsed = collapse_whitespace(text, fixed)
    # An all-blank text is left for drop_empty: an empty text block is
    # invalid in Anthropic's API.
    if collapsed == text or not collapsed:
        return False
    slot.set(collapsed)
    return True


class MinifyJson:
    """Minify JSON tool results and arguments; collapse whitespace in tool descriptions."""

    name = "minify_json"
    lossless = True

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        texts = 0
        for slot in context.dialect.slots(body):
            if slot.kind == "text" or context.protection.touches(slot):
                continue
            minified = minify_json(slot.text)
            if minified is not None:
                slot.set(minified)
                texts += 1
        descriptions = sum(
            _collapse_descriptions(tool, context) for tool in context.dialect.tools(body)
        )
        return {"json_texts_minified": texts, "descriptions_changed": descriptions}


def _collapse_descriptions(value: Any, context: Context) -> int:
    """Collapse whitespace in every ``description`` string of a tool definition."""
    changed = 0
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "description" and isinstance(item, str):
                fixed = merge_spans(preformatted_spans(item) + context.protection.spans(item))
                collapsed = collapse_whitespace(item, fixed)
                if collapsed != item and collapsed:
                    value[key] = collapsed
                    changed += 1
            else:
                changed += _collapse_descriptions(item, context)
    elif isinstance(value, list):
        for item in value:
            changed += _collapse_descriptions(item, context)
    return changed


class Dedupe:
    """Drop repeated tools, repeated runs of messages and passages seen earlier in the request.

    A run of messages repeated right after itself (a history appended twice),
    a system message identical to an earlier one, and a tool definition
    listed twice are dropped. A paragraph of at least ``min_block_tokens``
    tokens that already appeared earlier is removed. A text that was nothing
    but repeats becomes a short note saying so.
    """

    name = "dedupe"
    lossless = True

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        tools = _drop_repeated_tools(context.dialect.tools(body))
        messages = _drop_repeated_items(body, context)
        if messages:
            context.dialect.normalize(body)
        blocks = _drop_repeated_blocks(body, context)
        return {"tools_dropped": tools, "messages_dropped": messages, "blocks_dropped": blocks}


def _drop_repeated_tools(tools: list[Any]) -> int:
    seen: set[bytes] = set()
    kept: list[Any] = []
    for tool in tools:
        key = orjson.dumps(tool, option=orjson.OPT_SORT_KEYS)
        if key not in seen:
            seen.add(key)
            kept.append(tool)
    dropped = len(tools) - len(kept)
    tools[:] = kept
    return dropped


def _drop_repeated_items(body: dict[str, Any], context: Context) -> int:
    items = context.dialect.items(body)
    if not items:
        return 0
    keys = [orjson.dumps(item, option=orjson.OPT_SORT_KEYS) for item in items]
    protected = protected_items(body, context)
    drop = _repeated_runs(keys, protected)
    seen_system: set[bytes] = set()
    for entry in context.dialect.entries(body):
        if entry.role != "system":
            continue
        key = keys[entry.index]
        if key in seen_system and entry.index not in protected:
            drop.add(entry.index)
        seen_system.add(key)
    items[:] = [item for index, item in enumerate(items) if index not in drop]
    return len(drop)


def _repeated_runs(keys: list[bytes], protected: set[int]) -> set[int]:
    """Return indices of the second copy of each run of items repeated right after itself.

    When the second copy contains protected text and the first does not, the
    first copy is dropped instead.
    """
    drop: set[int] = set()
    count = len(keys)
    position = 1
    while position < count:
        run = _longest_repeat_at(keys, position)
        if not run:
            position += 1
            continue
        second = set(range(position, position + run))
        first = set(range(position - run, position))
        if not second & protected:
            drop |= second
        elif not first & (protected | drop):
            drop |= first
        position += run
    return drop


def _longest_repeat_at(keys: list[bytes], position: int) -> int:
    limit = min(position, len(keys) - position, MAX_REPEATED_RUN)
    for run in range(limit, 0, -1):
        if keys[position - run] != keys[position]:
            continue
        if keys[position - run : position] == keys[position : position + run]:
            return run
    return 0


def _drop_repeated_blocks(body: dict[str, Any], context: Context) -> int:
    """Remove paragraphs and retrieved documents that already appeared earlier.

    A retrieved document (an innermost ``<document>``-style element) is a
    repeat when its content equals an earlier one's, whatever its attributes
    (``index="3"``). A repeated document is removed with its tags.
    """
    seen: set[str] = set()
    dropped = 0
    for slot in context.dialect.slots(body):
        if slot.kind == "tool_arguments":
            continue
        text = slot.text
        blocks = _blocks(text)
        if context.protection.covers_slot(slot):
            seen.update(key for _, _, key in blocks)
            continue
        fixed = merge_spans(preformatted_spans(text) + context.protection.spans(text))
        repeats: list[tuple[int, int]] = []
        for start, end, key in blocks:
            if _overlaps(start, end, fixed):
                seen.add(key)
            elif key in seen and _long_enough(key, context):
                repeats.append((start, end))
            else:
                seen.add(key)
        if repeats:
            slot.set(_without_spans(text, repeats))
            dropped += len(repeats)
    return dropped


def _blocks(text: str) -> list[tuple[int, int, str]]:
    """Return (start, end, key) of the text's retrieved documents and other paragraphs."""
    elements = retrieved_elements(text)
    blocks = list(elements)
    spans = [(start, end) for start, end, _ in elements]
    for start, end in paragraph_spans(text):
        if not _overlaps(start, end, spans):
            blocks.append((start, end, text[start:end]))
    return sorted(blocks)


def _long_enough(paragraph: str, context: Context) -> bool:
    minimum = context.settings.dedupe.min_block_tokens
    return len(paragraph) >= _MIN_BLOCK_CHARS and context.counter.text(paragraph) >= minimum


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _without_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """Cut paragraphs out of text with the blank lines that separated them."""
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        pieces.append(text[position:start])
        position = end
        while position < len(text) and text[position].isspace():
            position += 1
    pieces.append(text[position:])
    result = "".join(pieces)
    if not result.strip():
        return REPEATED_NOTE
    if position >= len(text):
        # The last paragraph was cut: drop the separator left before it, but
        # keep the text's own trailing whitespace.
        result = result.rstrip() + text[len(text.rstrip()) :]
    return result
