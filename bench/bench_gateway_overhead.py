"""Gateway overhead: latency through Thrifty minus latency straight to the sandbox.

Starts the sandbox and the gateway as separate processes, the gateway with
its SQLite ledger and spool on as in production. Then sends the same
non-streamed chat completion at a fixed open-loop rate, first straight to the
sandbox and then through the gateway. It prints latency percentiles of both,
their difference, and the gateway's own X-Thrifty-Overhead-Ms header.

    .venv/bin/python bench/bench_gateway_overhead.py --rates 100,500 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BODY = (
    b'{"model": "gpt-4o-mini", "max_tokens": 32, "messages": ['
    b'{"role": "system", "content": "You are a helpful assistant."},'
    b'{"role": "user", "content": "Summarize the benefits of unit tests in two sentences."}]}'
)
HEADERS = {
    "authorization": "Bearer sk-bench",
    "content-type": "application/json",
    "x-thrifty-feature": "bench",
}


@dataclass
class Phase:
    latencies_ms: list[float]
    overhead_ms: list[float]
    errors: int
    achieved_rps: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _thrifty() -> str:
    return str(Path(sys.executable).with_name("thrifty"))


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with status {process.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # an HTTP error status still means the server is up
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not become healthy within 30 s")


def _start_services(workdir: Path) -> tuple[str, str, list[subprocess.Popen[bytes]]]:
    sandbox_port, gateway_port = _free_port(), _free_port()
    sandbox = subprocess.Popen(
        [_thrifty(), "sandbox", "--port", str(sandbox_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    _wait_healthy(f"{sandbox_url}/v1/models", sandbox)

    config = workdir / "thrifty.yaml"
    config.write_text(
        "providers:\n"
        f"  openai:\n    base_url: {sandbox_url}\n"
        f"  anthropic:\n    base_url: {sandbox_url}\n"
    )
    gateway = subprocess.Popen(
        [
            _thrifty(),
            "serve",
            "--port",
            str(gateway_port),
            "--config",
            str(config),
            "--db",
            f"sqlite:///{workdir / 'ledger.db'}",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    _wait_healthy(f"{gateway_url}/health", gateway)
    return sandbox_url, gateway_url, [gateway, sandbox]


async def _run_phase(url: str, rate: int, seconds: float) -> Phase:
    """Send requests at ``rate`` per second for ``seconds``, open loop."""
    total = int(rate * seconds)
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                async with session.post(url, data=BODY, headers=HEADERS) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        return
                    overhead = response.headers.get("x-thrifty-overhead-ms")
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append((time.perf_counter() - began) * 1000)
            if overhead is not None:
                overheads.append(float(overhead))

        for _ in range(min(200, total)):  # warm up connections and caches
            await one()
        latencies.clear()
        overheads.clear()

        tasks = []
        start = time.perf_counter()
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return Phase(latencies, overheads, errors, len(latencies) / wall)


def _percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _print_rate(rate: int, direct: Phase, through: Phase) -> None:
    print(f"\n== {rate} requests per second")
    print("path      p50 ms   p90 ms   p99 ms   achieved rps  errors")
    for name, phase in (("direct", direct), ("gateway", through)):
        p50, p90, p99 = (_percentile(phase.latencies_ms, percent) for percent in (50, 90, 99))
        print(
            f"{name:8s} {p50:7.3f}  {p90:7.3f}  {p99:7.3f}  "
            f"{phase.achieved_rps:12.1f}  {phase.errors}"
        )
    for percent in (50, 90, 99):
        difference = _percentile(through.latencies_ms, percent) - _percentile(
            direct.latencies_ms, percent
        )
        print(f"overhead p{percent} (gateway minus direct): {difference:.3f} ms")
    if through.overhead_ms:
        print(
            "X-Thrifty-Overhead-Ms reported by the gateway: "
            f"p50 {_percentile(through.overhead_ms, 50):.3f} ms, "
            f"p99 {_percentile(through.overhead_ms, 99):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,500", help="comma-separated requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as folder:
        sandbox_url, gateway_url, processes = _start_services(Path(folder))
        try:
            print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
            for rate in (int(value) for value in args.rates.split(",")):
                direct = asyncio.run(
                    _run_phase(f"{sandbox_url}/v1/chat/completions", rate, args.seconds)
                )
                through = asyncio.run(
                    _run_phase(f"{gateway_url}/v1/chat/completions", rate, args.seconds)
                )
                _print_rate(rate, direct, through)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


if __name__ == "__main__":
    main()
