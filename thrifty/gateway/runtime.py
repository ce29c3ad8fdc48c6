"""Interpreter settings for a gateway process, applied once it has started.

Two kinds of pause add to a request's latency in a busy gateway:

- the cyclic garbage collector, which by default runs a young collection every
  700 allocations and now and then a full one over every object the process
  holds (the imported modules, the price catalog, the token encodings);
- the GIL hand-over: the ledger writer's thread converts and inserts batches
  of records, and while it holds the GIL the event loop waits for the switch
  interval (5 ms by default) before it may run again.

``tune_runtime`` moves every object alive after start-up out of the
collector's sight (``gc.freeze``), makes young collections rarer, and
shortens the switch interval. The requests' own objects are mostly freed by
reference counting, so the collector has little to find among them.
"""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Collector thresholds (young, middle, old generation) and the GIL switch interval."""

    gc_thresholds: tuple[int, int, int] = (20_000, 20, 40)
    switch_interval_s: float = 0.0005


def tune_runtime(settings: RuntimeSettings | None = None) -> None:
    """Freeze the start-up objects and apply ``settings`` to this process."""
    settings = settings or RuntimeSettings()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*settings.gc_thresholds)
    sys.setswitchinterval(settings.switch_interval_s)
    logger.debug(
        "runtime tuned: %d objects frozen, gc thresholds %s, switch interval %.4f s",
        gc.get_freeze_count(),
        settings.gc_thresholds,
        settings.switch_interval_s,
    )
