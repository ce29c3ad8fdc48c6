"""Shared parts of the gateway benchmarks: targets, a virtual key, load and process stats.

The benchmarks start every server as a separate process on loopback, so the
load generator, the gateway and the upstream each show up as their own
process, and the gateway is measured as it runs in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

MASTER_KEY = "sk-bench-master-0123456789"
MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarize the benefits of unit tests in two sentences."},
]
MAX_TOKENS = 32


def request_body(*, stream: bool) -> bytes:
    """Return the chat completion body that every target gets, streamed or not."""
    body: dict[str, Any] = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": MESSAGES}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def thrifty_command() -> str:
    return str(Path(sys.executable).with_name("thrifty"))


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    """Wait until ``url`` responds (any HTTP status counts), or fail if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not respond within {timeout_s:.0f} s")


@dataclass
class Target:
    """One server under test: its chat completions URL, the key to use and its process."""

    name: str
    url: str
    api_key: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}", "content-type": "application/json"}


class Services:
    """Processes started for a benchmark, stopped (by their own pids) on exit."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._temp = None if workdir else tempfile.TemporaryDirectory(prefix="thrifty-bench-")
        self.workdir = workdir or Path(self._temp.name if self._temp else ".")
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        if self._temp is not None:
            self._temp.cleanup()

    def start(
        self, name: str, command: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(command),
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def log_tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self.processes:
            self.processes.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.processes)):
            self.stop(process)

    def sandbox(self) -> Target:
        port = free_port()
        process = self.start("sandbox", [thrifty_command(), "sandbox", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/v1/models", process)
        return Target("direct", f"{url}/v1/chat/completions", "sk-sandbox", process)

    def thrifty(
        self,
        sandbox_base: str,
        *,
        workers: int = 1,
        redis_url: str | None = None,
        redis_prefix: str = "thrifty-bench:",
        db_url: str | None = None,
        budget_usd: str = "1000000",
        name: str = "thrifty",
    ) -> Target:
        """Start ``thrifty serve`` with metering, records and a budget on a virtual key."""
        port = free_port()
        config = self.workdir / f"{name}.yaml"
        control = (
            f"  redis:\n    url: {redis_url}\n    prefix: '{redis_prefix}'\n" if redis_url else ""
        )
        config.write_text(
            "providers:\n"
            f"  openai:\n    base_url: {sandbox_base}\n    api_key_env: BENCH_PROVIDER_KEY\n"
            f"gateway:\n  spool_dir: {self.workdir / (name + '-spool')}\n"
            f"control:\n  refresh_interval_s: 0.5\n{control}"
        )
        db = db_url or f"sqlite:///{self.workdir / (name + '-ledger.db')}"
        command = [thrifty_command(), "serve", "--port", str(port), "--config", str(config)]
        command += ["--db", db]
        if workers != 1:
            command += ["--workers", str(workers)]
        env = {"THRIFTY_MASTER_KEY": MASTER_KEY, "BENCH_PROVIDER_KEY": "sk-sandbox"}
        process = self.start(name, command, env)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{url}/health", process)
        key = create_budgeted_key(url, budget_usd)
        return Target("thrifty", f"{url}/v1/chat/completions", key, process)


def create_budgeted_key(gateway_url: str, budget_usd: str) -> str:
    """Create a virtual key with a lifetime budget through the admin API; return its secret."""
    body = orjson.dumps(
        {"name": "bench", "budgets": [{"limit_usd": budget_usd, "period": "lifetime"}]}
    )
    request = urllib.request.Request(
        f"{gateway_url}/thrifty/admin/keys",
        data=body,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = orjson.loads(response.read())
    secret = answer["key"]
    assert isinstance(secret, str)
    return secret


# -- process statistics -------------------------------------------------------------------


@dataclass
class ProcessStats:
    """CPU seconds and memory of a process tree (a server and its workers) over a phase."""

    cpu_s: float = 0.0
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s else float("nan")


# Read from /proc (Linux), so the benchmarks need no extra package.
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (a supervisor and its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2 :].split()[1])
            parents.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += parents.get(current, [])
    return found


def tree_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process tree."""
    total = 0.0
    for member in _tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process tree, in MiB."""
    total = 0
    for member in _tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * _PAGE
    return total / 2**20


class StatsSampler:
    """Sample a process tree's RSS every ``interval_s`` while a phase runs, in a thread."""

    def __init__(self, pid: int | None, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.stats = ProcessStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = 0.0
        self._cpu0 = 0.0

    def __enter__(self) -> StatsSampler:
        if self.pid is not None:
            self._began = time.perf_counter()
            self._cpu0 = tree_cpu_s(self.pid)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid is None:
            return
        self._stop.set()
        self._thread.join()
        self.stats.wall_s = time.perf_counter() - self._began
        self.stats.cpu_s = tree_cpu_s(self.pid) - self._cpu0

    def restart(self) -> None:
        """Start the measurement again from now (after a warm-up, say)."""
        if self.pid is not None:
            self._began = time.perf_counter()
            self._cpu0 = tree_cpu_s(self.pid)
            self.stats.rss_samples.clear()
            self.stats.peak_rss_mb = 0.0

    def _run(self) -> None:
        assert self.pid is not None
        while not self._stop.is_set():
            rss = tree_rss_mb(self.pid)
            self.stats.rss_samples.append((time.perf_counter() - self._began, rss))
            self.stats.peak_rss_mb = max(self.stats.peak_rss_mb, rss)
            self._stop.wait(self.interval_s)


# -- open-loop load at a fixed rate (Python, aiohttp) -------------------------------------


@dataclass
class Phase:
    """Client-side measurements of one load phase."""

    latencies_ms: list[float]
    errors: int
    sent: int
    wall_s: float

    @property
    def achieved_rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.sent if self.sent else 0.0


def percentile(values: Sequence[float], percent: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(percent * 10) - 1]


async def open_loop(
    target: Target,
    body: bytes,
    rate: float,
    seconds: float,
    *,
    warmup: int = 200,
    request_timeout_s: float = 10.0,
    max_connections: int = 1000,
    after_warmup: Callable[[], None] | None = None,
) -> Phase:
    """Send ``rate`` requests a second for ``seconds``, each at its scheduled time.

    Open loop: a slow answer does not delay the next request, so queueing in
    the server shows up in the latencies (no coordinated omission). The
    latency of a request runs from its scheduled start to its last byte. A
    request not answered within ``request_timeout_s`` (waiting for one of the
    ``max_connections`` included) counts as an error, which bounds the phase
    at ``seconds`` plus that timeout when the target cannot keep up.
    """
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=max_connections)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, keep: bool) -> None:
            nonlocal errors
            try:
                async with session.post(target.url, data=body, headers=target.headers) as reply:
                    await reply.read()
                    ok = reply.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if not keep:
                return
            if ok:
                latencies.append((time.perf_counter() - scheduled) * 1000)
            else:
                errors += 1

        for _ in range(warmup):  # open connections, fill caches
            await one(time.perf_counter(), False)
        await asyncio.gather(*(one(time.perf_counter(), False) for _ in range(min(64, warmup))))
        if after_warmup is not None:
            after_warmup()
        tasks = []
        start = time.perf_counter()
        for index in range(total):
            scheduled = start + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(scheduled, True)))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return Phase(latencies, errors, total, wall)


