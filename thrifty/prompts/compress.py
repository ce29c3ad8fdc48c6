"""Compression (lossy, opt-in): keep the sentences most relevant to the final question.

The compress transform collects the compressible text of a request. By
default that is user and tool text other than the final user message, in
texts of at least ``min_tokens`` tokens. It cuts out what must stay
unchanged (code, protected spans, lines that are only a markup tag or a
heading) and hands the remaining passages to a ``Compressor`` with a token
target.

``ExtractiveCompressor`` splits passages into sentences and scores each with
BM25 against the final user message, then keeps the best-scoring sentences
that fit the target, in their original order. A model-based compressor
(``thrifty.prompts.llmlingua``) plugs in through the same interface.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from thrifty.prompts.counting import TokenCounter
from thrifty.prompts.dialect import TextSlot
from thrifty.prompts.text import merge_spans, preformatted_spans, segments
from thrifty.prompts.transform import Context


class Compressor(Protocol):
    """Shortens passages toward a token target, given the question they must answer."""

    name: str

    def compress(
        self, passages: Sequence[str], question: str, target_tokens: int, counter: TokenCounter
    ) -> list[str]:
        """Return one shortened text per passage, together about ``target_tokens`` tokens."""
        ...


# BM25 parameters: the values most retrieval systems ship as defaults.
BM25_K1 = 1.2
BM25_B = 0.75

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    {
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    }
)
# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    {
        "e.g",
        "i.e",
        "etc",
        "vs",
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "fig",
        "al",
        "inc",
        "ltd",
        "co",
        "jr",
        "sr",
        "approx",
        "dept",
        "est",
    }
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])[\"'”’)\]]*[ \t]+|\n+[ \t]*")
# A line that is only a markup tag (<document index="1">) or a Markdown heading.
_STRUCTURE_LINE = re.compile(
    r"^[ \t]*(?:</?[A-Za-z_][\w.:-]*(?:\s[^<>\n]*)?/?>|#{1,6} [^\n]*)[ \t]*$", re.M
)


_EMPTY_ELEMENT = re.compile(r"[ \t]*<([A-Za-z_][\w.:-]*)\b[^<>]*>\s*</\1>[ \t]*\n?")


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a passage: ``text[start:end]``, with its trailing separator to ``next``."""

    passage: int
    start: int
    end: int
    next: int


def split_sentences(text: str) -> list[tuple[int, int, int]]:
    """Return (start, end, next) offsets of each sentence; a line break always ends one."""
    spans: list[tuple[int, int, int]] = []
    start = len(text) - len(text.lstrip())
    for match in _SENTENCE_BREAK.finditer(text):
        if match.start() <= start or _ends_with_abbreviation(text, start, match.start()):
            continue
        spans.append((start, match.start(), match.end()))
        start = match.end()
    end = len(text.rstrip())
    if start < end:
        spans.append((start, end, len(text)))
    return spans


def _ends_with_abbreviation(text: str, start: int, end: int) -> bool:
    if text[end - 1] != ".":
        return False
    words = text[start : end - 1].rsplit(None, 1)
    return bool(words) and words[-1].lower().lstrip("(") in _ABBREVIATIONS


