"""Price tables compiled into per-token lookups, and the exact cost of a usage at them.

A ``PriceTable`` contains per-million rates, some of them tiered by the size of
the request's input. Compiling it divides every rate down to USD per token
(per call for web searches and request fees) and expands the tiers into one
flat row of rates per input-size bracket, so pricing a usage is a
bisection, one exact multiplication per token class and a sum. Each row
also has a text pricer (``thrifty.pricing.scaled``) that computes the same
total of a text-only usage in integers.

A ``Schedule`` contains the compiled tables of one model at one tier and
speed over time: one per period between the dates its catalog prices change.
A ``DailySchedule`` also splits each day at the edges of its daily windows.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from genai_prices.types import TimeOfDateConstraint

from thrifty.pricing.model import TOKEN_CLASSES
from thrifty.pricing.rates import EXACT, PriceTable, TieredRate, media_counts
from thrifty.pricing.scaled import TextPricer, text_pricer
from thrifty.usage.model import Usage

# Token rates are per million tokens; the web search and request fees are per
# 1,000 calls.
_UNIT_EXPONENT = dict.fromkeys(TOKEN_CLASSES, -6) | {"web_search": -3, "request": -3}

_ZERO = Decimal(0)
_multiply = EXACT.multiply
_add = EXACT.add
_REQUEST_CLASS = "request"
_TEXT_CLASSES = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning")

_PLACEHOLDER = re.compile(r"\{(model|provider|date)\}")


@dataclass(frozen=True, slots=True)
class RateRow:
    """The per-token rates of one input-size bracket.

    ``rates`` follows ``TOKEN_CLASSES``, None where a class has no price.
    ``text`` repeats the input, cache read, 5-minute and 1-hour cache write,
    output and reasoning rates when all six have a price (most models), so
    the common case is priced without checking them; it is None otherwise.
    ``price_text`` returns the total of a text-only usage at these rates, as
    ``price_usage`` does but faster, and None for any other usage or when
    the row has no ``text`` rates. It is built on first use, because most
    rows of the catalog never price a request, and building them all would
    add about half to the catalog's compile time.
    """

    rates: tuple[Decimal | None, ...]
    text: tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal] | None
    request: Decimal | None
    price_text: TextPricer = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        pricer = _no_text_price if self.text is None else self._build_and_price
        object.__setattr__(self, "price_text", pricer)

    @classmethod
    def of(cls, rates: tuple[Decimal | None, ...]) -> RateRow:
        by_class = dict(zip(TOKEN_CLASSES, rates, strict=True))
        input_rate, cache_read, write_5m, write_1h, output, reasoning = (
            by_class[name] for name in _TEXT_CLASSES
        )
        text = None
        if (
            input_rate is not None
            and cache_read is not None
            and write_5m is not None
            and write_1h is not None
            and output is not None
            and reasoning is not None
        ):
            text = (input_rate, cache_read, write_5m, write_1h, output, reasoning)
        return cls(rates, text, by_class[_REQUEST_CLASS])

    def _build_and_price(self, usage: Usage) -> Decimal | None:
        # Two threads may each build a pricer, which is harmless because they are equivalent.
        pricer = None if self.text is None else text_pricer(self.text, self.request)
        object.__setattr__(self, "price_text", pricer or _no_text_price)
        return self.price_text(usage)


@dataclass(frozen=True, slots=True)
class Unpriced:
    """The reason a model has no price at some tier.

    ``reason`` may contain ``{model}``, ``{provider}`` and ``{date}``, which
    stand for the requested model, its provider and the request's UTC date.
    """

    reason: str

    def message(self, provider: str, model: str, when: datetime) -> str:
        values = {"model": model, "provider": provider, "date": when.date().isoformat()}
        return _PLACEHOLDER.sub(lambda match: values[match[1]], self.reason)


@dataclass(frozen=True, slots=True)
class CompiledTable:
    """A ``PriceTable`` as flat per-token rate rows, one per input-size bracket.

    ``thresholds`` are input token counts in ascending order. A request whose
    ``input_tokens`` exceed ``thresholds[i - 1]`` but not ``thresholds[i]``
    is priced with ``rows[i]``. ``only_row`` is the one row of a table
    without thresholds, else None.
    """

    table: PriceTable
    thresholds: tuple[int, ...]
    rows: tuple[RateRow, ...]
    source: str
    only_row: RateRow | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "only_row", None if self.thresholds else self.rows[0])

    def row_for(self, input_tokens: int) -> RateRow:
        """Return the rates of the bracket a request with ``input_tokens`` of input falls in."""
        if not self.thresholds:
            return self.rows[0]
        return self.rows[bisect_left(self.thresholds, input_tokens)]


def compile_table(table: PriceTable) -> CompiledTable:
    """Compile ``table`` into per-token rate rows, exactly."""
    starts = sorted(
        {
            start
            for rate in table.rates.values()
            if isinstance(rate, TieredRate)
            for start, _ in rate.tiers
        }
    )
    # Representative input sizes: 0 for the base bracket, then one token past each start.
    sizes = [0, *(start + 1 for start in starts)]
    rows = tuple(_rate_row(table, size) for size in sizes)
    return CompiledTable(table, tuple(starts), rows, table.source)


def _rate_row(table: PriceTable, input_tokens: int) -> RateRow:
    rates: list[Decimal | None] = []
    for token_class in TOKEN_CLASSES:
        rate = table.rates.get(token_class)
        if isinstance(rate, TieredRate):
            rate = rate.for_input(input_tokens)
        rates.append(None if rate is None else EXACT.scaleb(rate, _UNIT_EXPONENT[token_class]))
    return RateRow.of(tuple(rates))


def price_usage(row: RateRow, usage: Usage) -> tuple[dict[str, Decimal], Decimal, list[str] | None]:
    """Price ``usage`` at ``row``: the cost of each class, their total, and unpriced classes.

    Usage is split into disjoint class counts as ``thrifty.pricing.rates.split_usage``
    splits it. A class with tokens but no rate is listed in the third value
    (None when there is none) and left out of the costs and the total.
    """
    # This runs on every request. Most requests have text tokens only, and
    # most models price all six text classes, so that case is written out
    # here. Any other case goes to the loop over every class, which costs more.
    text = row.text
    if text is None or (
        usage.input_audio_tokens
        or usage.output_audio_tokens
        or usage.input_image_tokens
        or usage.output_image_tokens
        or usage.web_search_requests
    ):
        return _price_counts(row.rates, split_counts(usage))

    input_rate, cache_read_rate, write_5m_rate, write_1h_rate, output_rate, reasoning_rate = text
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    write_1h = usage.cache_write_1h_tokens
    write_5m = cache_write - write_1h
    uncached = usage.input_tokens - cache_read - cache_write
    reasoning = usage.reasoning_tokens
    plain_output = usage.output_tokens - reasoning
    breakdown: dict[str, Decimal] = {}
    total = _ZERO
    if uncached:
        amount = breakdown["input"] = _multiply(input_rate, uncached)
        total = _add(total, amount)
    if cache_read:
        amount = breakdown["cache_read"] = _multiply(cache_read_rate, cache_read)
        total = _add(total, amount)
    if write_5m:
        amount = breakdown["cache_write_5m"] = _multiply(write_5m_rate, write_5m)
        total = _add(total, amount)
    if write_1h:
        amount = breakdown["cache_write_1h"] = _multiply(write_1h_rate, write_1h)
        total = _add(total, amount)
    if plain_output:
        amount = breakdown["output"] = _multiply(output_rate, plain_output)
        total = _add(total, amount)
    if reasoning:
        amount = breakdown["reasoning"] = _multiply(reasoning_rate, reasoning)
        total = _add(total, amount)
    # A model without a per-request fee charges none, and a request the
    # provider counted no tokens for (a failed call) is charged no fee.
    request_rate = row.request
    if request_rate is not None and (usage.input_tokens or usage.output_tokens):
        amount = breakdown["request"] = request_rate
        total = _add(total, amount)
    return breakdown, total, None


def usage_breakdown(row: RateRow, usage: Usage) -> dict[str, Decimal]:
    """Return the cost of each class of ``usage`` at ``row``, as ``price_usage`` gives it."""
    return price_usage(row, usage)[0]


def _no_text_price(usage: Usage) -> None:
    return None


def split_counts(usage: Usage) -> tuple[int, ...]:
    """Split ``usage`` into disjoint counts in ``TOKEN_CLASSES`` order, as ``split_usage`` does."""
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    cache_write_1h = usage.cache_write_1h_tokens
    cached = cache_read + cache_write
    input_audio, input_image = media_counts(
        usage.input_tokens, cached, usage.input_audio_tokens, usage.input_image_tokens
    )
    reasoning = usage.reasoning_tokens
    output_audio, output_image = media_counts(
        usage.output_tokens, reasoning, usage.output_audio_tokens, usage.output_image_tokens
    )
    return (
        usage.input_tokens - cached - input_audio - input_image,
        cache_read,
        cache_write - cache_write_1h,
        cache_write_1h,
        usage.output_tokens - reasoning - output_audio - output_image,
        reasoning,
        input_audio,
        output_audio,
        usage.web_search_requests,
        input_image,
        output_image,
        1 if usage.input_tokens or usage.output_tokens else 0,
    )


def _price_counts(
    rates: tuple[Decimal | None, ...], counts: tuple[int, ...]
) -> tuple[dict[str, Decimal], Decimal, list[str] | None]:
    breakdown: dict[str, Decimal] = {}
    total = _ZERO
    missing: list[str] | None = None
    for token_class, rate, count in zip(TOKEN_CLASSES, rates, counts, strict=True):
        if not count:
            continue
        if rate is None:
            if token_class != _REQUEST_CLASS:
                missing = [token_class] if missing is None else [*missing, token_class]
            continue
        amount = breakdown[token_class] = _multiply(rate, count)
        total = _add(total, amount)
    return breakdown, total, missing


Period = CompiledTable | Unpriced


@dataclass(frozen=True, slots=True)
class Schedule:
    """The compiled prices of one model at one tier and speed, period by period.

    ``starts`` are the UTC instants, in ascending order, at which a new
    period begins; ``periods`` has one more entry than ``starts``.
    """

    starts: tuple[datetime, ...]
    periods: tuple[Period, ...]

    @classmethod
    def merged(cls, starts: tuple[datetime, ...], periods: tuple[Period, ...]) -> Schedule:
        """Build a schedule, merging each period into the one before it when their prices are equal.

        A model's price dates include those of every tier, so most tiers
        have periods that do not change their prices.
        """
        kept_starts: list[datetime] = []
        kept = [periods[0]]
        for start, period in zip(starts, periods[1:], strict=True):
            if period != kept[-1]:
                kept_starts.append(start)
                kept.append(period)
        return cls(tuple(kept_starts), tuple(kept))

    @property
    def only_table(self) -> CompiledTable | None:
        """The one table of a schedule whose prices never change, else None."""
        period = self.periods[0]
        return period if not self.starts and isinstance(period, CompiledTable) else None

    def at(self, when: datetime) -> Period:
        """Return the prices in force at ``when``, a timezone-aware datetime."""
        if not self.starts:
            return self.periods[0]
        return self.periods[bisect_right(self.starts, when)]

    def span(self, when: datetime) -> Span:
        """Return the prices in force at ``when`` and the interval they hold for."""
        index = bisect_right(self.starts, when)
        start = self.starts[index - 1] if index else FAR_PAST
        end = self.starts[index] if index < len(self.starts) else FAR_FUTURE
        return Span(start, end, self.periods[index])

    def mapped(self, change: Callable[[CompiledTable], Period]) -> Schedule:
        """Return the schedule with ``change`` applied to every priced period."""
        periods = tuple(
            period if isinstance(period, Unpriced) else change(period) for period in self.periods
        )
        return Schedule(self.starts, periods)


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """A daily UTC time window, in microseconds since midnight; ``end`` may be past midnight.

    genai-prices' ``TimeOfDateConstraint.active`` puts a time inside when
    ``start <= t < end``, or for a window that wraps past midnight, when
    ``t >= start`` or ``t < end``. So a window's state changes only at its
    two edges.
    """

    start: int
    end: int

    @classmethod
    def of(cls, constraint: TimeOfDateConstraint) -> DailyWindow:
        return cls(_utc_micros(constraint.start_time), _utc_micros(constraint.end_time))


@dataclass(frozen=True, slots=True)
class DailySchedule:
    """Prices that also change with the time of day, such as DeepSeek's off-peak rates.

    The edges of the daily windows cut each day into segments in which no
    window opens or closes, so the prices of a (period, segment) pair never
    change. They are compiled on first use: ``build`` returns the prices in
    force at a given instant.
    """

    starts: tuple[datetime, ...]
    edges: tuple[int, ...]
    build: Callable[[datetime], Period]
    _compiled: list[list[Period | None]] = field(compare=False, repr=False)

    @classmethod
    def of(
        cls,
        starts: tuple[datetime, ...],
        windows: tuple[DailyWindow, ...],
        build: Callable[[datetime], Period],
    ) -> DailySchedule:
        edges = tuple(sorted({edge for window in windows for edge in (window.start, window.end)}))
        compiled: list[list[Period | None]] = [
            [None] * (len(edges) + 1) for _ in range(len(starts) + 1)
        ]
        return cls(starts, edges, build, compiled)

    def at(self, when: datetime) -> Period:
        """Return the prices in force at ``when``, a timezone-aware datetime."""
        return self.span(when).period

    def span(self, when: datetime) -> Span:
        """Return the prices in force at ``when`` and the interval they hold for."""
        utc = when if when.tzinfo is UTC else when.astimezone(UTC)
        midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
        micros = ((utc.hour * 60 + utc.minute) * 60 + utc.second) * 1_000_000 + utc.microsecond
        index = bisect_right(self.starts, when)
        segment = bisect_right(self.edges, micros)
        periods = self._compiled[index]
        period = periods[segment]
        if period is None:
            period = periods[segment] = self.build(when)

        start = midnight + timedelta(microseconds=self.edges[segment - 1]) if segment else midnight
        if segment < len(self.edges):
            end = midnight + timedelta(microseconds=self.edges[segment])
        else:
            end = midnight + timedelta(days=1)
        if index:
            start = max(start, self.starts[index - 1])
        if index < len(self.starts):
            end = min(end, self.starts[index])
        return Span(start, end, period)

    def mapped(self, change: Callable[[CompiledTable], Period]) -> DailySchedule:
        """Return the schedule with ``change`` applied to every priced period."""

        def build(when: datetime) -> Period:
            period = self.build(when)
            return period if isinstance(period, Unpriced) else change(period)

        compiled: list[list[Period | None]] = [[None] * len(row) for row in self._compiled]
        return DailySchedule(self.starts, self.edges, build, compiled)


def _utc_micros(moment: time) -> int:
    """Return a time of day as microseconds since UTC midnight; a naive time is UTC."""
    if moment.tzinfo is not None:
        moment = datetime.combine(date(1970, 1, 1), moment).astimezone(UTC).time()
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1_000_000 + (
        moment.microsecond
    )


AnySchedule = Schedule | DailySchedule

# Bounds for intervals that are open at one end.
FAR_PAST = datetime.min.replace(tzinfo=UTC)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Span:
    """Prices in force from ``start`` (inclusive) to ``end`` (exclusive), UTC instants."""

    start: datetime
    end: datetime
    period: Period


def start_instant(day: date) -> datetime:
    """Return the UTC midnight at which a price that starts on ``day`` takes effect."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
