"""Budget and rate-limit counters: the types, and the in-process implementation.

Money is counted in whole nano-dollars. A reservation is the estimate
rounded up and a settlement the real cost rounded up, so a counter may
exceed the ledger's exact sum by under one nano-dollar per request, never
fall below it.

Each budget window keeps ``spent`` (settled cost), ``reserved`` (the sum of
reservations in flight) and each reservation by request id with a deadline,
after which it no longer counts (its request is presumed lost). A rate
limit keeps a sliding log of the last minute's reservations by request id.
``reserve`` checks every budget and rate limit of a request and then takes
from all of them, or from none.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Literal, Protocol

from thrifty.control.model import Budget
from thrifty.control.periods import ROLLING_BUCKETS, Window
from thrifty.control.scopes import Scope

NANO = Decimal(1_000_000_000)
RATE_WINDOW_S = 60.0
# Calendar counters outlive their period by this long, so a settlement that
# arrives after the boundary still finds the window it was reserved in.
CALENDAR_GRACE_S = 2 * 86400


def to_nano(amount: Decimal) -> int:
    """Round a USD amount up to whole nano-dollars."""
    return int((amount * NANO).to_integral_value(rounding=ROUND_CEILING))


def from_nano(amount: int) -> Decimal:
    return Decimal(amount) / NANO


@dataclass(frozen=True, slots=True)
class BudgetCharge:
    """One budget a request counts against, in the window it falls in.

    ``amount`` is the reservation in nano-dollars. ``bucket`` is the current
    bucket of a rolling window (0 otherwise) and ``oldest`` the oldest
    bucket still counted.
    """

    budget: Budget
    window: Window
    limit: int
    amount: int
    bucket: int = 0
    oldest: int = 0
    ttl_s: int = 0

    @property
    def counter_id(self) -> str:
        return f"{self.budget.budget_id}:{self.window.key}"


@dataclass(frozen=True, slots=True)
class RateCharge:
    """One rate limit a request counts against: ``amount`` requests or tokens."""

    scope: Scope
    kind: Literal["rpm", "tpm"]
    limit: int
    amount: int

    @property
    def counter_id(self) -> str:
        return f"{self.kind}:{self.scope}"


@dataclass(frozen=True, slots=True)
class BudgetLevel:
    """A budget window's settled spend and reservations in flight, in nano-dollars."""

    spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """Every charge was taken; ``levels`` are each budget's, this reservation included."""

    levels: tuple[BudgetLevel, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """A charge did not fit: ``kind`` says which list and ``index`` which entry."""

    kind: Literal["budget", "rate"]
    index: int
    used: int
    reserved: int = 0


@dataclass(frozen=True, slots=True)
class Missing:
    """A budget window has no counter yet (or lost it): rebuild it from the ledger."""

    index: int


Outcome = Admitted | Refused | Missing


class Counters(Protocol):
    """Where the counters live: this process, or Redis for several replicas."""

    async def reserve(
        self,
        request_id: str,
        budgets: list[BudgetCharge],
        rates: list[RateCharge],
        now: float,
        deadline: float,
    ) -> Outcome: ...

    async def settle(
        self,
        request_id: str,
        budgets: list[tuple[BudgetCharge, int]],
        rates: list[tuple[RateCharge, int]],
        now: float,
    ) -> list[BudgetLevel | None]: ...

    async def load(
        self, charge: BudgetCharge, buckets: dict[int, int], counted: Sequence[str] = ()
    ) -> None:
        """Create a missing budget counter from the ledger's spend; keep an existing one.

        ``buckets`` maps a rolling bucket to its spend, or ``{0: spend}``.
        ``counted`` names requests whose cost ``buckets`` includes but that may
        still settle: their settlement then adds nothing.
        """
        ...

    async def reconcile(self, charge: BudgetCharge, buckets: dict[int, int]) -> None:
        """Raise a budget counter to at least the ledger's spend."""
        ...

    async def levels(self, budgets: list[BudgetCharge], now: float) -> list[BudgetLevel | None]: ...

    async def first_time(self, name: str, ttl_s: int) -> bool:
        """Return True for the first caller with ``name`` until ``ttl_s`` passes."""
        ...

    async def epoch(self) -> int | None:
        """Return the shared change counter, or None when there is none."""
        ...

    async def bump_epoch(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _BudgetWindow:
    spent: int = 0
    buckets: dict[int, int] = field(default_factory=dict)
    reserved: int = 0
    reservations: dict[str, tuple[int, float]] = field(default_factory=dict)
    expires: float = math.inf
    counted: set[str] = field(default_factory=set)

    def expire_reservations(self, now: float) -> None:
        stale = [rid for rid, (_, deadline) in self.reservations.items() if deadline <= now]
        for rid in stale:
            amount, _ = self.reservations.pop(rid)
            self.reserved -= amount

    def spent_since(self, oldest: int) -> int:
        if not oldest:
            return self.spent
        for bucket in [bucket for bucket in self.buckets if bucket < oldest]:
            del self.buckets[bucket]
        return sum(self.buckets.values())


@dataclass
class _RateLog:
    entries: deque[tuple[float, str]] = field(default_factory=deque)
    amounts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def expire(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - RATE_WINDOW_S:
            _, rid = self.entries.popleft()
            self.total -= self.amounts.pop(rid, 0)


class MemoryCounters:
    """Counters in this process: one replica only, the same semantics as Redis.

    Each method runs without awaiting, so on one event loop every call is atomic.
    """

    def __init__(self) -> None:
        self._budgets: dict[str, _BudgetWindow] = {}
        # Amounts (and buckets) of requests that settled while their counter was missing.
        self._unsettled: dict[str, dict[str, tuple[int, int]]] = {}
        self._rates: dict[str, _RateLog] = {}
        self._once: dict[str, float] = {}
        self._epoch = 0

    async def reserve(
        self,
        request_id: str,
        budgets: list[BudgetCharge],
        rates: list[RateCharge],
        now: float,
        deadline: float,
    ) -> Outcome:
        windows: list[_BudgetWindow] = []
        levels: list[BudgetLevel] = []
        for index, charge in enumerate(budgets):
            window = self._window(charge.counter_id, now)
            if window is None:
                return Missing(index)
            window.expire_reservations(now)
            spent = window.spent_since(charge.oldest)
            if spent + window.reserved + charge.amount > charge.limit:
                return Refused("budget", index, spent, window.reserved)
            windows.append(window)
            levels.append(BudgetLevel(spent, window.reserved + charge.amount))
        logs: list[_RateLog] = []
        for index, rate in enumerate(rates):
            log = self._rates.setdefault(rate.counter_id, _RateLog())
            log.expire(now)
            if log.total + rate.amount > rate.limit:
                return Refused("rate", index, log.total)
            logs.append(log)

        for window, charge in zip(windows, budgets, strict=True):
            window.reservations[request_id] = (charge.amount, deadline)
            window.reserved += charge.amount
        for log, rate in zip(logs, rates, strict=True):
            log.entries.append((now, request_id))
            log.amounts[request_id] = log.amounts.get(request_id, 0) + rate.amount
            log.total += rate.amount
        return Admitted(tuple(levels))

    async def settle(
        self,
        request_id: str,
        budgets: list[tuple[BudgetCharge, int]],
        rates: list[tuple[RateCharge, int]],
        now: float,
    ) -> list[BudgetLevel | None]:
        levels: list[BudgetLevel | None] = []
        for charge, actual in budgets:
            window = self._window(charge.counter_id, now)
            if window is None:
                unsettled = self._unsettled.setdefault(charge.counter_id, {})
                unsettled[request_id] = (actual, charge.bucket)
                levels.append(None)
                continue
            held = window.reservations.pop(request_id, None)
            if held is not None:
                window.reserved -= held[0]
            if request_id in window.counted:
                window.counted.discard(request_id)
            elif charge.bucket:
                window.buckets[charge.bucket] = window.buckets.get(charge.bucket, 0) + actual
            else:
                window.spent += actual
            levels.append(BudgetLevel(window.spent_since(charge.oldest), window.reserved))
        for rate, actual in rates:
            log = self._rates.get(rate.counter_id)
            if log is not None and request_id in log.amounts:
                log.total += actual - log.amounts[request_id]
                log.amounts[request_id] = actual
        return levels

    async def load(
        self, charge: BudgetCharge, buckets: dict[int, int], counted: Sequence[str] = ()
    ) -> None:
        if self._window(charge.counter_id, 0.0) is not None:
            return
        expires = math.inf if not charge.ttl_s else _now_plus(charge.ttl_s)
        window = _BudgetWindow(expires=expires, counted=set(counted))
        if charge.oldest:
            window.buckets = dict(buckets)
        else:
            window.spent = sum(buckets.values())
        for request_id, (actual, bucket) in self._unsettled.pop(charge.counter_id, {}).items():
            if request_id in window.counted:
                window.counted.discard(request_id)
            elif bucket:
                window.buckets[bucket] = window.buckets.get(bucket, 0) + actual
            else:
                window.spent += actual
        self._budgets[charge.counter_id] = window

    async def reconcile(self, charge: BudgetCharge, buckets: dict[int, int]) -> None:
        window = self._budgets.get(charge.counter_id)
        if window is None:
            return
        if charge.oldest:
            for bucket, amount in buckets.items():
                window.buckets[bucket] = max(window.buckets.get(bucket, 0), amount)
        else:
            window.spent = max(window.spent, sum(buckets.values()))

    async def levels(self, budgets: list[BudgetCharge], now: float) -> list[BudgetLevel | None]:
        levels: list[BudgetLevel | None] = []
        for charge in budgets:
            window = self._window(charge.counter_id, now)
            if window is None:
                levels.append(None)
                continue
            window.expire_reservations(now)
            levels.append(BudgetLevel(window.spent_since(charge.oldest), window.reserved))
        return levels

    async def first_time(self, name: str, ttl_s: int) -> bool:
        now = time.monotonic()
        until = self._once.get(name)
        if until is not None and until > now:
            return False
        self._once[name] = now + ttl_s
        return True

    async def epoch(self) -> int | None:
        return None

    async def bump_epoch(self) -> None:
        self._epoch += 1

    async def close(self) -> None:
        return None

    def _window(self, counter_id: str, now: float) -> _BudgetWindow | None:
        window = self._budgets.get(counter_id)
        if window is not None and window.expires <= _now_plus(0):
            del self._budgets[counter_id]
            return None
        return window


def _now_plus(seconds: float) -> float:
    return time.monotonic() + seconds


def rolling_bucket(window: Window, now: float) -> tuple[int, int]:
    """Return the current and the oldest counted bucket of a rolling window at ``now``."""
    current = int(now) // window.bucket_s
    return current, current - ROLLING_BUCKETS + 1
