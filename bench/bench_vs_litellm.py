"""Thrifty and the LiteLLM proxy side by side, in front of the same sandbox.

Three targets get the same chat completion body: the sandbox directly, Thrifty
in front of it (metering, a lifetime budget on the virtual key the requests
use, records in the spool and the SQLite ledger), and the LiteLLM proxy in
front of it (its spend log on PostgreSQL when its Prisma client could be
generated, else one JSON line per call from bench/litellm/spend_log.py).

Phases, for non-streamed and streamed requests:

- fixed rates (default 100 and 500 a second): an open-loop Python generator
  (aiohttp on uvloop) sends each request at its scheduled time, so a slow
  answer shows in the latencies instead of slowing the load; overhead is a
  target's latency percentile minus the direct one in the same round;
- maximum throughput: wrk (closed loop, a Lua script POSTs the body) with a
  fixed number of connections.

For each phase it prints latency percentiles, overhead, throughput, error
rate, and the CPU and peak RSS of the gateway's process tree, then the
ratios of Thrifty to LiteLLM. Set up LiteLLM first with
``bash bench/litellm/setup.sh``.

    .venv/bin/python bench/bench_vs_litellm.py --rates 100,500 --seconds 20 \\
        --max-seconds 15 --connections 32 --json bench-vs-litellm.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from harness import (
    MASTER_KEY,
    Phase,
    ProcessStats,
    Services,
    Target,
    free_port,
    open_loop,
    percentile,
    phase_stats,
    request_body,
    run_async,
    run_wrk,
    wait_healthy,
    wait_idle,
)

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = HERE / ".venv-litellm"
DEFAULT_LITELLM_DB = "postgresql://postgres@127.0.0.1:5432/litellm_bench"


@dataclass
class Row:
    """One target in one phase."""

    mode: str
    phase: str
    target: str
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    error_rate: float
    cpu_percent: float
    peak_rss_mb: float
    overhead_p50_ms: float = float("nan")
    overhead_p90_ms: float = float("nan")
    overhead_p99_ms: float = float("nan")


def start_litellm(
    services: Services, sandbox_base: str, venv: Path, database_url: str | None
) -> tuple[Target, str]:
    """Start the LiteLLM proxy; return it and a sentence on how it logs spend."""
    litellm = venv / "bin" / "litellm"
    if not litellm.exists():
        raise SystemExit(f"{litellm} is missing; run: bash bench/litellm/setup.sh")
    port = free_port()
    env = {
        "LITELLM_LOG": "ERROR",
        # Use the price map shipped in the package, not one fetched from the internet.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_SPEND_LOG": str(services.workdir / "litellm.jsonl"),
    }
    if database_url and (venv / "prisma-generated").exists():
        _create_database(database_url)
        env["DATABASE_URL"] = database_url
        database, callbacks = f"  database_url: {database_url}", "[]"
        how = f"spend logs in PostgreSQL ({database_url}) through Prisma"
    else:
        database, callbacks = "", "spend_log.handler"
        how = (
            "no database (the Prisma engines could not be installed offline): "
            "one JSON line per call appended by bench/litellm/spend_log.py, "
            "no virtual key or budget check"
        )
        env["PYTHONPATH"] = str(HERE / "litellm")
    config = services.workdir / "litellm.yaml"
    template = (HERE / "litellm" / "config.template.yaml").read_text()
    config.write_text(
        template.format(
            sandbox_base=sandbox_base,
            master_key=MASTER_KEY,
            database_settings=database,
            callbacks=callbacks,
        )
    )
    command = [str(litellm), "--config", str(config), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", "1"]
    process = services.start("litellm", command, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health/liveliness", process, timeout_s=180)
    except SystemExit:
        sys.stderr.write(services.log_tail("litellm"))
        raise
    return Target("litellm", f"{url}/v1/chat/completions", MASTER_KEY, process), how


def _create_database(url: str) -> None:
    """Create LiteLLM's own database if it does not exist yet (never another one)."""
    name = url.rsplit("/", 1)[-1]
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
        capture_output=True,
        check=False,
    )


def fixed_rate_row(mode: str, target: Target, phase: Phase, stats: ProcessStats, rate: int) -> Row:
    values = phase.latencies_ms
    return Row(
        mode=mode,
        phase=f"{rate}/s",
        target=target.name,
        rps=phase.achieved_rps,
        p50_ms=percentile(values, 50),
        p90_ms=percentile(values, 90),
        p99_ms=percentile(values, 99),
        error_rate=phase.error_rate,
        cpu_percent=stats.cpu_percent,
        peak_rss_mb=stats.peak_rss_mb,
    )


def with_overhead(rows: list[Row]) -> list[Row]:
    """Fill in each row's overhead against the direct row of the same phase."""
    direct = {(row.mode, row.phase): row for row in rows if row.target == "direct"}
    for row in rows:
        base = direct.get((row.mode, row.phase))
        if base is None or row.target == "direct":
            continue
        row.overhead_p50_ms = row.p50_ms - base.p50_ms
        row.overhead_p90_ms = row.p90_ms - base.p90_ms
        row.overhead_p99_ms = row.p99_ms - base.p99_ms
    return rows


def run_fixed(mode: str, targets: list[Target], rate: int, args: argparse.Namespace) -> list[Row]:
    body = request_body(stream=mode == "stream")
    rows = []
    for target in targets:
        with phase_stats(target) as sampler:
            load = open_loop(
                target,
                body,
                rate,
                args.seconds,
                warmup=args.warmup,
                request_timeout_s=args.request_timeout,
                after_warmup=sampler.restart,
            )
            phase = run_async(load)
        rows.append(fixed_rate_row(mode, target, phase, sampler.stats, rate))
        _print_row(rows[-1])
        _drain(target)
    return rows


