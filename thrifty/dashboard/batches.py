"""Batch jobs for the dashboard: each job's progress and what its results cost so far.

``thrifty.batch`` stores jobs, their requests and their results in the
ledger database. A job's cost is the sum of its recorded results, at batch
rates and at the synchronous rates they were compared with.
"""

from __future__ import annotations

import logging
from typing import Any

from thrifty.batch.savings import job_cost
from thrifty.batch.schema import REQUEST_FINAL_STATUSES
from thrifty.batch.store import BatchStore, Job
from thrifty.errors import BatchError
from thrifty.ledger import Ledger

logger = logging.getLogger(__name__)

MAX_JOBS = 50


def batches_view(ledger: Ledger, limit: int = MAX_JOBS) -> dict[str, Any]:
    """Return the newest batch jobs with their request counts, progress and cost."""
    store = BatchStore(ledger.engine)
    try:
        jobs = store.list_jobs(limit=limit)
        rows = [_job_row(store, ledger, job) for job in jobs]
    except BatchError as exc:
        logger.warning("could not load batch jobs for the dashboard: %s", exc)
        return {"available": False, "reason": f"could not load batch jobs: {exc}", "jobs": []}
    return {"available": True, "reason": None, "jobs": rows}


def _job_row(store: BatchStore, ledger: Ledger, job: Job) -> dict[str, Any]:
    counts = store.request_counts(job.job_id)
    done = sum(count for status, count in counts.items() if status in REQUEST_FINAL_STATUSES)
    with ledger.engine.connect() as connection:
        cost = job_cost(connection, job.job_id)
    return {
        "job_id": job.job_id,
        "name": job.name,
        "provider": job.provider,
        "status": job.status,
        "feature": job.feature,
        "team": job.team,
        "requests": job.request_count,
        "done": done,
        "progress": 0.0 if job.request_count == 0 else round(done / job.request_count, 4),
        "succeeded": counts.get("succeeded", 0),
        "failed": counts.get("failed", 0),
        "expired": counts.get("expired", 0),
        "cancelled": counts.get("cancelled", 0),
        "cost_usd": format(cost.cost_usd, "f"),
        "standard_cost_usd": format(cost.standard_cost_usd, "f"),
        "saved_usd": format(cost.savings_usd, "f"),
        "created_at": job.created_at.isoformat(),
        "ended_at": None if job.ended_at is None else job.ended_at.isoformat(),
        "message": job.message,
    }
