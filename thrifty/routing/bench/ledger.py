"""Adding each benchmark answer's grade to its ledger record."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from thrifty.ledger import Ledger
from thrifty.routing.bench.results import BenchResult

logger = logging.getLogger(__name__)

DETAILS_KEY = "bench"
_POLL_S = 0.05


def annotate_grades(
    ledger: Ledger,
    results: Sequence[BenchResult],
    run_id: str,
    *,
    feature: str | None = None,
    timeout_s: float = 30.0,
) -> int:
    """Store each graded answer's grade in ``details["bench"]`` of its record.

    ``feature`` names the production feature the evaluation set stands for;
    ``thrifty advise`` compares models on that feature's traffic by it.

    The gateway writes records in batches, so a record may reach the ledger
    a moment after its response; each is waited for until ``timeout_s``
    after the first. Returns how many records were annotated.
    """
    deadline = time.monotonic() + timeout_s
    annotated = 0
    for result in results:
        if result.request_id is None:
            continue
        note = {
            "run": run_id,
            "item": result.item_id,
            "score": result.score,
            "grade": result.grade_detail,
        }
        if feature is not None:
            note["feature"] = feature
        while not ledger.annotate(result.request_id, DETAILS_KEY, note):
            if time.monotonic() > deadline:
                logger.warning(
                    "benchmark %s: request %s is not in the ledger; its grade was not stored",
                    run_id,
                    result.request_id,
                )
                break
            time.sleep(_POLL_S)
        else:
            annotated += 1
    return annotated
