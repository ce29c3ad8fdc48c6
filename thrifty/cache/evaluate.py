"""Measuring the semantic cache's match quality on labelled query pairs.

Three input formats are read:

- CSV with ``question1``, ``question2``, ``is_duplicate`` (Quora Question
  Pairs, as in MeanCache): precision, recall and F1 per threshold;
- JSON ``[{"origin", "similar"}, ...]`` (GPTCache's paraphrase pairs): every
  pair is a duplicate; non-duplicates are made by pairing each origin with
  the next pair's paraphrase;
- JSON ``[{"Main Query", "Main Query Response", "Follow-Up Query"}, ...]``
  (MeanCache's contextual queries): how often a follow-up is answered from
  another conversation's entry, which must be never.

A pair counts as a match when the word-level guards pass and the cosine
similarity reaches the threshold, the rule the gateway applies. Texts are
normalized as the gateway normalizes a query before embedding it. Pairs
that fail a guard are never matches, so only the others are embedded: the
result is exact for the whole file at a fraction of the embedding work.

``split_of`` divides labelled pairs into a training and a held-out half, so
a threshold chosen on one half can be measured on the other.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from thrifty.cache.config import DEFAULT_THRESHOLD
from thrifty.cache.guards import mismatch, terms_of
from thrifty.cache.keys import RequestKey, normalize_text, request_key
from thrifty.errors import CacheError

if TYPE_CHECKING:
    from thrifty.cache.embedders import Embedder

DEFAULT_THRESHOLDS = tuple(round(0.80 + step * 0.005, 3) for step in range(40))

Split = Literal["train", "held-out"]
# The z value of a two-sided 95% interval, for the Wilson score interval.
_Z95 = 1.959964


@dataclass(frozen=True, slots=True)
class Pair:
    first: str
    second: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Conversation:
    query: str
    answer: str
    follow_up: str


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    """Match quality at one threshold."""

    threshold: float
    matched: int
    true_matches: int
    precision: float | None
    recall: float
    f1: float | None
    # The 95% Wilson score interval of the precision, None without matches.
    precision_interval: tuple[float, float] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "matched": self.matched,
            "true_matches": self.true_matches,
            "precision": self.precision,
            "precision_interval": self.precision_interval,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True, slots=True)
class PairEvaluation:
    pairs: int
    duplicates: int
    passed_guards: int
    rows: list[ThresholdRow]
    default_threshold: float

    def row_at(self, threshold: float) -> ThresholdRow:
        return next(row for row in self.rows if abs(row.threshold - threshold) < 1e-9)


@dataclass(frozen=True, slots=True)
class FollowUpEvaluation:
    """Lookups of follow-up queries, in their own, other and no conversations."""

    conversations: int
    lookups: int
    own_hits: int
    cross_conversation_hits: int
    wrong_question_hits: int
    threshold: float


def read_pairs(path: Path) -> list[Pair] | list[Conversation]:
    """Read a pairs file in any of the three formats."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CacheError(f"cannot read pairs file {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".csv":
        return _csv_pairs(path, text)
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CacheError(f"pairs file {path} is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise CacheError(f"pairs file {path} must hold a non-empty list of objects")
    if "Follow-Up Query" in items[0]:
        return [_conversation(path, index, item) for index, item in enumerate(items)]
    if "origin" in items[0]:
        return _paraphrase_pairs(path, items)
    raise CacheError(
        f"pairs file {path} has objects with keys {sorted(items[0])}; expected origin and "
        "similar, or Main Query, Main Query Response and Follow-Up Query"
    )


def split_of(pair: Pair) -> Split:
    """Assign a pair to the training or the held-out split by a hash of its two texts.

    Hashing (SHA-256) makes the split the same on every machine and version,
    and independent of the rows' order. About half the pairs land in each.
    """
    digest = hashlib.sha256(f"{pair.first}\x00{pair.second}".encode()).digest()
    return "held-out" if digest[0] % 2 else "train"


def select_split(pairs: Sequence[Pair], split: Split | None) -> list[Pair]:
    """Return the pairs of one split, or all of them when ``split`` is None."""
    return [pair for pair in pairs if split is None or split_of(pair) == split]


def _csv_pairs(path: Path, text: str) -> list[Pair]:
    reader = csv.DictReader(text.splitlines())
    required = {"question1", "question2", "is_duplicate"}
    if reader.fieldnames is None or not required <= set(reader.fieldnames):
        raise CacheError(
            f"pairs file {path} needs the columns question1, question2 and is_duplicate"
        )
    pairs = []
    for line, row in enumerate(reader, start=2):
        label = (row["is_duplicate"] or "").strip()
        if label not in ("0", "1"):
            raise CacheError(f"{path}:{line}: is_duplicate is {label!r}; use 0 or 1")
        pairs.append(Pair(row["question1"] or "", row["question2"] or "", label == "1"))
    return pairs


def _paraphrase_pairs(path: Path, items: list[Any]) -> list[Pair]:
    for index, item in enumerate(items):
        if not isinstance(item.get("origin"), str) or not isinstance(item.get("similar"), str):
            raise CacheError(f"pairs file {path}: item {index} needs string origin and similar")
    positives = [Pair(item["origin"], item["similar"], True) for item in items]
    shifted = [
        Pair(item["origin"], items[(index + 1) % len(items)]["similar"], False)
        for index, item in enumerate(items)
    ]
    return positives + shifted


def _conversation(path: Path, index: int, item: dict[str, Any]) -> Conversation:
    fields = ("Main Query", "Main Query Response", "Follow-Up Query")
    if not all(isinstance(item.get(name), str) for name in fields):
        raise CacheError(f"pairs file {path}: item {index} needs the strings {', '.join(fields)}")
    return Conversation(item["Main Query"], item["Main Query Response"], item["Follow-Up Query"])


def evaluate_pairs(
    pairs: Sequence[Pair],
    embedder: Embedder,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    default_threshold: float = DEFAULT_THRESHOLD,
) -> PairEvaluation:
    """Score every pair and count matches at each threshold (and the default one)."""
    import numpy as np

    passing = [
        pair for pair in pairs if mismatch(terms_of(pair.first), terms_of(pair.second)) is None
    ]
    similarities = np.zeros(0, dtype=np.float32)
    if passing:
        first = embedder.embed_now([normalize_text(pair.first) for pair in passing])
        second = embedder.embed_now([normalize_text(pair.second) for pair in passing])
        similarities = np.sum(first * second, axis=1)
    labels = np.array([pair.duplicate for pair in passing], dtype=bool)
    duplicates = sum(1 for pair in pairs if pair.duplicate)
    rows = []
    for threshold in sorted({*thresholds, default_threshold}):
        matched = similarities >= threshold
        true_matches = int(np.sum(matched & labels))
        rows.append(_row(threshold, int(np.sum(matched)), true_matches, duplicates))
    return PairEvaluation(len(pairs), duplicates, len(passing), rows, default_threshold)


def _row(threshold: float, matched: int, true_matches: int, duplicates: int) -> ThresholdRow:
    precision = true_matches / matched if matched else None
    recall = true_matches / duplicates if duplicates else 0.0
    f1 = None
    if precision is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    interval = wilson_interval(true_matches, matched) if matched else None
    return ThresholdRow(threshold, matched, true_matches, precision, recall, f1, interval)


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Return the 95% Wilson score interval of a proportion (trials must be above 0)."""
    share = successes / trials
    denominator = 1 + _Z95**2 / trials
    centre = (share + _Z95**2 / (2 * trials)) / denominator
    margin = _Z95 * math.sqrt(share * (1 - share) / trials + _Z95**2 / (4 * trials**2))
    return (max(0.0, centre - margin / denominator), min(1.0, centre + margin / denominator))


def evaluate_follow_ups(
    conversations: Sequence[Conversation],
    embedder: Embedder,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> FollowUpEvaluation:
    """Store every conversation's follow-up and main query, then look each follow-up up.

    Each follow-up is looked up in its own conversation (it should hit its
    own entry), in every other conversation, and with no conversation
    before it. A hit on an entry of a conversation other than the one the
    lookup is made in is a cross-conversation hit; a hit on another
    question's entry in the same conversation is a wrong-question hit.
    """
    from thrifty.cache.index import VectorIndex

    index = VectorIndex(background=False)
    follow_keys = [
        _key([_user(c.query), _assistant(c.answer), _user(c.follow_up)]) for c in conversations
    ]
    main_keys = [_key([_user(c.query)]) for c in conversations]
    owners: dict[str, tuple[int, str]] = {}
    texts = [normalize_text(c.follow_up) for c in conversations] + [
        normalize_text(c.query) for c in conversations
    ]
    vectors = embedder.embed_now(texts)
    for number, key in enumerate(follow_keys + main_keys):
        assert key.query_text is not None
        index.add(key.partition, key.entry_id, vectors[number], key.query_text)
        kind = "follow_up" if number < len(conversations) else "main"
        owners[key.entry_id] = (number % len(conversations), kind)

    own = cross = wrong = lookups = 0
    for asked, conversation in enumerate(conversations):
        vector = vectors[asked]
        for context in [*range(len(conversations)), None]:
            lookups += 1
            prior = (
                []
                if context is None
                else [
                    _user(conversations[context].query),
                    _assistant(conversations[context].answer),
                ]
            )
            key = _key([*prior, _user(conversation.follow_up)])
            entry_id = _first_match(index, key, vector, threshold)
            if entry_id is None:
                continue
            owner, kind = owners[entry_id]
            if context == asked and owner == asked and kind == "follow_up":
                own += 1
            elif context is None or owner != context:
                cross += 1
            else:
                wrong += 1
    return FollowUpEvaluation(len(conversations), lookups, own, cross, wrong, threshold)


def _first_match(index: Any, key: RequestKey, vector: Any, threshold: float) -> str | None:
    assert key.query_text is not None
    terms = terms_of(key.query_text)
    for match in index.search(key.partition, vector, threshold):
        if mismatch(terms, terms_of(match.text)) is None:
            return str(match.entry_id)
    return None


def _key(messages: list[dict[str, str]]) -> RequestKey:
    key = request_key(
        namespace="eval",
        provider="openai",
        endpoint="chat.completions",
        model="gpt-4o-mini",
        body={"model": "gpt-4o-mini", "messages": messages, "temperature": 0},
    )
    assert isinstance(key, RequestKey)
    return key


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}
