"""The Batch and Flex savings of a report's requests, from its totals.

``Totals`` carries the sums that ``thrifty.ledger.savings`` defines per
request, read from the rollups, so these savings cost no extra pass over
the request rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from thrifty.ledger.database import add_exact
from thrifty.ledger.report import Totals


def _subtract(left: Decimal, right: Decimal) -> Decimal:
    return add_exact(left, right.copy_negate())


@dataclass(frozen=True, slots=True)
class BatchSavings:
    """Batch results in a period, their cost at batch rates and at synchronous rates."""

    results: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        return _subtract(self.standard_cost_usd, self.cost_usd)


@dataclass(frozen=True, slots=True)
class FlexSavings:
    """Flex calls in a period.

    ``calls`` counts calls sent at the Flex tier, ``fallbacks`` those that
    fell back to the default tier and ``rejections`` the 429 attempts.
    ``served`` counts calls the provider served at Flex, whose cost is
    ``cost_usd`` against ``standard_cost_usd`` at the standard price.
    """

    calls: int = 0
    fallbacks: int = 0
    rejections: int = 0
    served: int = 0
    cost_usd: Decimal = Decimal(0)
    standard_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        return _subtract(self.standard_cost_usd, self.cost_usd)

    @property
    def fallback_rate(self) -> float | None:
        return None if self.calls == 0 else self.fallbacks / self.calls


@dataclass(frozen=True, slots=True)
class LeverSavings:
    """The Batch and Flex savings among the requests of one report."""

    batch: BatchSavings
    flex: FlexSavings


def levers_of(totals: Totals) -> LeverSavings:
    """Return the Batch and Flex savings of the requests ``totals`` sums."""
    batch = BatchSavings(
        totals.batch_results, totals.batch_cost_usd, totals.batch_standard_cost_usd
    )
    flex = FlexSavings(
        calls=totals.flex_calls,
        fallbacks=totals.flex_fallbacks,
        rejections=totals.flex_rejections,
        served=totals.flex_served,
        cost_usd=totals.flex_cost_usd,
        standard_cost_usd=totals.flex_standard_cost_usd,
    )
    return LeverSavings(batch, flex)


def savings_json(savings: LeverSavings) -> dict[str, Any]:
    """Return the savings as JSON, money as decimal strings."""
    batch, flex = savings.batch, savings.flex
    return {
        "batch": {
            "results": batch.results,
            "cost_usd": format(batch.cost_usd, "f"),
            "standard_cost_usd": format(batch.standard_cost_usd, "f"),
            "savings_usd": format(batch.savings_usd, "f"),
        },
        "flex": {
            "calls": flex.calls,
            "served": flex.served,
            "fallbacks": flex.fallbacks,
            "rejections": flex.rejections,
            "fallback_rate": flex.fallback_rate,
            "cost_usd": format(flex.cost_usd, "f"),
            "standard_cost_usd": format(flex.standard_cost_usd, "f"),
            "savings_usd": format(flex.savings_usd, "f"),
        },
    }


def savings_lines(savings: LeverSavings) -> list[str]:
    """Return one line for each lever the report's requests used, for people."""
    lines: list[str] = []
    batch, flex = savings.batch, savings.flex
    if batch.results:
        lines.append(
            f"Batch: {batch.results:,} results cost ${batch.cost_usd:,.6f} at batch rates and "
            f"would cost ${batch.standard_cost_usd:,.6f} at synchronous rates: "
            f"saved ${batch.savings_usd:,.6f}"
        )
    if flex.calls:
        rate = flex.fallback_rate or 0.0
        lines.append(
            f"Flex: {flex.calls:,} calls, {flex.served:,} served at Flex for "
            f"${flex.cost_usd:,.6f} (${flex.standard_cost_usd:,.6f} at standard prices: "
            f"saved ${flex.savings_usd:,.6f}); {flex.fallbacks:,} fell back to the default "
            f"tier ({rate:.1%}) after {flex.rejections:,} rejections"
        )
    return lines
