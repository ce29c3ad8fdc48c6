"""System prompt reuse: identical and nearly identical system prompts across features and keys.

The same system prompt pasted into several features (or one with a few
words changed) is paid for in full by each. Grouping them shows which could
share one definition, and one provider cache prefix. Two prompts are nearly
identical when the Jaccard similarity of their word 5-gram sets is at least
the threshold. A prompt joins the first group whose first prompt is that
similar, so grouping is greedy and depends on order (most used first).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal

DEFAULT_SIMILARITY = 0.9
SHINGLE_WORDS = 5
# Distinct prompts beyond this many are grouped by exact text only, which
# keeps the pairwise comparison bounded on very large files.
MAX_COMPARED_PROMPTS = 2000


@dataclass(slots=True)
class _Variant:
    text: str
    tokens: int
    requests: int = 0
    features: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    cost_usd: Decimal = Decimal(0)
    unpriced: int = 0


@dataclass(frozen=True, slots=True)
class SystemPromptGroup:
    """System prompts that are the same or nearly so, and what they cost together.

    ``tokens`` is the length of the first (most used) variant.
    ``total_tokens`` is what all the group's requests spent on their system
    prompt, and ``cost_usd`` that spend at each request's input price
    (priced requests only).
    """

    fingerprint: str
    preview: str
    tokens: int
    variants: int
    requests: int
    total_tokens: int
    features: tuple[str, ...]
    keys: tuple[str, ...]
    cost_usd: Decimal
    unpriced_requests: int

    def as_dict(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "preview": self.preview,
            "tokens": self.tokens,
            "variants": self.variants,
            "requests": self.requests,
            "total_tokens": self.total_tokens,
            "features": list(self.features),
            "keys": list(self.keys),
            "cost_usd": str(self.cost_usd),
            "unpriced_requests": self.unpriced_requests,
        }


class SystemPromptIndex:
    """Collects the system prompt of each request, then groups them."""

    def __init__(self, similarity: float = DEFAULT_SIMILARITY) -> None:
        self.similarity = similarity
        self._variants: dict[str, _Variant] = {}

    def add(
        self,
        text: str,
        tokens: int,
        *,
        feature: str | None,
        key: str | None,
        cost_usd: Decimal | None,
    ) -> None:
        if not text.strip():
            return
        variant = self._variants.setdefault(text, _Variant(text, tokens))
        variant.requests += 1
        if feature:
            variant.features.add(feature)
        if key:
            variant.keys.add(key)
        if cost_usd is None:
            variant.unpriced += 1
        else:
            variant.cost_usd += cost_usd

    def groups(self, *, shared_only: bool = True) -> list[SystemPromptGroup]:
        """Return groups, most expensive in tokens first.

        With ``shared_only``, only groups used by more than one feature or
        key, or with more than one variant, are returned.
        """
        variants = sorted(self._variants.values(), key=lambda v: (-v.requests, v.text))
        clusters = _cluster(variants, self.similarity)
        groups = [_group(cluster) for cluster in clusters]
        if shared_only:
            groups = [g for g in groups if len(g.features) > 1 or len(g.keys) > 1 or g.variants > 1]
        return sorted(groups, key=lambda g: (-g.total_tokens, g.fingerprint))


def _cluster(variants: list[_Variant], similarity: float) -> list[list[_Variant]]:
    clusters: list[list[_Variant]] = []
    heads: list[frozenset[str]] = []
    for position, variant in enumerate(variants):
        if position >= MAX_COMPARED_PROMPTS:
            clusters.append([variant])
            continue
        shingles = _shingles(variant.text)
        for index, head in enumerate(heads):
            if jaccard(shingles, head) >= similarity:
                clusters[index].append(variant)
                break
        else:
            clusters.append([variant])
            heads.append(shingles)
    return clusters


def _group(cluster: list[_Variant]) -> SystemPromptGroup:
    first = cluster[0]
    features = sorted({f for v in cluster for f in v.features})
    keys = sorted({k for v in cluster for k in v.keys})
    preview = " ".join(first.text.split())
    return SystemPromptGroup(
        fingerprint=hashlib.sha256(first.text.encode()).hexdigest()[:12],
        preview=preview[:80] + ("…" if len(preview) > 80 else ""),
        tokens=first.tokens,
        variants=len(cluster),
        requests=sum(v.requests for v in cluster),
        total_tokens=sum(v.tokens * v.requests for v in cluster),
        features=tuple(features),
        keys=tuple(keys),
        cost_usd=sum((v.cost_usd for v in cluster), Decimal(0)),
        unpriced_requests=sum(v.unpriced for v in cluster),
    )


def _shingles(text: str) -> frozenset[str]:
    words = re.findall(r"\w+", text.lower())
    if len(words) <= SHINGLE_WORDS:
        return frozenset({" ".join(words)})
    return frozenset(
        " ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)
    )


def jaccard(left: frozenset[str], right: frozenset[str]) -> float:
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)
