"""Microseconds per CostEngine.price() call, on warm caches and on cold ones.

The gateway prices every request, so the warm number is the one that matters:
the model and its rates are already resolved and a call is dictionary lookups
plus Decimal arithmetic. The cold number builds a new engine for each call,
so every call resolves the model in the catalog again. genai_prices.calc_price
on the same usage is printed for comparison.

    .venv/bin/python bench/bench_pricing.py --calls 20000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import genai_prices

from thrifty.pricing import CostEngine
from thrifty.usage import Usage

AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
USAGE = Usage(
    input_tokens=4200,
    output_tokens=900,
    cache_read_tokens=3072,
    reasoning_tokens=512,
)
CASES = (
    ("openai", "gpt-4o-2024-08-06", None),
    ("openai", "gpt-5", "flex"),
    ("anthropic", "claude-sonnet-4-5-20250929", None),
    ("google", "gemini-2.5-pro", None),
)


def microseconds_per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="price() calls per case")
    args = parser.parse_args()

    engine = CostEngine()
    genai_usage = genai_prices.Usage(
        input_tokens=USAGE.input_tokens,
        output_tokens=USAGE.output_tokens,
        cache_read_tokens=USAGE.cache_read_tokens,
        output_reasoning_tokens=USAGE.reasoning_tokens,
    )
    print(
        f"{'provider':<10} {'model':<28} {'tier':<8} {'warm µs':>9} {'cold µs':>9} {'genai µs':>9}"
    )
    for provider, model, tier in CASES:
        engine.price(provider, model, USAGE, service_tier=tier, at=AT)
        warm = microseconds_per_call(
            lambda p=provider, m=model, t=tier: engine.price(p, m, USAGE, service_tier=t, at=AT),
            args.calls,
        )
        cold = microseconds_per_call(
            lambda p=provider, m=model, t=tier: CostEngine().price(
                p, m, USAGE, service_tier=t, at=AT
            ),
            max(args.calls // 20, 1),
        )
        context = {"service_tier": tier} if tier else None
        reference = microseconds_per_call(
            lambda p=provider, m=model, c=context: genai_prices.calc_price(
                genai_usage, m, provider_id=p, genai_request_timestamp=AT, price_context=c
            ),
            max(args.calls // 10, 1),
        )
        print(
            f"{provider:<10} {model:<28} {tier or 'default':<8} "
            f"{warm:>9.1f} {cold:>9.1f} {reference:>9.1f}"
        )


if __name__ == "__main__":
    main()
