"""Reading a whole input file once: validate, convert, split and (optionally) estimate.

The file is streamed. Each request is checked, converted to the target
provider's line and written to its part file as it is read, so memory keeps
only the per-request index (custom_id, model and place in its part) and
never the request bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from thrifty.batch.estimate import Estimate, Estimator
from thrifty.batch.inputs import InputFormat, read_input
from thrifty.batch.limits import DEFAULT_LIMITS, BatchLimits
from thrifty.batch.split import PartFile, PartWriter
from thrifty.batch.validate import InputOptions, RequestScanner, ValidationIssue
from thrifty.config import ProviderKind


@dataclass(frozen=True, slots=True)
class RequestEntry:
    """The index entry of one request: its order, id, model and place in a part file."""

    position: int
    line: int
    custom_id: str
    model: str
    part: int
    offset: int
    length: int


@dataclass(slots=True)
class JobPlan:
    """The outcome of reading an input file.

    ``provider`` and ``input_format`` are None when no line could be read.
    The plan is submittable only when ``issues`` is empty.
    """

    provider: ProviderKind | None
    input_format: InputFormat | None
    parts: list[PartFile] = field(default_factory=list)
    requests: list[RequestEntry] = field(default_factory=list)
    issues: list[ValidationIssue] = field(default_factory=list)
    estimate: Estimate | None = None


def plan_job(
    path: Path,
    options: InputOptions,
    *,
    folder: Path | None = None,
    limits: BatchLimits | None = None,
    estimator: Estimator | None = None,
) -> JobPlan:
    """Read ``path`` and plan its parts; write the part files into ``folder`` if given.

    Problems do not stop the reading: every invalid line is in ``issues``.
    Part files are written even when there are issues; the caller discards
    them then.
    """
    scanner = RequestScanner(options)
    writer: PartWriter | None = None
    plan = JobPlan(provider=None, input_format=None)
    for line in read_input(path):
        outcome = scanner.scan(line)
        if isinstance(outcome, ValidationIssue):
            plan.issues.append(outcome)
            continue
        assert scanner.provider is not None
        if writer is None:
            part_limits = limits or DEFAULT_LIMITS[scanner.provider]
            writer = PartWriter(
                folder, scanner.provider, part_limits, split_by_model=options.split_by_model
            )
        if not writer.fits_alone(outcome.raw):
            size = len(outcome.raw)
            reason = f"the request is {size} bytes, more than one batch can hold"
            plan.issues.append(ValidationIssue(outcome.line, (reason,)))
            continue
        placed = writer.add(outcome.raw, outcome.endpoint, outcome.model)
        plan.requests.append(
            RequestEntry(
                outcome.position,
                outcome.line,
                outcome.custom_id,
                outcome.model,
                placed.part,
                placed.offset,
                placed.length,
            )
        )
        if estimator is not None:
            estimator.add(outcome)

    plan.provider = scanner.provider
    plan.input_format = scanner.input_format
    plan.parts = writer.close() if writer is not None else []
    plan.estimate = estimator.estimate if estimator is not None else None
    if not plan.requests and not plan.issues:
        plan.issues.append(ValidationIssue(0, (f"{path} has no requests",)))
    return plan
