"""What the caches saved, from the ledger.

Response cache: per feature, lookups, hits and hit rate, dollars saved (what
the original calls cost), the cost of the cache's embedding calls (records
tagged ``thrifty_cache=embedding``), an estimate of storage cost, and the net
saving. Storage is priced only when a price per GB-month is given; otherwise
it is reported as unpriced, never as $0.

Provider prompt caches: per model, feature, key (or other dimensions), the
share of input tokens read from cache and the saving, which is each call's
price with every input token at the uncached rate minus what it cost, so
Anthropic's cache-write premium counts against it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from thrifty.errors import PricingError, ReportError
from thrifty.ledger.schema import request_tags, requests
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

logger = logging.getLogger(__name__)

_r = requests.c

HIT_STATUSES = ("hit", "semantic-hit")
PROMPT_DIMENSIONS: dict[str, Any] = {
    "model": sa.func.coalesce(_r.model_served, _r.model_requested),
    "feature": _r.feature,
    "key": _r.key_id,
    "team": _r.team,
    "project": _r.project,
    "provider": _r.provider,
    "endpoint": _r.endpoint,
}
_GIGABYTE = Decimal(1024**3)
# Storage is priced per month of 30 days.
_MONTH = timedelta(days=30)


@dataclass(slots=True)
class ResponseCacheStats:
    """The response cache's results for one feature (None: requests without a feature)."""

    feature: str | None
    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    saved_usd: Decimal = Decimal(0)
    unpriced_hits: int = 0
    embedding_requests: int = 0
    embedding_usd: Decimal = Decimal(0)
    storage_usd: Decimal | None = None

    @property
    def lookups(self) -> int:
        return self.hits + self.semantic_hits + self.misses

    @property
    def hit_rate(self) -> float | None:
        lookups = self.lookups
        return (self.hits + self.semantic_hits) / lookups if lookups else None

    @property
    def net_saving_usd(self) -> Decimal:
        """Saved minus embedding cost minus storage cost (storage 0 when unpriced)."""
        return self.saved_usd - self.embedding_usd - (self.storage_usd or Decimal(0))

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "lookups": self.lookups,
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "saved_usd": format(self.saved_usd, "f"),
            "unpriced_hits": self.unpriced_hits,
            "embedding_requests": self.embedding_requests,
            "embedding_usd": format(self.embedding_usd, "f"),
            "storage_usd": None if self.storage_usd is None else format(self.storage_usd, "f"),
            "storage_priced": self.storage_usd is not None,
            "net_saving_usd": format(self.net_saving_usd, "f"),
        }


@dataclass(slots=True)
class PromptCacheGroup:
    """Provider prompt caching for one group of upstream calls."""

    values: dict[str, str | None]
    requests: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    saved_usd: Decimal = Decimal(0)
    unpriced_requests: int = 0
    models: set[str] = field(default_factory=set)

    @property
    def hit_rate(self) -> float | None:
        return self.cache_read_tokens / self.input_tokens if self.input_tokens else None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.values,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "hit_rate": self.hit_rate,
            "cost_usd": format(self.cost_usd, "f"),
            "saved_usd": format(self.saved_usd, "f"),
            "unpriced_requests": self.unpriced_requests,
        }


def response_cache_stats(
    connection: sa.Connection,
    *,
    since: datetime | None = None,
    until: datetime,
    entry_sizes: Iterable[tuple[Any, ...]] = (),
    usd_per_gb_month: Decimal | None = None,
) -> list[ResponseCacheStats]:
    """Return the response cache's results per feature, most saved first.

    ``entry_sizes`` are (feature, bytes, created_at, expires_at) of stored
    entries; each is charged for the part of its life inside the window.
    """
    window = [_r.started_at < until] + ([_r.started_at >= since] if since else [])
    groups: dict[str | None, ResponseCacheStats] = {}

    def group(feature: str | None) -> ResponseCacheStats:
        return groups.setdefault(feature, ResponseCacheStats(feature))

    lookups = sa.select(_r.feature, _r.cache_status, _r.details).where(
        _r.cache_status.is_not(None), *window
    )
    for feature, status, details in connection.execute(lookups):
        _add_lookup(group(feature), status, details)

    embedding_tag = request_tags.alias("embedding_tag")
    embeddings = (
        sa.select(_r.feature, _r.cost_usd)
        .select_from(requests.join(embedding_tag, embedding_tag.c.request_id == _r.request_id))
        .where(
            embedding_tag.c.key == "thrifty_cache", embedding_tag.c.value == "embedding", *window
        )
    )
    for feature, cost in connection.execute(embeddings):
        stats = group(feature)
        stats.embedding_requests += 1
        stats.embedding_usd += cost or Decimal(0)

    if usd_per_gb_month is not None:
        _add_storage(groups, entry_sizes, since, until, usd_per_gb_month)
    return sorted(groups.values(), key=lambda stats: (-stats.net_saving_usd, stats.feature or ""))


