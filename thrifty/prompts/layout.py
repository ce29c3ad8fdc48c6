"""Cache-friendly layout: move what varies per request behind what stays the same.

Provider prompt caches reuse the longest prefix a request shares with an
earlier one (OpenAI from 1,024 tokens on; Anthropic up to a cache_control
breakpoint). A date or a user name near the top of a system prompt makes
every request's prefix differ from there on. This transform moves the system
prompt lines that vary (dates, times, timestamps, UUIDs, retrieved documents
and lines the config's patterns match) to the end of the system prompt, or
just before the final user message, keeping their order. It removes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from thrifty.prompts.dialect import TextSlot
from thrifty.prompts.retrieval import retrieved_spans
from thrifty.prompts.settings import LayoutSettings
from thrifty.prompts.text import merge_spans
from thrifty.prompts.transform import Context

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
BUILTIN_VARIABLE = re.compile(
    "|".join(
        (
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?",  # ISO 8601
            r"\b\d{1,2}:\d{2}:\d{2}\b",  # a time with seconds
            r"\b\d{1,2}:\d{2}\s?[AaPp]\.?[Mm]\b",  # a 12-hour clock time
            rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",  # May 5, 2024
            rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}\b",  # 5 May 2024
            r"\b\d{1,2}/\d{1,2}/\d{2,4}\b",  # 05/31/2024
            r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b",  # a UUID
            r"\b1\d{9}(?:\d{3})?\b",  # Unix time in seconds or milliseconds
        )
    )
)


class Layout:
    name = "layout"
    lossless = True

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        slots = _system_prompt_slots(body, context)
        moved: list[str] = []
        for position, slot in enumerate(slots):
            if context.protection.covers_slot(slot):
                continue
            moved += _take_variable_units(slot, context, last=position == len(slots) - 1)
        if not moved:
            return {"blocks_moved": 0, "moved_tokens": 0}

        text = "\n".join(moved)
        if not _place(body, context, slots, text):
            raise AssertionError("a system prompt slot disappeared while it was being laid out")
        return {"blocks_moved": len(moved), "moved_tokens": context.counter.text(text)}


def _system_prompt_slots(body: dict[str, Any], context: Context) -> list[TextSlot]:
    """Return the slots of the system prompt: top-level, or the leading system messages."""
    dialect = context.dialect
    slots = dialect.system_slots(body)
    items = dialect.items(body) or []
    for entry in dialect.entries(body):
        if entry.role != "system":
            break
        slots += dialect.item_slots(entry.index, items[entry.index])
    return slots


def _take_variable_units(slot: TextSlot, context: Context, *, last: bool) -> list[str]:
    """Remove the slot's variable lines and blocks and return them, in order.

    In the last slot of the system prompt, units that already come after all
    of its static text stay where they are.
    """
    text = slot.text
    units = variable_units(text, context.settings.layout, context.protection.spans(text))
    if not units:
        return []
    static_end = _static_end(text, units)
    if last and all(start >= static_end for start, _ in units):
        return []
    if static_end == 0:
        return []  # all of it varies: there is no static prefix to gain
    static = _without(text, units, context.protection.spans(text))
    slot.set(static)
    return [text[start:end].strip("\n") for start, end in units]


def variable_units(
    text: str, settings: LayoutSettings, protected: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Return the spans of the lines and retrieval blocks that vary per request.

    A line holding protected text is never moved.
    """
    spans: list[tuple[int, int]] = []
    if settings.retrieved:
        spans += retrieved_spans(text)
    detectors = list(settings.patterns)
    if settings.builtin:
        detectors.append(BUILTIN_VARIABLE)
    if detectors:
        spans += [line for line in _line_spans(text) if _matches(text, line, detectors)]
    units = [_whole_lines(text, span) for span in merge_spans(spans)]
    return [
        unit
        for unit in merge_spans(units)
        if not any(start < unit[1] and unit[0] < end for start, end in protected)
    ]


def _line_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = 0
    for line in text.splitlines(keepends=True):
        spans.append((position, position + len(line)))
        position += len(line)
    return spans


def _matches(text: str, span: tuple[int, int], detectors: list[re.Pattern[str]]) -> bool:
    line = text[span[0] : span[1]]
    return bool(line.strip()) and any(detector.search(line) for detector in detectors)


def _whole_lines(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """Widen a span to the whole lines it touches, the final newline included."""
    start = text.rfind("\n", 0, span[0]) + 1
    if span[1] > span[0] and text[span[1] - 1] == "\n":
        return start, span[1]
    end = text.find("\n", span[1])
    return start, len(text) if end == -1 else end + 1


def _static_end(text: str, units: list[tuple[int, int]]) -> int:
    """Return the offset just past the last non-blank character outside the units."""
    end = 0
    position = 0
    for start, unit_end in [*units, (len(text), len(text))]:
        piece = text[position:start]
        if piece.strip():
            end = position + len(piece.rstrip())
        position = unit_end
    return end


def _without(text: str, units: list[tuple[int, int]], protected: list[tuple[int, int]]) -> str:
    """Cut the units (whole lines) out of text, with the blank lines they leave behind.

    A newline is dropped only where a cut would leave a blank line at the
    start or end, or more than one blank line in a row, and never inside
    protected text.
    """
    result = ""
    position = 0
    for start, end in units:
        result += text[position:start]
        position = end
        while (
            position < len(text)
            and text[position] == "\n"
            and (not result.strip() or result.endswith("\n\n"))
            and not _inside(position, protected)
        ):
            position += 1
    result += text[position:]
    if units and units[-1][1] == len(text):
        # The text ended with a unit, so the newline before it now ends the text.
        before = units[-1][0]
        while result.endswith("\n") and before > 0 and not _inside(before - 1, protected):
            result = result[:-1]
            before -= 1
    return result


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def _place(body: dict[str, Any], context: Context, slots: list[TextSlot], text: str) -> bool:
    """Insert the moved text at the settings' target; return False if there is no place for it."""
    dialect = context.dialect
    if context.settings.layout.target == "before_last_user":
        final = dialect.final_user_index(body)
        if final is not None and dialect.insert_context(body, final, text):
            return True
    system = body.get("system")
    if dialect.api == "messages" and isinstance(system, list):
        # A new last block, so cache_control breakpoints on the static blocks
        # keep covering only static text.
        system.append({"type": "text", "text": text})
        return True
    if not slots:
        return False
    last = slots[-1]
    last.set(f"{last.text}\n\n{text}")
    return True
