"""Exact text-token costs in integer arithmetic, for the cost engine's common case.

``price_usage`` in ``thrifty.pricing.compiled`` multiplies and adds Decimals,
two calls of a Decimal context per charged token class, and each call takes
longer than the integer products and sums that replace it here. A text
pricer computes the same total from the rates as whole numbers at one
decimal scale, and makes one Decimal at the end.

The total has the exponent that Decimal arithmetic gives it, not only the
same value. A rate times a token count keeps the rate's exponent, and an
exact sum takes the exponent of its finest term. So the total of
``price_usage`` has as many decimal places as the finest rate among the
classes it charged, and none when it charged none.
"""

# ruff: noqa: PLR1730

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from thrifty.errors import PricingError
from thrifty.pricing.rates import EXACT
from thrifty.usage.model import Usage

# The maximum number of decimal places of a rate that a text pricer takes. A
# row with a finer rate is priced in Decimal.
MAX_PLACES = 40

# Decimal("1E-places") for each number of decimal places a total can have, and
# the powers of ten that take a whole-number total from one scale to another.
_UNITS = tuple(EXACT.scaleb(Decimal(1), -places) for places in range(MAX_PLACES + 1))
_POWERS_OF_TEN = tuple(10**places for places in range(MAX_PLACES + 1))
_multiply = EXACT.multiply

# Return the total cost of a usage, or None when the usage has token classes
# other than text (audio, image or web search counts).
TextPricer = Callable[[Usage], Decimal | None]


def decimal_places(rate: Decimal) -> int:
    """Return the number of digits after the decimal point of ``rate``: 0 for a whole number."""
    exponent = rate.as_tuple().exponent
    if not isinstance(exponent, int):
        raise PricingError(f"rate {rate} is not a finite number")
    return max(0, -exponent)


def scaled_integer(rate: Decimal, scale: int) -> int:
    """Return ``rate * 10**scale``, which must be a whole number."""
    scaled = EXACT.scaleb(rate, scale)
    whole = int(scaled)
    if whole != scaled:
        raise PricingError(f"rate {rate} has more than {scale} decimal places")
    return whole


def text_pricer(text: tuple[Decimal, ...], request: Decimal | None) -> TextPricer | None:
    """Build the text pricer of one rate row.

    ``text`` contains the per-token input, cache read, 5-minute and 1-hour
    cache write, output and reasoning rates, and ``request`` the fee per
    request or None. The pricer splits usage as ``price_usage`` does and
    returns its total, exponent included. The result is None when a rate is
    not finite or has more than ``MAX_PLACES`` decimal places.
    """
    if not all(rate.is_finite() for rate in (*text, request or Decimal(0))):
        return None
    places = tuple(decimal_places(rate) for rate in text)
    request_places = 0 if request is None else decimal_places(request)
    scale = max(*places, request_places)
    if scale > MAX_PLACES:
        return None
    (
        input_places,
        read_places,
        write_5m_places,
        write_1h_places,
        output_places,
        reasoning_places,
    ) = places
    input_rate, read_rate, write_5m_rate, write_1h_rate, output_rate, reasoning_rate = (
        scaled_integer(rate, scale) for rate in text
    )
    request_rate = None if request is None else scaled_integer(request, scale)

    # This runs on every request, so the rates are closure variables rather
    # than fields to unpack, and ``places`` is raised with comparisons
    # because a call of max() takes longer than the rest of a class's step.
    def price_text(usage: Usage) -> Decimal | None:  # noqa: PLR0912
        if (
            usage.input_audio_tokens
            or usage.output_audio_tokens
            or usage.input_image_tokens
            or usage.output_image_tokens
            or usage.web_search_requests
        ):
            return None
        cache_read = usage.cache_read_tokens
        cache_write = usage.cache_write_tokens
        write_1h = usage.cache_write_1h_tokens
        write_5m = cache_write - write_1h
        uncached = usage.input_tokens - cache_read - cache_write
        reasoning = usage.reasoning_tokens
        plain_output = usage.output_tokens - reasoning

        # Each charged class adds its cost at ``scale`` and raises ``places``
        # to its rate's, as a Decimal sum takes its finest term's exponent.
        total = 0
        places = 0
        if uncached:
            total = input_rate * uncached
            places = input_places
        if cache_read:
            total += read_rate * cache_read
            if read_places > places:
                places = read_places
        if write_5m:
            total += write_5m_rate * write_5m
            if write_5m_places > places:
                places = write_5m_places
        if write_1h:
            total += write_1h_rate * write_1h
            if write_1h_places > places:
                places = write_1h_places
        if plain_output:
            total += output_rate * plain_output
            if output_places > places:
                places = output_places
        if reasoning:
            total += reasoning_rate * reasoning
            if reasoning_places > places:
                places = reasoning_places
        # A request the provider counted no tokens for (a failed call) is charged no fee.
        if request_rate is not None and (usage.input_tokens or usage.output_tokens):
            total += request_rate
            if request_places > places:
                places = request_places

        # No charged rate has more than ``places`` decimal places, so the
        # total is still a whole number at that scale.
        if places < scale:
            total //= _POWERS_OF_TEN[scale - places]
        return _multiply(total, _UNITS[places])

    return price_text