def run_max(mode: str, targets: list[Target], seconds: float, connections: int) -> list[Row]:
    body = request_body(stream=mode == "stream")
    rows = []
    for target in targets:
        with phase_stats(target) as sampler:
            result = run_wrk(target, body, seconds=seconds, connections=connections)
        stats = sampler.stats
        _drain(target)
        rows.append(
            Row(
                mode=mode,
                phase=f"max (wrk -c{connections})",
                target=target.name,
                rps=result.rps,
                p50_ms=result.p50_ms,
                p90_ms=result.p90_ms,
                p99_ms=result.p99_ms,
                error_rate=result.error_rate,
                cpu_percent=stats.cpu_percent,
                peak_rss_mb=stats.peak_rss_mb,
            )
        )
        _print_row(rows[-1])
    return rows


def _drain(target: Target) -> None:
    waited = wait_idle(target)
    if waited > 5:
        print(f"         {target.name} worked off its backlog for {waited:.0f} s", flush=True)


def _print_row(row: Row) -> None:
    print(
        f"{row.mode:6s} {row.phase:18s} {row.target:8s} rps {row.rps:8.1f}  "
        f"p50 {row.p50_ms:8.3f}  p90 {row.p90_ms:8.3f}  p99 {row.p99_ms:8.3f} ms  "
        f"errors {100 * row.error_rate:5.2f}%  cpu {row.cpu_percent:5.1f}%  "
        f"rss {row.peak_rss_mb:6.1f} MB",
        flush=True,
    )


def print_summary(rows: list[Row]) -> list[dict[str, Any]]:
    """Print overheads and the Thrifty to LiteLLM ratios; return the ratios."""
    print("\nmode   phase              target   overhead p50 / p90 / p99 ms")
    for row in rows:
        if row.target != "direct" and row.phase.endswith("/s"):
            print(
                f"{row.mode:6s} {row.phase:18s} {row.target:8s} "
                f"{row.overhead_p50_ms:8.3f} {row.overhead_p90_ms:8.3f} {row.overhead_p99_ms:8.3f}"
            )
    ratios = []
    by_key = {(row.mode, row.phase, row.target): row for row in rows}
    print("\nratios (LiteLLM / Thrifty: above 1 means Thrifty is better)")
    for (mode, phase, target), thrifty in by_key.items():
        litellm = by_key.get((mode, phase, "litellm"))
        if target != "thrifty" or litellm is None:
            continue
        ratio: dict[str, Any] = {
            "mode": mode,
            "phase": phase,
            "overhead_p50": _ratio(litellm.overhead_p50_ms, thrifty.overhead_p50_ms),
            "overhead_p99": _ratio(litellm.overhead_p99_ms, thrifty.overhead_p99_ms),
            "throughput": _ratio(thrifty.rps, litellm.rps),
            "cpu": _ratio(litellm.cpu_percent, thrifty.cpu_percent),
            "peak_rss": _ratio(litellm.peak_rss_mb, thrifty.peak_rss_mb),
        }
        ratios.append(ratio)
        if phase.endswith("/s"):
            print(
                f"{mode:6s} {phase:18s} overhead p50 {ratio['overhead_p50']:6.1f}x  "
                f"p99 {ratio['overhead_p99']:6.1f}x  cpu {ratio['cpu']:5.1f}x  "
                f"rss {ratio['peak_rss']:4.1f}x"
            )
        else:
            print(
                f"{mode:6s} {phase:18s} throughput {ratio['throughput']:5.1f}x  "
                f"cpu per request {ratio['cpu'] * ratio['throughput']:5.1f}x"
            )
    return ratios


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500", help="fixed rates, requests a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each fixed phase")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="length of a wrk phase")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--warmup", type=int, default=300, help="requests before each phase")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        help="seconds after which a fixed-rate request counts as an error",
    )
    parser.add_argument("--modes", default="plain,stream", help="plain, stream or both")
    parser.add_argument("--targets", default="direct,thrifty,litellm")
    parser.add_argument("--litellm-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument(
        "--litellm-db",
        default=DEFAULT_LITELLM_DB,
        help="LiteLLM's own PostgreSQL database, used when its Prisma client is generated",
    )
    parser.add_argument("--no-max", action="store_true", help="skip the wrk phases")
    parser.add_argument("--json", type=Path, help="write every row and ratio to this file")
    args = parser.parse_args()

    names = args.targets.split(",")
    with Services() as services:
        sandbox = services.sandbox()
        base = sandbox.url.rsplit("/v1/", 1)[0]
        targets = [sandbox]
        how = "not run"
        if "thrifty" in names:
            targets.append(services.thrifty(base))
        if "litellm" in names:
            litellm, how = start_litellm(services, base, args.litellm_venv, args.litellm_db)
            targets.append(litellm)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        print(f"LiteLLM spend tracking: {how}")
        began = time.monotonic()
        rows: list[Row] = []
        for mode in args.modes.split(","):
            for rate in (int(value) for value in args.rates.split(",") if value):
                rows += run_fixed(mode, targets, rate, args)
            if not args.no_max:
                rows += run_max(mode, targets, args.max_seconds, args.connections)
        ratios = print_summary(with_overhead(rows))
        print(f"\ntook {time.monotonic() - began:.0f} s")
    if args.json:
        report = {"litellm_spend_tracking": how, "rows": [asdict(r) for r in rows]}
        report["ratios"] = ratios
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