def terms(text: str) -> list[str]:
    """Return the content words of a text, lowercased, plurals folded."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS or len(word) < 2:
            continue
        plural = len(word) > 3 and word.endswith("s") and not word.endswith("ss")
        words.append(word[:-1] if plural else word)
    return words


def bm25_scores(query: list[str], documents: list[list[str]]) -> list[float]:
    """Score each document (a list of terms) against the query terms with Okapi BM25."""
    if not documents:
        return []
    frequency: Counter[str] = Counter()
    for document in documents:
        frequency.update(set(document))
    count = len(documents)
    average = sum(len(d) for d in documents) / count or 1.0
    weights = {
        term: math.log(1 + (count - frequency[term] + 0.5) / (frequency[term] + 0.5))
        for term in set(query)
    }
    scores: list[float] = []
    for document in documents:
        tf = Counter(document)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(document) / average)
        scores.append(
            sum(
                weight * tf[term] * (BM25_K1 + 1) / (tf[term] + norm)
                for term, weight in weights.items()
                if tf[term]
            )
        )
    return scores


class ExtractiveCompressor:
    """Keep whole sentences: the best BM25 matches for the question, then the earliest ones.

    A passage none of whose sentences fit comes back empty. The best sentence
    overall is always kept, so the target can be exceeded when it is smaller
    than that one sentence.
    """

    name = "extractive"

    def compress(
        self, passages: Sequence[str], question: str, target_tokens: int, counter: TokenCounter
    ) -> list[str]:
        sentences = [
            Sentence(number, start, end, following)
            for number, passage in enumerate(passages)
            for start, end, following in split_sentences(passage)
        ]
        texts = [passages[s.passage][s.start : s.end] for s in sentences]
        costs = [counter.text(passages[s.passage][s.start : s.next]) for s in sentences]
        scores = bm25_scores(terms(question), [terms(text) for text in texts])
        kept = _select(sentences, scores, costs, target_tokens)
        return [
            _assemble(passage, [s for s in kept if s.passage == n])
            for n, passage in enumerate(passages)
        ]


def _select(
    sentences: list[Sentence], scores: list[float], costs: list[int], target: int
) -> list[Sentence]:
    """Pick sentences by score (ties: earlier first) while they fit the target."""
    order = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    if not order:
        return []
    chosen = {order[0]}
    used = costs[order[0]]
    for index in order:
        if index not in chosen and used + costs[index] <= target:
            chosen.add(index)
            used += costs[index]
    return [sentences[i] for i in sorted(chosen)]


def _assemble(passage: str, kept: list[Sentence]) -> str:
    if not kept:
        return "" if passage.strip() else passage
    body = "".join(passage[s.start : s.next] for s in kept).rstrip()
    leading = passage[: len(passage) - len(passage.lstrip())]
    trailing = passage[len(passage.rstrip()) :]
    return leading + body + trailing


class Compress:
    """The compress transform; its compressor is extractive unless the settings name another."""

    name = "compress"
    lossless = False

    def __init__(self, compressor: Compressor | None = None) -> None:
        self.compressor = compressor or ExtractiveCompressor()

    def apply(self, body: dict[str, Any], context: Context) -> dict[str, int]:
        slots = context.dialect.slots(body)
        question = _question(slots, context)
        chosen = [slot for slot in slots if _compressible(slot, context)]
        pieces = [_split_slot(slot, context) for slot in chosen]
        passages = [text for slot_pieces in pieces for text, fixed in slot_pieces if not fixed]
        total = sum(context.counter.text(text) for text in passages)
        changes = {"texts_compressed": 0, "compressible_tokens": total, "kept_tokens": total}
        target = _target(total, context)
        if not passages or target >= total:
            return changes

        shortened = iter(self.compressor.compress(passages, question, target, context.counter))
        for slot, slot_pieces in zip(chosen, pieces, strict=True):
            text = "".join(piece if fixed else next(shortened) for piece, fixed in slot_pieces)
            text = _without_empty_elements(text, slot.text)
            if text != slot.text and text.strip():
                slot.set(text)
                changes["texts_compressed"] += 1
        kept = [
            text
            for slot_pieces in (_split_slot(s, context) for s in chosen)
            for text, fixed in slot_pieces
            if not fixed
        ]
        changes["kept_tokens"] = sum(context.counter.text(text) for text in kept)
        return changes


def _without_empty_elements(text: str, original: str) -> str:
    """Remove markup elements that compression emptied (``<document>`` with nothing left).

    Only elements that were not already empty in the original text go.
    """
    if "<" not in text:
        return text
    already_empty = set(_EMPTY_ELEMENT.findall(original))
    return _EMPTY_ELEMENT.sub(
        lambda match: match.group(0) if match.group(0) in already_empty else "", text
    )


def _question(slots: list[TextSlot], context: Context) -> str:
    final = [slot.text for slot in slots if slot.final_user and slot.kind == "text"]
    if context.protection.final_user == "last_part":
        final = [slot.text for slot in slots if slot.last_part]
    return "\n".join(final)


def _compressible(slot: TextSlot, context: Context) -> bool:
    settings = context.settings.compress
    if slot.role not in settings.roles or slot.kind == "tool_arguments":
        return False
    if context.protection.covers_slot(slot):
        return False
    stripped = slot.text.lstrip()
    if slot.kind == "tool_result" and stripped[:1] in ("{", "["):
        return False  # JSON: dropping sentences would break it
    return context.counter.text(slot.text) >= settings.min_tokens


def _split_slot(slot: TextSlot, context: Context) -> list[tuple[str, bool]]:
    """Split a slot's text into (piece, is_fixed) pieces; fixed pieces are never compressed."""
    text = slot.text
    fixed = preformatted_spans(text) + context.protection.spans(text)
    fixed += [match.span() for match in _STRUCTURE_LINE.finditer(text)]
    return list(segments(text, merge_spans(fixed)))


def _target(total: int, context: Context) -> int:
    settings = context.settings.compress
    targets = []
    if settings.ratio is not None:
        targets.append(int(total * settings.ratio))
    if settings.max_tokens is not None:
        targets.append(settings.max_tokens)
    return min(targets) if targets else total
