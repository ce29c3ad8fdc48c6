"""A gateway killed with SIGKILL under load loses and duplicates no record."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port
from thrifty.ledger import open_ledger

BODY = b'{"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}'


def _start(tmp_path: Path, port: int, db_url: str) -> subprocess.Popen[bytes]:
    thrifty = Path(sys.executable).with_name("thrifty")
    process = subprocess.Popen(
        [str(thrifty), "serve", "--sandbox", "--port", str(port), "--db", db_url],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the gateway did not start within 30 s")


async def _load(url: str, seconds: float) -> list[str]:
    """Send requests from 16 workers; return the ids of responses received in full."""
    completed: list[str] = []
    stop_at = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10) as client:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                try:
                    response = await client.post(
                        f"{url}/v1/chat/completions",
                        content=BODY,
                        headers={"authorization": "Bearer sk", "content-type": "application/json"},
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200 and response.json()["usage"]:
                    completed.append(response.headers["x-thrifty-request-id"])

        await asyncio.gather(*(worker() for _ in range(16)))
    return completed


def test_sigkill_under_load_loses_no_record(tmp_path: Path) -> None:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    process = _start(tmp_path, port, db_url)

    async def load_then_kill() -> list[str]:
        task = asyncio.ensure_future(_load(f"http://127.0.0.1:{port}", seconds=10))
        await asyncio.sleep(1.5)
        os.kill(process.pid, signal.SIGKILL)
        return await task

    completed = asyncio.run(load_then_kill())
    process.wait(timeout=10)
    assert len(completed) > 20

    restarted = _start(tmp_path, port, db_url)
    try:
        ledger = open_ledger(db_url)
        deadline = time.monotonic() + 20
        missing = set(completed)
        while missing and time.monotonic() < deadline:
            missing = {rid for rid in missing if ledger.get(rid) is None}
            time.sleep(0.1)
        total = ledger.count()
        ledger.close()
    finally:
        restarted.terminate()
        restarted.wait(timeout=20)
    assert missing == set()
    assert len(set(completed)) == len(completed)
    assert total >= len(completed)
