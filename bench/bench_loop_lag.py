"""The two event-loop pauses that ``thrifty.gateway.runtime.tune_runtime`` shortens.

1. GIL hand-over: the gateway's ledger writer converts and inserts records in
   a worker thread. While that thread holds the GIL, the event loop waits up
   to the switch interval before it may run again. A thread burns CPU in
   Python code while the loop sleeps 0.2 ms at a time, and each wake-up's
   delay is recorded, for several switch intervals.
2. Full garbage collection: the time of ``gc.collect()`` in a process with a
   started gateway app (price catalog, token encodings, routes), before and
   after ``gc.freeze()``.

    .venv/bin/python bench/bench_loop_lag.py --intervals 5,1,0.5 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import threading
import time
from pathlib import Path


def _burn(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(index * index for index in range(20_000))


async def _lags(seconds: float, tick_s: float) -> list[float]:
    lags = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        began = time.perf_counter()
        await asyncio.sleep(tick_s)
        lags.append((time.perf_counter() - began - tick_s) * 1000)
    return sorted(lags)


def measure(interval_ms: float, seconds: float, tick_s: float) -> list[float]:
    """Return the sorted lags (ms) of the loop's wake-ups with a busy thread beside it."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(interval_ms / 1000)
    stop = threading.Event()
    thread = threading.Thread(target=_burn, args=(stop,))
    thread.start()
    try:
        return asyncio.run(_lags(seconds, tick_s))
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(previous)


def full_collection_ms(rounds: int = 5) -> tuple[int, float]:
    """Return the objects the collector tracks and the fastest ``gc.collect()`` in ms."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - began) * 1000)
    return len(gc.get_objects()), min(times)


def gc_pauses() -> None:
    from starlette.testclient import TestClient

    from thrifty.config import load_config
    from thrifty.gateway.app import create_app

    with tempfile.TemporaryDirectory(prefix="thrifty-bench-") as folder:
        config = load_config(None, db_url=f"sqlite:///{Path(folder) / 'ledger.db'}")
        app = create_app(config)
        with TestClient(app):  # runs the start-up: ledger, encodings, price catalog
            tracked, before = full_collection_ms()
            gc.freeze()
            frozen = gc.get_freeze_count()
            _, after = full_collection_ms()
            gc.unfreeze()
    print(f"full collection with a started gateway: {before:.1f} ms over {tracked} objects")
    print(f"after gc.freeze() of {frozen} objects: {after:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="5,1,0.5", help="switch intervals in ms")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    args = parser.parse_args()
    print("switch interval   lag p50    lag p99    lag max   wake-ups")
    for interval in (float(value) for value in args.intervals.split(",")):
        lags = measure(interval, args.seconds, 0.0002)
        p50, p99 = lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
        print(f"{interval:10.1f} ms {p50:8.3f} ms {p99:8.3f} ms {lags[-1]:8.3f} ms {len(lags):8d}")
    gc_pauses()


if __name__ == "__main__":
    main()
