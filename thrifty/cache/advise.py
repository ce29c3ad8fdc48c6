"""Advice on provider prompt caching: prefixes that repeat but are not read from cache.

The input is one prompt fingerprint per request (see ``prompt_layout``),
from the ledger (``record.details["prompt"]``) or from a file of request
bodies. Requests are grouped by provider, model and feature and read in time
order, and five problems are looked for:

- ``changing_early``: the system prompt's first piece differs between
  requests while the rest repeats, as when a timestamp heads the prompt;
- ``reordered``: the same tools or system blocks arrive in different orders;
- ``below_minimum``: a prefix repeats but is shorter than the provider caches;
- ``no_breakpoint``: an Anthropic prefix long enough to cache repeats, but
  the requests carry no ``cache_control`` breakpoint;
- ``uncached_repeats``: a cacheable prefix repeats but the ledger shows that
  less than half of it was read from cache.

Each finding estimates the saving of fixing it: the tokens that would be
read from cache instead of billed as input, at the model's price difference.
These are estimates: token counts in fingerprints are approximate, cache
lifetimes are ignored, and a write premium is charged once per finding.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from thrifty.cache.prompt_layout import OPENAI_MIN_CACHED_TOKENS, Fingerprint, fingerprint
from thrifty.errors import CacheError, PricingError
from thrifty.ledger.schema import requests
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox.catalog import anthropic_cache_minimum
from thrifty.usage import Usage

_r = requests.c
_MILLION = 1_000_000
OPENAI_CACHE_INCREMENT = 128
# A repeated prefix counts as uncached when less than this share of it was read.
UNCACHED_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class PromptSample:
    """One request's prompt fingerprint and, when known, its billed cache usage."""

    started_at: datetime
    provider: str
    endpoint: str
    model: str
    feature: str | None
    fingerprint: Fingerprint
    input_tokens: int | None = None
    cache_read_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, the requests it affects and the estimated saving of fixing it."""

    kind: str
    provider: str
    model: str
    feature: str | None
    requests: int
    tokens: int
    saving_usd: Decimal | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "provider": self.provider,
            "model": self.model,
            "feature": self.feature,
            "requests": self.requests,
            "tokens": self.tokens,
            "saving_usd": None if self.saving_usd is None else format(self.saving_usd, "f"),
            "detail": self.detail,
        }


def advise(samples: Iterable[PromptSample], engine: CostEngine) -> list[Finding]:
    """Return the findings for every provider, model and feature, largest saving first."""
    groups: dict[tuple[str, str, str, str | None], list[PromptSample]] = defaultdict(list)
    for sample in samples:
        family = "anthropic" if sample.endpoint == "messages" else "openai"
        groups[(family, sample.provider, sample.model, sample.feature)].append(sample)
    findings: list[Finding] = []
    for (family, provider, model, feature), group in groups.items():
        group.sort(key=lambda sample: sample.started_at)
        rates = _Rates.of(engine, provider, model)
        context = _Group(family, provider, model, feature, rates)
        findings += context.findings(group)
    return sorted(findings, key=lambda f: (-(f.saving_usd or Decimal(-1)), -f.tokens))


@dataclass(frozen=True, slots=True)
class _Rates:
    """Per-token USD: what a cache read saves, and what a cache write costs extra."""

    read_saving: Decimal | None
    write_premium: Decimal

    @classmethod
    def of(cls, engine: CostEngine, provider: str, model: str) -> _Rates:
        try:
            plain = _price(engine, provider, model, Usage(input_tokens=_MILLION))
            read = _price(
                engine, provider, model, Usage(input_tokens=_MILLION, cache_read_tokens=_MILLION)
            )
            write = _price(
                engine, provider, model, Usage(input_tokens=_MILLION, cache_write_tokens=_MILLION)
            )
        except PricingError:
            return cls(None, Decimal(0))
        premium = max(write - plain, Decimal(0)) / _MILLION
        return cls((plain - read) / _MILLION, premium)

    def saving(self, read_tokens: int, written_tokens: int) -> Decimal | None:
        if self.read_saving is None:
            return None
        return read_tokens * self.read_saving - written_tokens * self.write_premium


def _price(engine: CostEngine, provider: str, model: str, usage: Usage) -> Decimal:
    cost = engine.price(provider, model, usage).cost_usd
    if cost is None:
        raise PricingError(f"no price for {model}")
    return cost


@dataclass(frozen=True, slots=True)
class _Group:
    family: str
    provider: str
    model: str
    feature: str | None
    rates: _Rates

    @property
    def minimum(self) -> int:
        if self.family == "anthropic":
            return anthropic_cache_minimum(self.model)
        return OPENAI_MIN_CACHED_TOKENS

    def finding(self, kind: str, requests: int, tokens: int, written: int, detail: str) -> Finding:
        return Finding(
            kind=kind,
            provider=self.provider,
            model=self.model,
            feature=self.feature,
            requests=requests,
            tokens=tokens,
            saving_usd=self.rates.saving(tokens, written),
            detail=detail,
        )

    def findings(self, samples: list[PromptSample]) -> list[Finding]:
        found = [*self._reuse_findings(samples)]
        found += self._changing_early(samples)
        found += self._reordered(samples)
        return found

    def _reuse_findings(self, samples: list[PromptSample]) -> Iterator[Finding]:
        seen: set[str] = set()
        short = _Tally()
        unmarked = _Tally()
        uncached = _Tally()
        for sample in samples:
            reused = _longest_seen_prefix(sample.fingerprint, seen)
            if reused <= 0:
                continue
            if reused < self.minimum:
                short.add(reused, reused)
                continue
            cacheable = self._cacheable(reused)
            if self.family == "anthropic" and sample.fingerprint.breakpoints == 0:
                unmarked.add(cacheable, reused)
            elif (
                sample.cache_read_tokens is not None
                and sample.cache_read_tokens < cacheable * UNCACHED_SHARE
            ):
                uncached.add(cacheable - sample.cache_read_tokens, reused)
        if short.requests:
            yield self.finding(
                "below_minimum",
                short.requests,
                short.tokens,
                short.largest,
                f"a prefix of up to {short.largest:,} tokens repeats in {short.requests} "
                f"requests but is below the {self.minimum:,}-token minimum {self.model} "
                "caches; move more of the stable content (instructions, examples, tools) "
                "ahead of what changes. The saving is an upper bound.",
            )
        if unmarked.requests:
            yield self.finding(
                "no_breakpoint",
                unmarked.requests,
                unmarked.tokens,
                unmarked.largest,
                f"a prefix of up to {unmarked.largest:,} tokens repeats in "
                f"{unmarked.requests} requests without a cache_control breakpoint; list the "
                "feature under cache.prompt_caching.features or add cache_control.",
            )
        if uncached.requests:
            yield self.finding(
                "uncached_repeats",
                uncached.requests,
                uncached.tokens,
                0,
                f"{uncached.requests} requests repeat a cacheable prefix of up to "
                f"{uncached.largest:,} tokens, but less than half of it was read from cache; "
                + self._uncached_advice(),
            )

    def _uncached_advice(self) -> str:
        if self.family == "anthropic":
            return "requests may come more than 5 minutes apart: use the 1-hour lifetime."
        return (
            "set prompt_cache_key (cache.prompt_caching.openai_cache_key) so requests that "
            "share a prefix reach the same cache."
        )

    def _cacheable(self, tokens: int) -> int:
        if self.family == "anthropic":
            return tokens
        steps = (tokens - OPENAI_MIN_CACHED_TOKENS) // OPENAI_CACHE_INCREMENT
        return OPENAI_MIN_CACHED_TOKENS + steps * OPENAI_CACHE_INCREMENT

    def _changing_early(self, samples: list[PromptSample]) -> list[Finding]:
        tails: dict[tuple[str, ...], list[PromptSample]] = defaultdict(list)
        for sample in samples:
            pieces = sample.fingerprint.pieces
            if len(pieces) >= 2:
                tails[tuple(piece.digest for piece in pieces[1:])].append(sample)
        found: list[Finding] = []
        for group in tails.values():
            heads = {sample.fingerprint.pieces[0].digest for sample in group}
            if len(group) < 2 or len(heads) < 2:
                continue
            pieces = group[0].fingerprint.pieces
            tail_tokens = sum(piece.tokens for piece in pieces[1:])
            leading = _tokens_before_system(group[0].fingerprint)
            recoverable = (len(group) - 1) * (leading + tail_tokens)
            found.append(
                self.finding(
                    "changing_early",
                    len(group),
                    recoverable,
                    leading + tail_tokens,
                    f"the system prompt's first ~{pieces[0].tokens:,} tokens take "
                    f"{len(heads)} different values across {len(group)} requests while the "
                    f"following ~{tail_tokens:,} tokens repeat (a timestamp or id at the "
                    "top?); move what changes to the end of the prompt.",
                )
            )
        return found

    def _reordered(self, samples: list[PromptSample]) -> list[Finding]:
        orders: dict[tuple[str, ...], dict[tuple[str, ...], int]] = defaultdict(dict)
        tokens: dict[tuple[str, ...], int] = {}
        for sample in samples:
            prefix = [s for s in sample.fingerprint.segments if not s.kind.startswith("message:")]
            if len(prefix) < 2:
                continue
            order = tuple(segment.digest for segment in prefix)
            content = tuple(sorted(order))
            counts = orders[content]
            counts[order] = counts.get(order, 0) + 1
            tokens[content] = sum(segment.tokens for segment in prefix)
        found: list[Finding] = []
        for content, counts in orders.items():
            if len(counts) < 2:
                continue
            requests = sum(counts.values())
            # After a fix, every request but the first reads the prefix from cache.
            recoverable = (requests - max(counts.values())) * tokens[content]
            found.append(
                self.finding(
                    "reordered",
                    requests,
                    recoverable,
                    tokens[content],
                    f"the same {len(content)} tools and system blocks (~{tokens[content]:,} "
                    f"tokens) arrive in {len(counts)} different orders across {requests} "
                    "requests; send them in one fixed order.",
                )
            )
        return found


@dataclass(slots=True)
class _Tally:
    requests: int = 0
    tokens: int = 0
    largest: int = 0

    def add(self, tokens: int, prefix: int) -> None:
        self.requests += 1
        self.tokens += tokens
        self.largest = max(self.largest, prefix)


def _longest_seen_prefix(found: Fingerprint, seen: set[str]) -> int:
    """Return the tokens of the longest segment prefix seen before; remember this one's."""
    chain = hashlib.blake2b(digest_size=8)
    total = 0
    longest = 0
    for segment in found.segments:
        chain.update(segment.digest.encode())
        total += segment.tokens
        digest = chain.hexdigest()
        if digest in seen:
            longest = total
        seen.add(digest)
    return longest


