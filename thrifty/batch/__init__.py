"""Batch jobs on OpenAI's Batch API and Anthropic's Message Batches.

``BatchManager`` submits an input file as one job, validated, converted and
split at the providers' limits. It follows the job's parts, resubmits the
requests that expired or failed with a retryable error, and records every
result in the ledger at batch rates; ``collect`` writes the results in
input order::

    from pathlib import Path

    from thrifty.batch import BatchManager, JobOptions
    from thrifty.config import load_config

    provider = load_config(None).provider_for_kind("openai")
    with BatchManager("sqlite:///.thrifty/thrifty.db") as manager:
        job = manager.submit(Path("questions.jsonl"), provider, JobOptions(name="tickets")).job
        manager.wait(job.job_id)
        manager.collect(job.job_id, Path("questions.results.jsonl"))
"""

from __future__ import annotations

from thrifty.batch.limits import DEFAULT_LIMITS, BatchLimits
from thrifty.batch.manager import BatchManager, JobOptions, JobStatus
from thrifty.batch.plan import JobPlan, plan_job
from thrifty.batch.results import CollectSummary
from thrifty.batch.store import Job, Part
from thrifty.batch.validate import InputOptions, ValidationIssue

__all__ = [
    "DEFAULT_LIMITS",
    "BatchLimits",
    "BatchManager",
    "CollectSummary",
    "InputOptions",
    "Job",
    "JobOptions",
    "JobPlan",
    "JobStatus",
    "Part",
    "ValidationIssue",
    "plan_job",
]
