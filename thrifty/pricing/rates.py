"""Resolved rates of one model, and the exact cost of a usage at those rates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal

from thrifty.pricing.model import TOKEN_CLASSES
from thrifty.usage.model import Usage

# Money arithmetic runs in its own context, wide enough that no product or sum
# of token counts and catalog rates is ever rounded, whatever the caller's
# decimal context is.
EXACT = Context(prec=80)

# Token rates are per million tokens; the web search and request fees are per
# 1,000 calls.
_UNIT_EXPONENT = dict.fromkeys(TOKEN_CLASSES, -6) | {"web_search": -3, "request": -3}

# Classes priced per call rather than per token.
_REQUEST_CLASSES = frozenset({"web_search", "request"})

# Classes a model may have no rate for without leaving a cost unpriced: a
# model without a per-request fee charges none.
_OPTIONAL_CLASSES = frozenset({"request"})


@dataclass(frozen=True, slots=True)
class TieredRate:
    """A rate that changes with the size of the request's input.

    ``tiers`` contains ``(start, rate)`` pairs in ascending order of ``start``.
    Once a request's ``input_tokens`` exceed a tier's start, every token of the
    class is priced at that tier's rate (not only the tokens above it).
    """

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]

    def for_input(self, input_tokens: int) -> Decimal:
        """Return the rate that applies to a request with ``input_tokens`` of input."""
        rate = self.base
        for start, tier_rate in self.tiers:
            if input_tokens <= start:
                break
            rate = tier_rate
        return rate

    def scaled(self, factor: Decimal) -> TieredRate:
        tiers = tuple((start, EXACT.multiply(rate, factor)) for start, rate in self.tiers)
        return TieredRate(EXACT.multiply(self.base, factor), tiers)


Rate = Decimal | TieredRate


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The USD rates of one model at one service tier on one date.

    ``rates`` maps each token class of ``TOKEN_CLASSES`` to its rate; a class
    without a rate has no price. ``source`` names where the rates came from and
    how they were derived.
    """

    rates: Mapping[str, Rate]
    source: str

    def scaled(self, factor: Decimal, source: str, *, fees: bool = False) -> PriceTable:
        """Return the table with every token rate multiplied by ``factor``.

        The web search and request rates are fees per call. They stay as they
        are unless ``fees`` is true (a negotiated discount lowers them too, a
        Batch API discount does not).
        """
        rates: dict[str, Rate] = {}
        for token_class, rate in self.rates.items():
            if token_class in _REQUEST_CLASSES and not fees:
                rates[token_class] = rate
            elif isinstance(rate, TieredRate):
                rates[token_class] = rate.scaled(factor)
            else:
                rates[token_class] = EXACT.multiply(rate, factor)
        return PriceTable(rates, source)

    def breakdown(self, usage: Usage) -> tuple[dict[str, Decimal], list[str]]:
        """Price each token class of ``usage``.

        Returns the cost of every class that has tokens, and the classes that
        have tokens but no rate (they are left out of the costs).
        """
        costs: dict[str, Decimal] = {}
        unpriced: list[str] = []
        for token_class, count in split_usage(usage).items():
            rate = self.rates.get(token_class)
            if rate is None:
                if token_class not in _OPTIONAL_CLASSES:
                    unpriced.append(token_class)
                continue
            if isinstance(rate, TieredRate):
                rate = rate.for_input(usage.input_tokens)
            amount = EXACT.multiply(rate, Decimal(count))
            costs[token_class] = EXACT.scaleb(amount, _UNIT_EXPONENT[token_class])
        return costs, unpriced


def split_usage(usage: Usage) -> dict[str, int]:
    """Split ``usage`` into the disjoint counts of ``TOKEN_CLASSES``; zero counts are left out.

    ``request`` is 1 for a request with any input or output tokens: a call
    that failed before the provider counted anything is charged no fee.

    Providers report audio, image and cached tokens as separate subsets of
    the input, and do not say how many cached tokens were audio or images.
    When the subsets add up to more than the input, the overlap is taken to
    be cached audio first, then cached images, and is priced once, in its
    cache class. Reasoning, audio and image output are handled the same way.

    NOTE: cached audio and images are priced at the model's cache rate for
    text, because ``Usage`` has no count of cached audio or image tokens.
    Only audio and image models that also cache prompts are affected.
    """
    cache_total = usage.cache_read_tokens + usage.cache_write_tokens
    input_audio, input_image = media_counts(
        usage.input_tokens, cache_total, usage.input_audio_tokens, usage.input_image_tokens
    )
    output_audio, output_image = media_counts(
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.output_audio_tokens,
        usage.output_image_tokens,
    )
    counts = {
        "input": usage.input_tokens - cache_total - input_audio - input_image,
        "cache_read": usage.cache_read_tokens,
        "cache_write_5m": usage.cache_write_5m_tokens,
        "cache_write_1h": usage.cache_write_1h_tokens,
        "output": usage.output_tokens - usage.reasoning_tokens - output_audio - output_image,
        "reasoning": usage.reasoning_tokens,
        "input_audio": input_audio,
        "output_audio": output_audio,
        "web_search": usage.web_search_requests,
        "input_image": input_image,
        "output_image": output_image,
        "request": 1 if usage.input_tokens or usage.output_tokens else 0,
    }
    return {token_class: count for token_class, count in counts.items() if count}


def media_counts(total: int, claimed: int, audio: int, image: int) -> tuple[int, int]:
    """Return the audio and image counts left once ``claimed`` tokens of ``total`` are taken.

    ``claimed`` are the tokens of another class (cached input, reasoning
    output) that may include audio or images. Any overlap comes off the
    audio count first, then off the image count.
    """
    overlap = claimed + audio + image - total
    if overlap <= 0:
        return audio, image
    from_audio = min(overlap, audio)
    return audio - from_audio, image - (overlap - from_audio)