def _tokens_before_system(found: Fingerprint) -> int:
    return sum(segment.tokens for segment in found.segments if segment.kind == "tool")


def samples_from_ledger(
    connection: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    feature: str | None = None,
) -> Iterator[PromptSample]:
    """Yield the fingerprinted requests recorded by the gateway."""
    statement = sa.select(
        _r.started_at,
        _r.provider,
        _r.endpoint,
        sa.func.coalesce(_r.model_served, _r.model_requested),
        _r.feature,
        _r.input_tokens,
        _r.cache_read_tokens,
        _r.details,
    ).where(_r.details.contains('"prompt"'))
    if since is not None:
        statement = statement.where(_r.started_at >= since)
    if until is not None:
        statement = statement.where(_r.started_at < until)
    if feature is not None:
        statement = statement.where(_r.feature == feature)
    for (
        started,
        provider,
        endpoint,
        model,
        row_feature,
        input_tokens,
        read,
        details,
    ) in connection.execute(statement):
        prompt = orjson.loads(details).get("prompt")
        if not isinstance(prompt, Mapping):
            continue
        yield PromptSample(
            started_at=started,
            provider=provider,
            endpoint=endpoint,
            model=model,
            feature=row_feature,
            fingerprint=Fingerprint.from_json(prompt),
            input_tokens=input_tokens,
            cache_read_tokens=read,
        )


