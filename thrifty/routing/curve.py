"""Routing curves: mean quality as the share of calls to the strong model grows.

A router ranks prompts by how much they need the strong model; sending the
first ``k`` of ``n`` to it gives one point (``k / n``, mean quality). Prompts
the router scores the same are a tie group: sending part of a group is
taken as picking within it at random, so the curve is a straight line across
the group. That makes every curve here an expected value, computed exactly:

- **random** routing is one tie group, a straight line from the weak model's
  quality to the strong model's;
- the **oracle** knows each outcome: it sends to the strong model only the
  prompts where the strong model scores higher, largest difference first,
  and with a larger share of strong calls available it makes no more, so
  its curve rises and then stays flat (the best quality reachable with at
  most that share of strong calls);
- a **router** ranks by its own score.

The performance gap recovered at a share is ``(quality - weak) / (strong -
weak)``. APGR is its mean over shares from 0 to 1 (the area under the curve,
integrated exactly over the line segments), and CPT(p) the smallest share of
strong calls at which it reaches ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from thrifty.errors import RoutingError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RoutingCurve:
    """Mean quality at each breakpoint share of strong calls; linear in between.

    ``gains`` are the mean quality above the weak model's at each breakpoint
    and ``gap`` the strong model's mean quality above the weak model's. Both
    are sums of the same per-prompt differences, so the recovered fraction
    of random routing is exact (1.0 at share 1).
    """

    shares: FloatArray
    gains: FloatArray
    weak_quality: float
    strong_quality: float
    gap: float

    @property
    def qualities(self) -> FloatArray:
        return self.weak_quality + self.gains

    def quality_at(self, share: float) -> float:
        return self.weak_quality + float(np.interp(share, self.shares, self.gains))

    def recovered(self) -> FloatArray:
        """Return the performance gap recovered at each breakpoint."""
        return self.gains / self.gap

    def recovered_at(self, share: float) -> float:
        return float(np.interp(share, self.shares, self.gains)) / self.gap

    def apgr(self) -> float:
        """Return the average performance gap recovered over shares 0 to 1."""
        recovered = self.recovered()
        widths = np.diff(self.shares)
        return float(np.sum(widths * (recovered[1:] + recovered[:-1]) / 2))

    def calls_to_recover(self, fraction: float) -> float | None:
        """Return the smallest share of strong calls that recovers ``fraction`` of the gap.

        Returns None when no share on the curve recovers that much.
        """
        recovered = self.recovered()
        reached = np.flatnonzero(recovered >= fraction)
        if len(reached) == 0:
            return None
        j = int(reached[0])
        if j == 0:
            return float(self.shares[0])
        low, high = recovered[j - 1], recovered[j]
        step = (fraction - low) / (high - low)
        return float(self.shares[j - 1] + step * (self.shares[j] - self.shares[j - 1]))


@dataclass(frozen=True)
class Ranking:
    """Prompts in the order a router sends them to the strong model, in tie groups.

    ``order`` lists prompt positions, most in need of the strong model
    first, and ``group_ends`` the end (exclusive) of each tie group in it.
    """

    order: IntArray
    group_ends: IntArray

    @classmethod
    def by_priority(cls, priority: FloatArray) -> Ranking:
        """Rank by ``priority``, highest first; equal priorities form one group."""
        order = np.argsort(-priority, kind="stable").astype(np.int64)
        ranked = priority[order]
        changes = np.flatnonzero(ranked[1:] != ranked[:-1]) + 1
        group_ends = np.append(changes, len(order)).astype(np.int64)
        return cls(order, group_ends)

    @classmethod
    def oracle(cls, strong: FloatArray, weak: FloatArray) -> Ranking:
        """Rank the prompts the strong model does better on, largest difference first."""
        difference = strong - weak
        better = np.flatnonzero(difference > 0)
        order = better[np.argsort(-difference[better], kind="stable")].astype(np.int64)
        return cls(order, np.arange(1, len(order) + 1, dtype=np.int64))

    def curve(
        self, strong: FloatArray, weak: FloatArray, weights: FloatArray | None = None
    ) -> RoutingCurve:
        """Return the routing curve, each prompt counted ``weights`` times (default once).

        Prompts left out of ``order`` (the oracle's) never go to the strong
        model, so the curve stays flat after the last group.
        """
        counts = np.ones(len(strong)) if weights is None else weights
        total = float(counts.sum())
        if total <= 0:
            raise RoutingError("cannot draw a routing curve over no prompts")
        weak_quality = float(np.dot(counts, weak)) / total
        strong_quality = float(np.dot(counts, strong)) / total
        gain = counts * (strong - weak)
        gap = float(np.cumsum(gain)[-1]) / total
        if gap <= 0:
            raise RoutingError(
                f"the strong model's mean quality {strong_quality:.4g} is not above the weak "
                f"model's {weak_quality:.4g} on these prompts, so no gap can be recovered; "
                "check which model is --strong"
            )

        ends = self.group_ends - 1
        shares = np.concatenate([[0.0], np.cumsum(counts[self.order])[ends] / total])
        gains = np.concatenate([[0.0], np.cumsum(gain[self.order])[ends] / total])
        if shares[-1] < 1.0:
            shares = np.append(shares, 1.0)
            gains = np.append(gains, gains[-1])
        return RoutingCurve(shares, gains, weak_quality, strong_quality, gap)


def random_curve(
    strong: FloatArray, weak: FloatArray, weights: FloatArray | None = None
) -> RoutingCurve:
    """Return the expected curve of routing at random: every prompt in one tie group."""
    return Ranking.by_priority(np.zeros(len(strong))).curve(strong, weak, weights)


def oracle_curve(
    strong: FloatArray, weak: FloatArray, weights: FloatArray | None = None
) -> RoutingCurve:
    """Return the best quality reachable with at most each share of strong calls."""
    return Ranking.oracle(strong, weak).curve(strong, weak, weights)
