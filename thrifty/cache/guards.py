"""Word-level checks that a semantic match must pass before it is served.

Sentence embeddings rate "convert ethanol to ethanoic acid" and its reverse,
or "Visual Studio 2008" and "Visual Studio 2010", as near-identical, yet the
right answers differ. So a match must also agree on its numbers, negations,
question words and proper nouns, and use the same content words (words
other than stopwords, with plural and tense endings removed) in the same
order. Each check only turns hits into misses: it costs hit rate, never
correctness. On Quora Question Pairs these checks lift precision at a given
similarity threshold by several points (docs/benchmarks.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CAPITALIZED = re.compile(r"\b[A-Z][A-Za-z0-9]+\b")
_SENTENCE_END = re.compile(r"[.!?]\s+")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS = _word_set(
    """
    a an the is are was were be been being am do does did doing i you he she it we they me my
    your our their its his her them us what which who whom whose how why when where there here
    this that these those of in on at to for from by with about as into through over after
    before between under and or but if then so than too very can could should would will shall
    may might must have has had having any some all each every most more much many such own
    same other another just also only not no nor
    """
)
NEGATIONS = _word_set(
    """
    not no never without nor none cannot cant dont doesnt didnt isnt arent wasnt werent wont
    shouldnt couldnt wouldnt nothing nobody
    """
)
QUESTION_WORDS = frozenset({"what", "why", "when", "where", "who", "whom", "whose", "which", "how"})


@dataclass(frozen=True, slots=True)
class Terms:
    """The words of a text that the checks compare."""

    content: tuple[str, ...]
    numbers: tuple[str, ...]
    negations: int
    question_words: tuple[str, ...]
    proper_nouns: frozenset[str]


def terms_of(text: str) -> Terms:
    """Extract the compared words: lowercased, apostrophes removed, content words stemmed."""
    raw_words = _WORD.findall(text.lower())
    words = [word.replace("'", "") for word in raw_words]
    negations = sum(
        1
        for raw, word in zip(raw_words, words, strict=True)
        if word in NEGATIONS or raw.endswith("n't")
    )
    return Terms(
        content=tuple(_stem(word) for word in words if word not in STOPWORDS),
        numbers=tuple(sorted(_NUMBER.findall(text))),
        negations=negations,
        question_words=tuple(sorted(word for word in words if word in QUESTION_WORDS)),
        proper_nouns=_proper_nouns(text),
    )


def mismatch(query: Terms, candidate: Terms) -> str | None:
    """Return why two texts may need different answers, or None when every check passes."""
    checks = (
        (query.numbers == candidate.numbers, "numbers differ"),
        (query.negations == candidate.negations, "negations differ"),
        (query.question_words == candidate.question_words, "question words differ"),
        (query.proper_nouns == candidate.proper_nouns, "proper nouns differ"),
        (set(query.content) == set(candidate.content), "content words differ"),
        (_same_order(query.content, candidate.content), "content words in another order"),
    )
    for passed, reason in checks:
        if not passed:
            return reason
    return None


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _proper_nouns(text: str) -> frozenset[str]:
    """Return capitalized words that do not start a sentence, lowercased."""
    nouns: set[str] = set()
    for sentence in _SENTENCE_END.split(text):
        matches = list(_CAPITALIZED.finditer(sentence))
        for match in matches:
            if match.start() == len(sentence) - len(sentence.lstrip()):
                continue
            nouns.add(match.group().lower())
    return frozenset(nouns)


def _same_order(first: tuple[str, ...], second: tuple[str, ...]) -> bool:
    common = set(first) & set(second)
    return _first_occurrences(first, common) == _first_occurrences(second, common)


def _first_occurrences(words: tuple[str, ...], keep: set[str]) -> list[str]:
    seen: dict[str, None] = {}
    for word in words:
        if word in keep:
            seen.setdefault(word, None)
    return list(seen)
