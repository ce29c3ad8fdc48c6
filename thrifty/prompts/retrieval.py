"""Finding retrieved context in prompt text: documents and passages in XML-style tags.

RAG applications commonly wrap what they retrieved in tags such as
``<document>``, ``<context>`` or ``<search_results>``; Anthropic's
prompting guide recommends ``<document>`` tags for long documents. Text
inside such tags counts as retrieved context in the token breakdown, and the
cache-friendly layout treats it as content that varies per request.
"""

from __future__ import annotations

import re

RETRIEVAL_TAGS = (
    "documents",
    "document",
    "docs",
    "doc",
    "context",
    "contexts",
    "passages",
    "passage",
    "sources",
    "source",
    "search_results",
    "search_result",
    "retrieved",
    "retrieved_context",
    "knowledge",
)

_TAGGED = re.compile(
    r"<(" + "|".join(RETRIEVAL_TAGS) + r")\b[^<>]*>.*?</\1\s*>",
    re.DOTALL | re.IGNORECASE,
)


_TAG_NAMES = "|".join(RETRIEVAL_TAGS)
# An element with no retrieval element inside it: one document, one passage.
_INNERMOST = re.compile(
    rf"<({_TAG_NAMES})\b[^<>]*>((?:(?!<(?:{_TAG_NAMES})\b).)*?)</\1\s*>",
    re.DOTALL | re.IGNORECASE,
)


def retrieved_elements(text: str) -> list[tuple[int, int, str]]:
    """Return (start, end, content) of each innermost retrieval element, content stripped."""
    if "<" not in text:
        return []
    return [(m.start(), m.end(), m.group(2).strip()) for m in _INNERMOST.finditer(text)]


def retrieved_spans(text: str) -> list[tuple[int, int]]:
    """Return the (start, end) offsets of each tagged retrieval region, tags included."""
    if "<" not in text:
        return []
    return [match.span() for match in _TAGGED.finditer(text)]