def samples_from_file(path: Path) -> Iterator[PromptSample]:
    """Yield samples from a JSON Lines file of request bodies.

    Each line is a request body, or an object with ``body`` and optionally
    ``endpoint`` (chat.completions, responses or messages), ``provider``,
    ``feature`` and ``timestamp`` (ISO 8601). Without an endpoint, a body
    with ``input`` is a Responses request, one whose model starts with
    ``claude`` a Messages request, and any other a chat completion.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CacheError(f"cannot read request file {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield _sample_from_line(path, number, line)


def _sample_from_line(path: Path, number: int, line: str) -> PromptSample:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CacheError(f"{path}:{number} is not valid JSON: {exc}") from exc
    if not isinstance(item, dict):
        raise CacheError(f"{path}:{number} is a JSON {type(item).__name__}; expected an object")
    body = item.get("body", item)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise CacheError(f"{path}:{number} has no request body with a 'model'")
    endpoint = item.get("endpoint") or _guess_endpoint(body)
    if endpoint not in ("chat.completions", "responses", "messages"):
        raise CacheError(
            f"{path}:{number} has endpoint {endpoint!r}; "
            "use chat.completions, responses or messages"
        )
    provider = item.get("provider") or ("anthropic" if endpoint == "messages" else "openai")
    return PromptSample(
        started_at=_timestamp(path, number, item.get("timestamp")),
        provider=str(provider),
        endpoint=endpoint,
        model=body["model"],
        feature=item.get("feature"),
        fingerprint=fingerprint(endpoint, body),
    )


def _guess_endpoint(body: Mapping[str, Any]) -> str:
    if "input" in body:
        return "responses"
    if str(body.get("model", "")).startswith("claude"):
        return "messages"
    return "chat.completions"


def _timestamp(path: Path, number: int, value: Any) -> datetime:
    if value is None:
        return datetime.fromtimestamp(number, UTC)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise CacheError(f"{path}:{number} has timestamp {value!r}; use ISO 8601") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