def run_async(coroutine: Any) -> Any:
    """Run a coroutine on uvloop when it is installed (a cheaper client loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- closed-loop maximum throughput (wrk) -------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    output: str

    @property
    def error_rate(self) -> float:
        total = self.requests + self.socket_errors
        return (self.non_2xx + self.socket_errors) / total if total else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    target: Target, body: bytes, *, seconds: float, connections: int, threads: int = 1
) -> WrkResult:
    """Run wrk against ``target`` with a Lua script that POSTs ``body``."""
    if not wrk_available():
        raise SystemExit("wrk is not installed; install it with: apt-get install -y wrk")
    lua_body = "[[" + body.decode() + "]]"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.format(body=lua_body, key=target.api_key))
    try:
        completed = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "--timeout",
                "30s",
                "-s",
                script.name,
                target.url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        os.unlink(script.name)
    return parse_wrk(completed.stdout + completed.stderr, seconds)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\b", text, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def parse_wrk(text: str, seconds: float) -> WrkResult:
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    requests = int(done.group(1)) if done else 0
    took = float(done.group(2)) if done else seconds
    if done and done.group(3) == "ms":
        took /= 1000
    elif done and done.group(3) == "m":
        took *= 60
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        requests=requests,
        seconds=took,
        rps=requests / took if took else 0.0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(value) for value in errors.groups()) if errors else 0,
        p50_ms=_wrk_ms(text, "50%"),
        p90_ms=_wrk_ms(text, "90%"),
        p99_ms=_wrk_ms(text, "99%"),
        output=text,
    )


def wait_idle(target: Target, *, below: float = 0.1, max_s: float = 120.0) -> float:
    """Wait until the target's process tree uses less than ``below`` of a core over 1 s.

    A target that fell behind keeps working on requests whose clients gave
    up, and that backlog would slow the next phase. Returns the seconds
    waited; gives up after ``max_s``.
    """
    if target.process is None:
        return 0.0
    began = time.monotonic()
    while time.monotonic() - began < max_s:
        before = tree_cpu_s(target.process.pid)
        time.sleep(1.0)
        if tree_cpu_s(target.process.pid) - before < below:
            break
    return time.monotonic() - began


@contextlib.contextmanager
def phase_stats(target: Target, interval_s: float = 0.5) -> Iterator[StatsSampler]:
    """Sample the target's process tree during a phase; ``.stats`` fills in on exit."""
    pid = target.process.pid if target.process is not None else None
    with StatsSampler(pid, interval_s) as sampler:
        yield sampler
