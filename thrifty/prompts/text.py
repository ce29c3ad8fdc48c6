"""Text helpers shared by the transforms: preformatted regions, whitespace, JSON.

Offsets are (start, end) pairs into a string, end exclusive. A "fixed" span
is text a transform copies unchanged: code, preformatted text, protected text.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator

import orjson

# A fenced code block (``` or ~~~, up to three spaces of indentation) up to
# its closing fence, or to the end of the text when it is never closed.
_FENCE = re.compile(
    r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)",
    re.MULTILINE | re.DOTALL,
)
_PRE_TAG = re.compile(r"<(pre|code|textarea)\b[^<>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_INLINE_CODE = re.compile(r"`[^`\n]+`")

# Horizontal whitespace: space, tab and the Unicode space separators.
_SPACE_CHARS = " \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_SPACE_RUN = re.compile(f"[{_SPACE_CHARS}]{{2,}}")
_TRAILING_SPACE = re.compile(f"[{_SPACE_CHARS}]+$")
_BLANK_LINES = re.compile(r"\n{3,}")
_INDENTED_CODE = re.compile(r"^(?: {4}|\t)")
_JSON_STRING = re.compile(r'("(?:[^"\\]|\\.)*")', re.DOTALL)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
# Whitespace that collapse_whitespace would change: a run of spaces, spaces
# at a line end, a blank line too many, a carriage return, indentation, or
# whitespace at either end. Text without any is returned as it is, at once.
_COLLAPSIBLE = re.compile(
    f"[{_SPACE_CHARS}]{{2,}}|[{_SPACE_CHARS}]\n|\n{{3,}}|\r|\n[{_SPACE_CHARS}]|^\\s|\\s$"
)


def preformatted_spans(text: str) -> list[tuple[int, int]]:
    """Return the spans of fenced code, ``<pre>``/``<code>`` elements and inline code."""
    if "`" not in text and "~~~" not in text and "<" not in text:
        return []
    spans = [m.span() for m in _FENCE.finditer(text)]
    if "<" in text:
        spans += [m.span() for m in _PRE_TAG.finditer(text)]
    if "`" in text:
        spans += [m.span() for m in _INLINE_CODE.finditer(text)]
    return merge_spans(spans)


def merge_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort spans and merge the ones that overlap or touch."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments(text: str, fixed: list[tuple[int, int]]) -> Iterator[tuple[str, bool]]:
    """Split text into (piece, is_fixed) pieces in order; ``fixed`` must be merged spans."""
    position = 0
    for start, end in fixed:
        if start > position:
            yield text[position:start], False
        yield text[start:end], True
        position = end
    if position < len(text):
        yield text[position:], False


def collapse_whitespace(text: str, fixed: list[tuple[int, int]]) -> str:
    """Remove whitespace that carries no meaning, outside the fixed spans.

    Outside them, runs of spaces inside a line become one space, trailing
    spaces go, more than one blank line in a row becomes one, and the text
    loses leading and trailing whitespace. Common indentation is removed too,
    ignoring an unindented first line, but only when the text has no fixed
    span. A line indented by four spaces or a tab is Markdown code and is
    kept as it is, and so is the indentation of every other line.
    """
    if not _COLLAPSIBLE.search(text):
        return text
    if not fixed:
        text = _dedent(text)
    pieces = list(segments(text, fixed))
    out: list[str] = []
    at_line_start = True
    for piece, is_fixed in pieces:
        out.append(piece if is_fixed else _collapse_free(piece, at_line_start))
        at_line_start = piece.endswith("\n")
    result = "".join(out)
    if not pieces:
        return result
    if not pieces[0][1]:
        result = result.lstrip()
    if not pieces[-1][1]:
        result = result.rstrip()
    return result


def _dedent(text: str) -> str:
    """Remove the indentation all lines share, the first line aside when it has none.

    A triple-quoted Python string starts right after its quotes and indents
    the lines after it, as docstrings do; their shared margin is removed.
    """
    first, newline, rest = text.partition("\n")
    if not newline:
        return text.strip(" \t")
    if first.strip() and not first[:1].isspace():
        return first + newline + textwrap.dedent(rest)
    return textwrap.dedent(text)


def _collapse_free(piece: str, at_line_start: bool) -> str:
    lines = piece.replace("\r\n", "\n").split("\n")
    last = len(lines) - 1
    for index, line in enumerate(lines):
        starts_line = index > 0 or at_line_start
        if starts_line and _INDENTED_CODE.match(line) and line.strip():
            continue
        indent = line[: len(line) - len(line.lstrip())] if starts_line else ""
        body = _SPACE_RUN.sub(" ", line[len(indent) :])
        if index < last:
            body = _TRAILING_SPACE.sub("", body)
            if not body:
                indent = ""
        lines[index] = indent + body
    return _BLANK_LINES.sub("\n\n", "\n".join(lines))


def minify_json(text: str) -> str | None:
    """Return a JSON object or array text without insignificant whitespace.

    Strings and number literals are copied exactly. Returns None when the
    text is not a JSON object or array, or is already minified.
    """
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return None
    # Split on string literals: odd pieces are strings, kept as they are;
    # whitespace in the others is insignificant.
    pieces = _JSON_STRING.split(stripped)
    minified = "".join(
        piece if index % 2 else "".join(piece.split()) for index, piece in enumerate(pieces)
    )
    return None if minified == text else minified


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Return the spans of paragraphs: text between blank lines, surrounding space excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        _add_stripped(spans, text, start, match.start())
        start = match.end()
    _add_stripped(spans, text, start, len(text))
    return spans


def _add_stripped(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        begin = start + len(piece) - len(piece.lstrip())
        spans.append((begin, begin + len(stripped)))
