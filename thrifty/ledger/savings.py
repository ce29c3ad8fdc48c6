"""The amounts each request adds to the Batch, Flex and response cache savings sums.

The rollups keep these sums so that a report shows the savings without
reading request rows. Each amount is defined twice, in Python for
``Ledger.write`` and in SQL for rollup rebuilds and request-row segments,
and a test checks that both give the same sums:

- Batch: a result is a record with ``details["batch"]["job"]``. A priced
  result (cost and ``details["batch"]["standard_cost_usd"]`` both known)
  adds its cost and its cost at synchronous prices.
- Flex: ``details["flex"]`` flags calls sent at Flex (``requested``), those
  that fell back to the default tier (``fallback``) and 429 attempts
  (``rejected``). A call served at Flex with a cost and
  ``details["flex"]["standard_cost_usd"]`` adds both.
- Response cache: hits (``hit`` or ``semantic-hit``) with no ``saved_usd``
  are counted as unpriced, and the embedding calls the cache made (records
  tagged ``thrifty_cache=embedding``) add their count and priced cost.

Hits, semantic hits and misses are counted from the ``cache_status``
dimension that the rollups already keep.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from thrifty.ledger.record import RequestRecord
from thrifty.ledger.schema import ExactDecimal, requests
from thrifty.ledger.sqlfuncs import ExactSum, JsonFlag, JsonText

HIT_STATUSES = ("hit", "semantic-hit")
# The tag the semantic cache's GatewayEmbedder puts on each embedding call it makes.
EMBEDDING_TAG_KEY = "thrifty_cache"
EMBEDDING_TAG_VALUE = "embedding"

_r = requests.c


def record_savings(record: RequestRecord) -> dict[str, Any]:
    """Return the savings columns one record adds: counts as int, money as Decimal."""
    cost = record.cost_usd
    batch = _section(record, "batch")
    flex = _section(record, "flex")
    batch_standard = _decimal(batch.get("standard_cost_usd"))
    flex_standard = _decimal(flex.get("standard_cost_usd"))
    is_batch = batch.get("job") is not None
    batch_priced = is_batch and batch_standard is not None and cost is not None
    flex_served = (
        record.service_tier_served == "flex" and flex_standard is not None and cost is not None
    )
    is_embedding = record.tags.get(EMBEDDING_TAG_KEY) == EMBEDDING_TAG_VALUE
    unpriced_hit = record.cache_status in HIT_STATUSES and _cache_saved(record) is None
    zero = Decimal(0)
    return {
        "cache_unpriced_hits": int(unpriced_hit),
        "cache_embedding_requests": int(is_embedding),
        "cache_embedding_usd": cost if is_embedding and cost is not None else zero,
        "batch_results": int(is_batch),
        "batch_cost_usd": cost if batch_priced and cost is not None else zero,
        "batch_standard_cost_usd": (
            batch_standard if batch_priced and batch_standard is not None else zero
        ),
        "flex_calls": int(flex.get("requested") is True),
        "flex_fallbacks": int(flex.get("fallback") is True),
        "flex_rejections": int(flex.get("rejected") is True),
        "flex_served": int(flex_served),
        "flex_cost_usd": cost if flex_served and cost is not None else zero,
        "flex_standard_cost_usd": (
            flex_standard if flex_served and flex_standard is not None else zero
        ),
    }


def _section(record: RequestRecord, name: str) -> dict[str, Any]:
    section = record.details.get(name)
    return section if isinstance(section, dict) else {}


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _cache_saved(record: RequestRecord) -> object:
    return _section(record, "cache").get("saved_usd")


class SavingsSql:
    """The SQL of ``record_savings``: the condition of each count, and each amount.

    ``amounts`` maps a money column to the request's value and the condition
    under which it is added. The sums use FILTER, so SQLite calls its exact
    decimal aggregate only for the rows that add something.
    """

    def __init__(self) -> None:
        batch_standard = JsonText(_r.details, "batch", "standard_cost_usd")
        flex_standard = JsonText(_r.details, "flex", "standard_cost_usd")
        self.batch_priced = sa.and_(
            JsonText(_r.details, "batch", "job").is_not(None),
            batch_standard.is_not(None),
            _r.cost_usd.is_not(None),
        )
        self.flex_served = sa.and_(
            _r.service_tier_served == "flex", flex_standard.is_not(None), _r.cost_usd.is_not(None)
        )
        self.is_embedding = JsonText(_r.tags, EMBEDDING_TAG_KEY) == EMBEDDING_TAG_VALUE
        unpriced_hit = sa.and_(
            _r.cache_status.in_(HIT_STATUSES),
            JsonText(_r.details, "cache", "saved_usd").is_(None),
        )
        self.counts: dict[str, ColumnElement[bool]] = {
            "cache_unpriced_hits": unpriced_hit,
            "cache_embedding_requests": self.is_embedding,
            "batch_results": JsonText(_r.details, "batch", "job").is_not(None),
            "flex_calls": JsonFlag(_r.details, "flex", "requested"),
            "flex_fallbacks": JsonFlag(_r.details, "flex", "fallback"),
            "flex_rejections": JsonFlag(_r.details, "flex", "rejected"),
            "flex_served": self.flex_served,
        }
        embedding_priced = sa.and_(self.is_embedding, _r.cost_usd.is_not(None))
        self.amounts: dict[str, tuple[ColumnElement[Any], ColumnElement[bool]]] = {
            "cache_embedding_usd": (_r.cost_usd, embedding_priced),
            "batch_cost_usd": (_r.cost_usd, self.batch_priced),
            "batch_standard_cost_usd": (
                sa.cast(batch_standard, ExactDecimal()),
                self.batch_priced,
            ),
            "flex_cost_usd": (_r.cost_usd, self.flex_served),
            "flex_standard_cost_usd": (sa.cast(flex_standard, ExactDecimal()), self.flex_served),
        }

    def count_sums(self) -> dict[str, ColumnElement[Any]]:
        """Return each count column as SUM over the selected rows, 0 for none."""
        return {
            name: sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)
            for name, condition in self.counts.items()
        }

    def amount_sums(self) -> dict[str, ColumnElement[Any]]:
        """Return each money column as an exact sum over the selected rows, NULL for none."""
        return {
            name: ExactSum(value).filter(condition)
            for name, (value, condition) in self.amounts.items()
        }
