"""Prompt optimization evidence: the share of input the prompt transforms removed, per feature.

The gateway's prompts step writes ``details["prompts"]`` with its estimated
input tokens before and after each transform. Those requests were already
sent optimized, so their saving is already in the spend. The advisor
therefore extrapolates: it applies the share the transforms removed on a
feature's optimized requests to the same feature's requests that ran
without the step. That happens when the step was enabled part-way through
the period or for some routes only. The step has no measure-only mode.

The cautious share counts the lossless transforms only (drop_empty,
whitespace, minify_json, dedupe); the generous one counts every recorded
transform, trimming and compression included.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from thrifty.advisor.traffic import Traffic
from thrifty.prompts.settings import LOSSLESS_TRANSFORMS

DETAILS_KEY = "prompts"


@dataclass(slots=True)
class RemovedShare:
    """Estimated input tokens of one feature's optimized requests, and what was removed."""

    requests: int = 0
    input_tokens_before: int = 0
    lossless_saved: int = 0
    all_saved: int = 0

    def add(self, annotation: dict[str, Any]) -> None:
        before = _count(annotation.get("input_tokens_before"))
        after = _count(annotation.get("input_tokens_after"))
        lossless = 0
        transforms = annotation.get("transforms")
        if isinstance(transforms, dict):
            for name, report in transforms.items():
                if name in LOSSLESS_TRANSFORMS and isinstance(report, dict):
                    lossless += _count(report.get("saved_tokens"))
        self.requests += 1
        self.input_tokens_before += before
        self.lossless_saved += max(lossless, 0)
        self.all_saved += max(before - after, 0)

    def share(self, *, cautious: bool) -> Decimal:
        """Return the removed share of the input: lossless only when cautious."""
        if self.input_tokens_before <= 0:
            return Decimal(0)
        saved = self.lossless_saved if cautious else max(self.all_saved, self.lossless_saved)
        return Decimal(saved) / Decimal(self.input_tokens_before)


def removed_shares(traffic: Traffic) -> dict[str, RemovedShare]:
    """Sum the prompts step's annotations of the traffic, per feature."""
    shares: dict[str, RemovedShare] = defaultdict(RemovedShare)
    for record in traffic.records:
        annotation = record.details.get(DETAILS_KEY)
        if isinstance(annotation, dict):
            shares[record.feature or ""].add(annotation)
    return dict(shares)


def trim_shares(shares: dict[str, RemovedShare], *, cautious: bool) -> dict[str, Decimal]:
    """Return the removed share per feature, leaving out features where nothing was removed."""
    result = {feature: totals.share(cautious=cautious) for feature, totals in shares.items()}
    return {feature: share for feature, share in result.items() if share > 0}


def unmeasured_features(traffic: Traffic, shares: dict[str, RemovedShare]) -> list[str]:
    """Return the traffic's features with no optimized request, highest spend first."""
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for record in traffic.records:
        if record.feature and record.feature not in shares:
            spend[record.feature] += record.cost_usd or Decimal(0)
    return sorted(spend, key=lambda feature: (-spend[feature], feature))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
