"""Time one routing decision (``Router.decide``) for the rules and the learned policy.

The bodies are chat requests built from MMLU prompts (the shared RouteLLM
outcome files beside the checkout), each decided once after a warm-up. The
learned router is trained here on every other MMLU domain and decides on the
prompts of the others. Times include reading the body and, for rules that
bound the input length, counting its tokens offline; no embedding call is
involved.

    .venv/bin/python bench/bench_routing.py --decisions 3000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from thrifty.gateway.attribution import Attribution
from thrifty.routing.config import parse_routing_config
from thrifty.routing.learned import TrainingOptions, train_router
from thrifty.routing.readers import read_outcomes
from thrifty.routing.router import Router

MMLU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing" / "mmlu"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
RULES = [
    {"when": {"feature": ["search"], "max_input_tokens": 400}, "model": "gpt-4o-mini"},
    {"when": {"tools": True}, "model": "gpt-4o"},
    {"when": {"images": True}, "model": "gpt-4o"},
    {"when": {"json_response": True, "team": "data"}, "model": "gpt-4o-mini"},
    {"when": {"min_input_tokens": 2000}, "model": "gpt-4o"},
]


def microseconds(
    router: Router, bodies: list[dict[str, Any]], attribution: Attribution
) -> list[float]:
    for body in bodies[:50]:
        router.decide(body, attribution)
    times = []
    for body in bodies:
        started = time.perf_counter()
        router.decide(body, attribution)
        times.append((time.perf_counter() - started) * 1e6)
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<12} {len(times):>9,} {statistics.median(ordered):>10.1f} {p99:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000, help="decisions per policy")
    args = parser.parse_args()
    if not MMLU.is_dir():
        raise SystemExit(f"{MMLU} is absent; this benchmark reads the shared MMLU outcome files")

    domains = sorted(MMLU.glob("mmlu_*.csv"))
    training = read_outcomes(domains[0::2]).pair(STRONG, WEAK)
    held_out = read_outcomes(domains[1::2]).pair(STRONG, WEAK)
    prompts = (held_out.prompts * (args.decisions // len(held_out) + 1))[: args.decisions]
    bodies = [
        {"model": "thrifty/auto", "messages": [{"role": "user", "content": p}]} for p in prompts
    ]
    lengths = sorted(len(p) for p in prompts)
    print(f"prompts: median {statistics.median(lengths):.0f} characters, max {lengths[-1]:,}")

    with tempfile.TemporaryDirectory() as folder:
        router_file = Path(folder) / "router.json"
        train_router(training, TrainingOptions(folds=0)).save(router_file)
        config = parse_routing_config(
            {
                "routes": {
                    "rules": {"models": ["gpt-4o-mini", "gpt-4o"], "rules": RULES},
                    "learned": {
                        "models": ["gpt-4o-mini", "gpt-4o"],
                        "policy": "learned",
                        "router_file": str(router_file),
                        "threshold": 0.85,
                    },
                }
            }
        )
    attribution = Attribution(team="web", feature="search")
    print(f"{'policy':<12} {'decisions':>9} {'p50 µs':>10} {'p99 µs':>10}")
    report("rules", microseconds(config.routes["rules"], bodies, attribution))
    report("learned", microseconds(config.routes["learned"], bodies, attribution))

    # Long prompts: twenty MMLU prompts joined, about 6,000 to 10,000 characters.
    joined = ["\n\n".join(prompts[i : i + 20]) for i in range(0, len(prompts), 20)]
    long_bodies = [{"messages": [{"role": "user", "content": text}]} for text in joined]
    report("rules-long", microseconds(config.routes["rules"], long_bodies, attribution))
    report("learned-long", microseconds(config.routes["learned"], long_bodies, attribution))


if __name__ == "__main__":
    main()
