"""Compare async HTTP clients as the gateway's upstream client.

Starts a minimal uvicorn server on loopback that returns a fixed chat
completion body, then sends the same POST requests through httpx and aiohttp
at a fixed concurrency and prints per-request latency percentiles and
throughput for each.

    .venv/bin/python bench/bench_http_clients.py [--requests 5000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import statistics
import time
from collections.abc import Awaitable, Callable

BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "x" * 200},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 50, "total_tokens": 70},
    }
).encode()
REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi" * 100}]}
).encode()


def _serve(port: int) -> None:
    import uvicorn

    async def app(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _drive(
    send_one: Callable[[], Awaitable[None]], total: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(total))

    async def worker() -> None:
        for _ in queue:
            start = time.perf_counter()
            await send_one()
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return {"p50_ms": quantiles[49], "p99_ms": quantiles[98], "rps": total / wall}


async def _bench_httpx(url: str, total: int, concurrency: int) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send_one() -> None:
            response = await client.post(
                url, content=REQUEST, headers={"content-type": "application/json"}
            )
            await response.aread()

        await _drive(send_one, 200, concurrency)
        return await _drive(send_one, total, concurrency)


async def _bench_aiohttp(url: str, total: int, concurrency: int) -> dict[str, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send_one() -> None:
            async with session.post(
                url, data=REQUEST, headers={"content-type": "application/json"}
            ) as response:
                await response.read()

        await _drive(send_one, 200, concurrency)
        return await _drive(send_one, total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    time.sleep(1.5)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        import uvloop

        for name, bench in (("httpx", _bench_httpx), ("aiohttp", _bench_aiohttp)):
            result = uvloop.run(bench(url, args.requests, args.concurrency))
            print(
                f"{name:8s} p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                f"{result['rps']:.0f} req/s"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