def _add_lookup(stats: ResponseCacheStats, status: str, details: str | None) -> None:
    if status == "miss":
        stats.misses += 1
        return
    if status not in HIT_STATUSES:
        return
    if status == "hit":
        stats.hits += 1
    else:
        stats.semantic_hits += 1
    saved = _details(details).get("cache", {}).get("saved_usd")
    if saved is None:
        stats.unpriced_hits += 1
    else:
        stats.saved_usd += Decimal(str(saved))


def _details(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _add_storage(
    groups: dict[str | None, ResponseCacheStats],
    entry_sizes: Iterable[tuple[Any, ...]],
    since: datetime | None,
    until: datetime,
    usd_per_gb_month: Decimal,
) -> None:
    for stats in groups.values():
        stats.storage_usd = Decimal(0)
    for feature, size, created_at, expires_at in entry_sizes:
        start = max(created_at, since) if since else created_at
        alive = min(expires_at, until) - start
        if alive <= timedelta(0):
            continue
        # Divide last, so whole GB-months come out exact.
        byte_seconds = Decimal(size) * Decimal(alive.total_seconds()) * usd_per_gb_month
        cost = byte_seconds / (_GIGABYTE * Decimal(_MONTH.total_seconds()))
        stats = groups.setdefault(feature, ResponseCacheStats(feature, storage_usd=Decimal(0)))
        stats.storage_usd = (stats.storage_usd or Decimal(0)) + cost


def prompt_cache_stats(
    connection: sa.Connection,
    engine: CostEngine,
    *,
    by: Sequence[str] = ("model",),
    since: datetime | None = None,
    until: datetime | None = None,
    where: Mapping[str, str] | None = None,
) -> list[PromptCacheGroup]:
    """Group upstream calls (not cache hits) by ``by`` and sum prompt caching's effect."""
    for name in [*by, *(where or {})]:
        if name not in PROMPT_DIMENSIONS:
            raise ReportError(
                f"unknown dimension {name!r}; valid dimensions: {', '.join(PROMPT_DIMENSIONS)}"
            )
    conditions = [sa.or_(_r.cache_status.is_(None), _r.cache_status.not_in(HIT_STATUSES))]
    if since is not None:
        conditions.append(_r.started_at >= since)
    if until is not None:
        conditions.append(_r.started_at < until)
    for name, value in (where or {}).items():
        conditions.append(PROMPT_DIMENSIONS[name] == value)
    statement = sa.select(
        *(PROMPT_DIMENSIONS[name].label(f"d_{name}") for name in by),
        _r.provider,
        _r.model_priced,
        _r.model_served,
        _r.model_requested,
        _r.service_tier_served,
        _r.started_at,
        _r.input_tokens,
        _r.output_tokens,
        _r.reasoning_tokens,
        _r.cache_read_tokens,
        _r.cache_write_tokens,
        _r.cost_usd,
    ).where(*conditions)

    groups: dict[tuple[str | None, ...], PromptCacheGroup] = {}
    for row in connection.execute(statement):
        mapping = row._mapping
        values = {name: mapping[f"d_{name}"] for name in by}
        key = tuple(values.values())
        group = groups.setdefault(key, PromptCacheGroup(values))
        _add_call(group, mapping, engine)
    return sorted(groups.values(), key=lambda group: (-group.saved_usd, -group.requests))


def _add_call(group: PromptCacheGroup, row: Mapping[Any, Any], engine: CostEngine) -> None:
    group.requests += 1
    group.input_tokens += row["input_tokens"]
    group.cache_read_tokens += row["cache_read_tokens"]
    group.cache_write_tokens += row["cache_write_tokens"]
    cost = row["cost_usd"]
    if cost is None:
        group.unpriced_requests += 1
        return
    group.cost_usd += cost
    if not row["cache_read_tokens"] and not row["cache_write_tokens"]:
        return
    uncached = uncached_cost(engine, row)
    if uncached is None:
        group.unpriced_requests += 1
        return
    group.saved_usd += uncached - cost


def uncached_cost(engine: CostEngine, row: Mapping[Any, Any]) -> Decimal | None:
    """Price a recorded call as if none of its input had been read from or written to cache."""
    model = row["model_priced"] or row["model_served"] or row["model_requested"]
    usage = Usage(
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
    )
    try:
        cost = engine.price(
            row["provider"],
            model,
            usage,
            service_tier=row["service_tier_served"],
            at=row["started_at"],
        )
    except PricingError as exc:
        logger.debug("cannot reprice a %s call without caching: %s", model, exc)
        return None
    return cost.cost_usd
