"""Reading batch input files one request at a time, and recognizing their format.

Three formats are accepted:

- ``openai``: OpenAI batch lines, ``{"custom_id", "method", "url", "body"}``;
- ``anthropic``: Anthropic batch requests, ``{"custom_id", "params"}``;
- ``chat``: plain chat completion request bodies (``{"model", "messages", ...}``),
  with an optional ``custom_id``.

A ``.json`` file is one JSON document, either a list of requests or
Anthropic's ``{"requests": [...]}`` body, and is read whole. Any other file
is JSON Lines and is streamed, so its size does not bound memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from thrifty.errors import BatchError

InputFormat = Literal["openai", "anthropic", "chat"]
INPUT_FORMATS: tuple[InputFormat, ...] = ("openai", "anthropic", "chat")


@dataclass(frozen=True, slots=True)
class InputLine:
    """One request of an input file, parsed.

    ``number`` is the 1-based line number (item number in a ``.json``
    document). ``value`` is the parsed JSON, or None when ``error`` gives the reason
    it could not be parsed. ``raw`` is the line's bytes without the line
    break (None for an item of a document).
    """

    number: int
    raw: bytes | None
    value: Any
    error: str | None = None


def read_input(path: Path) -> Iterator[InputLine]:
    """Yield every non-blank line (or document item) of an input file, in order."""
    if not path.is_file():
        raise BatchError(f"batch input file {path} does not exist; pass the path of a .jsonl file")
    if path.suffix.lower() == ".json":
        yield from _document_items(path)
    else:
        yield from _jsonl_lines(path)


def line_format(value: Mapping[str, Any]) -> InputFormat | None:
    """Return the format one parsed request is written in, or None if it fits none."""
    if "params" in value:
        return "anthropic"
    if "body" in value or "url" in value or "method" in value:
        return "openai"
    if "messages" in value or "model" in value:
        return "chat"
    return None


def _jsonl_lines(path: Path) -> Iterator[InputLine]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                yield InputLine(number, raw, orjson.loads(raw))
            except orjson.JSONDecodeError as exc:
                yield InputLine(
                    number, raw, None, f"invalid JSON ({exc.msg} at column {exc.pos + 1})"
                )


def _document_items(path: Path) -> Iterator[InputLine]:
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BatchError(
            f"{path} is not valid JSON ({exc.msg} at position {exc.pos}); a .json input is "
            'one document: a list of requests or {"requests": [...]}; use .jsonl for lines'
        ) from exc
    if isinstance(document, Mapping) and isinstance(document.get("requests"), list):
        document = document["requests"]
    if not isinstance(document, list):
        raise BatchError(
            f"{path} is a JSON {type(document).__name__}; a .json input is a list of "
            'requests or {"requests": [...]}'
        )
    for number, item in enumerate(document, start=1):
        yield InputLine(number, None, item)
