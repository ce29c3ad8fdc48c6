"""Microseconds per price() call: Thrifty's CostEngine, genai_prices.calc_price and LiteLLM.

Each case prices one normalized usage (resolve the model, pick the rates,
compute the cost) with the three libraries on the same inputs. Thrifty and
genai-prices run in this process, in alternating rounds so that a change in
machine load hits both; LiteLLM runs in its own virtual environment (it is
not a Thrifty dependency), in a child process started right after. Each
figure is the fastest round, as ``timeit`` reports, because load from
other processes only ever slows a round down.
Thrifty's figures are checked to equal genai-prices' exactly; LiteLLM's are
printed as it returns them (floats).

    .venv/bin/python bench/bench_pricing.py --setup-litellm   # once: bench/.venv-litellm
    .venv/bin/python bench/bench_pricing.py --calls 20000 --rounds 7

LiteLLM reads its bundled price map (LITELLM_LOCAL_MODEL_COST_MAP=True), so
the run makes no network request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import genai_prices

from thrifty.pricing import CostEngine
from thrifty.pricing.catalog import Catalog
from thrifty.pricing.lookup import CompiledCatalog
from thrifty.usage import Usage

AT = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
LITELLM_VENV = Path(__file__).resolve().parent / ".venv-litellm"


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    model: str
    usage: Usage
    service_tier: str | None = None
    batch: bool = False
    # LiteLLM's names for the same model and provider.
    litellm_model: str = ""
    litellm_provider: str = ""

    def context(self) -> dict[str, str] | None:
        if self.batch:
            return {"processing": "batch"}
        return {"service_tier": self.service_tier} if self.service_tier else None


CHAT = Usage(input_tokens=4200, output_tokens=900, cache_read_tokens=3072)
REASONING = Usage(
    input_tokens=4200, output_tokens=900, cache_read_tokens=3072, reasoning_tokens=512
)
CACHE_WRITES = Usage(
    input_tokens=30000,
    output_tokens=800,
    cache_read_tokens=20000,
    cache_write_tokens=6000,
    cache_write_1h_tokens=2000,
)
CASES = (
    Case("gpt-4o cached", "openai", "gpt-4o-2024-08-06", CHAT, None, False, "gpt-4o", "openai"),
    Case("gpt-5 flex", "openai", "gpt-5", REASONING, "flex", False, "gpt-5", "openai"),
    Case("gpt-5 batch", "openai", "gpt-5", REASONING, None, True, "gpt-5", "openai"),
    Case(
        "claude-sonnet-4-5 cache writes",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        CACHE_WRITES,
        None,
        False,
        "claude-sonnet-4-5-20250929",
        "anthropic",
    ),
    Case(
        "gemini-2.5-pro thinking",
        "google",
        "gemini-2.5-pro",
        REASONING,
        None,
        False,
        "gemini/gemini-2.5-pro",
        "gemini",
    ),
    Case(
        "deepseek-chat peak hours",
        "deepseek",
        "deepseek-chat",
        CHAT,
        None,
        False,
        "deepseek/deepseek-chat",
        "deepseek",
    ),
)

# Run in LiteLLM's environment: times cost_per_token on each case and prints JSON.
_LITELLM_CHILD = """
import json, sys, time
from importlib.metadata import version
import litellm
litellm.telemetry = False
spec = json.load(sys.stdin)
results = {"version": version("litellm"), "cases": {}}
for case in spec["cases"]:
    kwargs = dict(
        model=case["model"],
        custom_llm_provider=case["provider"],
        prompt_tokens=case["input_tokens"],
        completion_tokens=case["output_tokens"],
        cache_read_input_tokens=case["cache_read_tokens"],
        cache_creation_input_tokens=case["cache_write_tokens"],
    )
    if case["service_tier"]:
        kwargs["service_tier"] = case["service_tier"]
    try:
        figure = sum(litellm.cost_per_token(**kwargs))
    except Exception as exc:
        results["cases"][case["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
        continue
    rounds = []
    for _ in range(spec["rounds"]):
        start = time.perf_counter()
        for _ in range(spec["calls"]):
            litellm.cost_per_token(**kwargs)
        rounds.append((time.perf_counter() - start) / spec["calls"] * 1e6)
    results["cases"][case["name"]] = {"us": rounds, "usd": figure}
json.dump(results, sys.stdout)
"""


def microseconds_per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def genai_usage(usage: Usage) -> genai_prices.Usage:
    return genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


def check_exact(engine: CostEngine) -> dict[str, Decimal]:
    """Price each case once with both libraries; stop unless the figures are equal."""
    figures: dict[str, Decimal] = {}
    for case in CASES:
        cost = engine.price(
            case.provider,
            case.model,
            case.usage,
            service_tier=case.service_tier,
            batch=case.batch,
            at=AT,
        )
        expected = genai_prices.calc_price(
            genai_usage(case.usage),
            case.model,
            provider_id=case.provider,
            genai_request_timestamp=AT,
            price_context=case.context(),
        ).total_price
        if cost.cost_usd != expected:
            sys.exit(f"{case.name}: Thrifty priced {cost.cost_usd}, genai-prices {expected}")
        figures[case.name] = expected
    return figures


def time_in_process(
    engine: CostEngine, calls: int, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Time Thrifty and genai-prices on every case, alternating between them each round."""
    times: dict[str, dict[str, list[float]]] = {
        case.name: {"thrifty": [], "genai": []} for case in CASES
    }
    genai_calls = max(calls // 20, 1)
    for _ in range(rounds):
        for case in CASES:
            usage = genai_usage(case.usage)
            times[case.name]["thrifty"].append(
                microseconds_per_call(
                    lambda c=case: engine.price(
                        c.provider,
                        c.model,
                        c.usage,
                        service_tier=c.service_tier,
                        batch=c.batch,
                        at=AT,
                    ),
                    calls,
                )
            )
            times[case.name]["genai"].append(
                microseconds_per_call(
                    lambda c=case, u=usage: genai_prices.calc_price(
                        u,
                        c.model,
                        provider_id=c.provider,
                        genai_request_timestamp=AT,
                        price_context=c.context(),
                    ),
                    genai_calls,
                )
            )
    return times


def time_litellm(python: Path, calls: int, rounds: int) -> dict[str, Any]:
    spec = {
        "calls": max(calls // 20, 1),
        "rounds": rounds,
        "cases": [
            {
                "name": case.name,
                "model": case.litellm_model,
                "provider": case.litellm_provider,
                "input_tokens": case.usage.input_tokens,
                "output_tokens": case.usage.output_tokens,
                "cache_read_tokens": case.usage.cache_read_tokens,
                "cache_write_tokens": case.usage.cache_write_tokens,
                "service_tier": case.service_tier,
            }
            for case in CASES
        ],
    }
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    completed = subprocess.run(
        [str(python), "-c", _LITELLM_CHILD],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=1800,
    )
    if completed.returncode != 0:
        sys.exit(f"LiteLLM benchmark failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def setup_litellm(path: Path) -> None:
    """Install LiteLLM into the virtual environment at ``path``, creating it when missing."""
    # bench/litellm/setup.sh makes the same environment for the proxy benchmark.
    if not (path / "bin" / "python").exists():
        print(f"creating {path}")
        venv.create(path, with_pip=True)
    print(f"installing litellm into {path}")
    subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "litellm"], check=True)


def compile_milliseconds() -> float:
    catalog = Catalog()
    start = time.perf_counter()
    CompiledCatalog(catalog)
    return (time.perf_counter() - start) * 1000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_results(times: dict[str, dict[str, list[float]]], litellm: dict[str, Any] | None) -> None:
    header = "| case | Thrifty µs | genai-prices µs | ratio |"
    rule = "| --- | ---: | ---: | ---: |"
    if litellm is not None:
        header += " LiteLLM µs | ratio |"
        rule += " ---: | ---: |"
    print(header)
    print(rule)
    for case in CASES:
        ours = min(times[case.name]["thrifty"])
        genai = min(times[case.name]["genai"])
        row = f"| {case.name} | {ours:.2f} | {genai:.1f} | {genai / ours:.0f}x |"
        if litellm is not None:
            entry = litellm["cases"].get(case.name, {})
            if "us" in entry:
                other = min(entry["us"])
                row += f" {other:.1f} | {other / ours:.0f}x |"
            else:
                row += f" {entry.get('error', 'not run')} | |"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000, help="Thrifty calls per case and round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the fastest is reported")
    parser.add_argument(
        "--litellm-python",
        type=Path,
        default=LITELLM_VENV / "bin" / "python",
        help="Python of a virtual environment with litellm installed",
    )
    parser.add_argument(
        "--setup-litellm",
        action="store_true",
        help=f"create {LITELLM_VENV} with litellm, then run",
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM timings")
    args = parser.parse_args()

    if args.setup_litellm and not args.litellm_python.exists():
        setup_litellm(args.litellm_python.parent.parent)
    print(f"machine: {machine()}")
    compile_ms = compile_milliseconds()
    print(f"genai-prices {version('genai-prices')}; catalog compiled in {compile_ms:.0f} ms")

    engine = CostEngine(warn_unpriced=False)
    figures = check_exact(engine)
    for name, figure in figures.items():
        print(f"  {name}: ${figure} (Thrifty and genai-prices agree)")
    times = time_in_process(engine, args.calls, args.rounds)

    litellm: dict[str, Any] | None = None
    if not args.no_litellm:
        if not args.litellm_python.exists():
            sys.exit(
                f"no LiteLLM environment at {args.litellm_python}; run with --setup-litellm, "
                "pass --litellm-python, or pass --no-litellm"
            )
        litellm = time_litellm(args.litellm_python, args.calls, args.rounds)
        print(f"litellm {litellm['version']}")
        for name, entry in litellm["cases"].items():
            if "usd" in entry:
                print(f"  {name}: LiteLLM ${entry['usd']!r}")
    print()
    print_results(times, litellm)


if __name__ == "__main__":
    main()
