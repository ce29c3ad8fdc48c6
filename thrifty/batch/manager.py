"""The batch manager: submit a job, follow it to the end, and collect its results.

A job goes through these steps, each safe to repeat after a crash:

1. ``submit`` validates and splits the input into part files in the job's
   folder, stores the job, and sends each part to the provider;
2. ``refresh`` (run by ``wait`` and ``status``) polls the parts. The
   results of a part that ended are downloaded, written to the job's folder
   and recorded in the ledger at batch rates;
3. requests that expired or failed with a retryable error are resubmitted
   in a new part once every part of the round has ended, for at most
   ``max_rounds`` rounds and until the job's deadline;
4. ``collect`` writes every result in input order.

Each ledger record's id is ``PROVIDER_BATCH_ID:CUSTOM_ID`` and the ledger
skips ids it has, so recording a part twice after a crash adds nothing.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from thrifty.batch.estimate import Estimator
from thrifty.batch.limits import DEFAULT_LIMITS, BatchLimits
from thrifty.batch.plan import JobPlan, plan_job
from thrifty.batch.providers import BatchApi, ProviderBatch, ResultLine, api_for
from thrifty.batch.records import ResultPricer, result_record
from thrifty.batch.results import (
    CollectSummary,
    LineFiles,
    collected_lines,
    encode_result,
    result_status,
)
from thrifty.batch.savings import JobCost, job_cost
from thrifty.batch.schema import REQUEST_FINAL_STATUSES
from thrifty.batch.split import PartFile, PartWriter
from thrifty.batch.store import BatchStore, Job, Part, RequestRow, RequestUpdate
from thrifty.batch.validate import InputOptions
from thrifty.config import ProviderConfig
from thrifty.errors import BatchError, BatchInputError, BatchRejectedError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.record import RequestRecord
from thrifty.pricing.engine import CostEngine

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path(".thrifty") / "batches"
DEFAULT_MAX_ROUNDS = 3
DEFAULT_DEADLINE = timedelta(hours=72)
DEFAULT_POLL_INTERVAL_S = 15.0
# How long a process's claim on a job lasts; it is renewed on every refresh.
DEFAULT_LEASE_S = 300.0
_RECORD_CHUNK = 1000
_ACTIVE_PART_STATES = ("pending", "uploaded", "sending", "submitted", "ended")


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Everything about a job besides its input file and provider.

    ``deadline`` bounds how long after submission failed requests are
    resubmitted. ``metadata`` is sent with each OpenAI batch. ``limits``
    replaces the provider's batch limits (smaller limits split sooner).
    """

    name: str | None = None
    input: InputOptions = field(default_factory=InputOptions)
    max_rounds: int = DEFAULT_MAX_ROUNDS
    deadline: timedelta | None = DEFAULT_DEADLINE
    team: str | None = None
    project: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    limits: BatchLimits | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job as stored now: its parts, its requests by status, progress and cost so far.

    ``done`` counts requests with a final result plus results the provider
    reports for parts not yet collected. ``eta_s`` extrapolates the rate
    since submission; it is None until something is done.
    """

    job: Job
    parts: list[Part]
    counts: Counter[str]
    done: int
    total: int
    eta_s: float | None
    cost: JobCost


ApiFactory = Callable[[Job], BatchApi]


class BatchManager:
    """Submits, follows and collects batch jobs whose state is in a ledger database.

    ``root`` is the folder where each job's part and result files are kept.
    ``api_factory`` returns the provider API for a job (the default reads
    the provider key from the job's ``api_key_env``).
    """

    def __init__(
        self,
        db_url: str,
        *,
        root: Path = DEFAULT_ROOT,
        engine: CostEngine | None = None,
        api_factory: ApiFactory | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        ledger: Ledger | None = None,
    ) -> None:
        self.ledger = ledger or open_ledger(db_url)
        self._owns_ledger = ledger is None
        self.store = BatchStore(self.ledger.engine)
        self.engine = engine or CostEngine()
        self.pricer = ResultPricer(self.engine)
        self.root = root
        self.lease_s = lease_s
        self._api_factory = api_factory or (lambda job: api_for(job.provider_config()))
        self._apis: dict[str, BatchApi] = {}

    def close(self) -> None:
        for api in self._apis.values():
            api.close()
        self._apis.clear()
        if self._owns_ledger:
            self.ledger.close()

    def __enter__(self) -> BatchManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Planning ---------------------------------------------------------------

    def validate(
        self, path: Path, options: InputOptions, limits: BatchLimits | None = None
    ) -> JobPlan:
        """Check an input file without writing anything; the plan lists every problem."""
        return plan_job(path, options, limits=limits)

    def estimate(
        self,
        path: Path,
        provider: ProviderConfig,
        options: InputOptions,
        *,
        average_output_tokens: int | None = None,
        limits: BatchLimits | None = None,
    ) -> JobPlan:
        """Check an input file and estimate its cost at batch and synchronous rates."""
        estimator = Estimator(self.engine, provider.price_provider, average_output_tokens)
        options = replace(options, provider=provider.kind)
        return plan_job(path, options, limits=limits, estimator=estimator)

    # Submission -------------------------------------------------------------

    def submit(self, path: Path, provider: ProviderConfig, options: JobOptions) -> JobStatus:
        """Validate, split and store a job, then send its parts.

        Raises BatchInputError listing every invalid line; nothing is sent then.
        """
        job_id = "job_" + uuid.uuid4().hex[:16]
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=False)
        input_options = replace(options.input, provider=provider.kind)
        limits = options.limits or DEFAULT_LIMITS[provider.kind]
        plan = plan_job(path, input_options, folder=folder, limits=limits)
        if plan.issues:
            shutil.rmtree(folder, ignore_errors=True)
            raise BatchInputError(str(path), [str(issue) for issue in plan.issues])

        now = datetime.now(UTC)
        job = Job(
            job_id=job_id,
            source="manager",
            status="submitting",
            provider=provider.name,
            provider_kind=provider.kind,
            base_url=provider.base_url,
            api_key_env=provider.api_key_env,
            pricing_provider=provider.pricing_provider,
            request_count=len(plan.requests),
            created_at=now,
            updated_at=now,
            max_rounds=options.max_rounds,
            name=options.name,
            input_path=str(path.resolve()),
            work_dir=str(folder.resolve()),
            deadline_at=None if options.deadline is None else now + options.deadline,
            team=options.team,
            project=options.project,
            user=options.user,
            feature=options.feature,
            session=options.session,
            tags=dict(options.tags),
            options={
                "metadata": dict(options.metadata),
                "limits": [limits.max_requests, limits.max_bytes],
                "split_by_model": input_options.split_by_model,
            },
        )
        parts = [_new_part(job_id, part, 0, now) for part in plan.parts]
        requests = [
            RequestRow(
                custom_id=entry.custom_id,
                position=entry.position,
                line=entry.line,
                model=entry.model,
                status="pending",
                attempts=0,
                part_id=_part_id(job_id, entry.part),
                source_part_id=_part_id(job_id, entry.part),
                source_offset=entry.offset,
                source_length=entry.length,
            )
            for entry in plan.requests
        ]
        self.store.create_job(job, parts, requests)
        logger.info(
            "job %s: %d requests in %d parts for %s",
            job_id,
            len(requests),
            len(parts),
            provider.name,
        )
        return self.refresh(job_id)

    def watch(
        self,
        provider: ProviderConfig,
        batch: ProviderBatch,
        endpoint: str,
        *,
        team: str | None = None,
        project: str | None = None,
        user: str | None = None,
        feature: str | None = None,
        session: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Job:
        """Start following a batch a client created itself, so its results get recorded."""
        now = datetime.now(UTC)
        job = Job(
            job_id="job_" + uuid.uuid4().hex[:16],
            source="gateway",
            status="in_progress",
            provider=provider.name,
            provider_kind=provider.kind,
            base_url=provider.base_url,
            api_key_env=provider.api_key_env,
            pricing_provider=provider.pricing_provider,
            request_count=batch.total,
            created_at=now,
            updated_at=now,
            max_rounds=0,
            team=team,
            project=project,
            user=user,
            feature=feature,
            session=session,
            tags=dict(tags or {}),
        )
        part = Part(
            part_id=_part_id(job.job_id, 1),
            job_id=job.job_id,
            sequence=1,
            round=0,
            endpoint=endpoint,
            request_count=batch.total,
            state="submitted",
            created_at=now,
            model=batch.model,
            provider_status=batch.status,
            provider_batch_id=batch.id,
            submitted_at=now,
        )
        self.store.create_job(job, [part], [])
        logger.info("job %s: watching %s batch %s", job.job_id, provider.name, batch.id)
        return job

    # Following --------------------------------------------------------------

    def refresh(self, job_id: str) -> JobStatus:
        """Move a job forward once (send, poll, record, resubmit) and return its status.

        When another live process has claimed the job, only its stored status is returned.
        """
        with self.store.claim(job_id, lease_s=self.lease_s) as claimed:
            if claimed:
                job = self.store.require_job(job_id)
                if not job.final:
                    self._step(job)
        return self.status(job_id)

    def wait(
        self,
        job_id: str,
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        timeout_s: float | None = None,
        on_update: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """Refresh a job until it is final; raise BatchError if ``timeout_s`` passes first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                status = self.refresh(job_id)
            except BatchError as exc:
                if isinstance(exc, BatchRejectedError):
                    raise
                logger.warning("job %s: refresh failed, retrying at the next poll: %s", job_id, exc)
                status = self.status(job_id)
            if on_update is not None:
                on_update(status)
            if status.job.final:
                return status
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise BatchError(
                    f"job {job_id} is still {status.job.status} after {timeout_s:g} s; "
                    f"run `thrifty batch wait {job_id}` again to keep waiting"
                )
            time.sleep(poll_interval_s if remaining is None else min(poll_interval_s, remaining))

    def cancel(self, job_id: str) -> JobStatus:
        """Cancel a job: its provider batches are cancelled and nothing is resubmitted."""
        job = self.store.require_job(job_id)
        if job.final:
            return self.status(job_id)
        self.store.update_job(job_id, status="cancelling")
        api = self._api(job)
        for part in self.store.parts(job_id):
            if part.state == "submitted" and part.provider_batch_id is not None:
                try:
                    api.cancel(part.provider_batch_id)
                except BatchRejectedError as exc:
                    logger.warning(
                        "job %s: cancelling part %s failed: %s", job_id, part.part_id, exc
                    )
        return self.refresh(job_id)

    def status(self, job_id: str) -> JobStatus:
        """Return a job's stored status without contacting the provider."""
        job = self.store.require_job(job_id)
        parts = self.store.parts(job_id)
        counts = self.store.request_counts(job_id)
        with self.ledger.engine.connect() as connection:
            cost = job_cost(connection, job_id)
        if job.source == "gateway":
            done = sum(part.processed_count for part in parts)
        else:
            final = sum(counts[name] for name in REQUEST_FINAL_STATUSES)
            in_flight = sum(
                part.processed_count for part in parts if part.state in ("submitted", "ended")
            )
            done = min(job.request_count, final + in_flight)
        return JobStatus(job, parts, counts, done, job.request_count, _eta(job, done), cost)

    def list_jobs(self, limit: int = 20) -> list[Job]:
        return self.store.list_jobs(limit=limit)

    # Collecting -------------------------------------------------------------

    def collect(self, job_id: str, output: Path, *, partial: bool = False) -> CollectSummary:
        """Write every request's result to ``output`` in input order.

        Raises BatchError while the job is not final, unless ``partial``, which
        writes the requests still running with status ``pending`` or ``submitted``.
        """
        status = self.refresh(job_id)
        job = status.job
        if not job.final and not partial:
            raise BatchError(
                f"job {job_id} is still {job.status} ({status.done} of {status.total} done); "
                f"wait for it with `thrifty batch wait {job_id}`, or pass --partial"
            )
        if job.work_dir is None:
            raise BatchError(
                f"job {job_id} was submitted by a client through the gateway; its results are "
                "in the ledger (thrifty report --by batch), and its files at the provider"
            )
        counts: Counter[str] = Counter()
        files = LineFiles()
        temporary = output.with_name(output.name + ".partial")
        try:
            with temporary.open("wb") as handle:
                lines = collected_lines(self.store.iter_requests(job_id), _results_dir(job), files)
                for request_status, line in lines:
                    handle.write(line + b"\n")
                    counts[request_status] += 1
        finally:
            files.close()
        temporary.replace(output)
        logger.info("job %s: wrote %d results to %s", job_id, sum(counts.values()), output)
        return CollectSummary(output, counts)

    # One step of a job ------------------------------------------------------

    def _step(self, job: Job) -> None:
        api = self._api(job)
        for part in self.store.parts(job.job_id):
            if job.status == "cancelling" and part.state in ("pending", "uploaded"):
                self._drop_unsent(job, part)
                continue
            if part.state in ("pending", "uploaded", "sending"):
                self._send(job, part, api)
            if part.state == "submitted":
                self._poll(part, api)
            if part.state == "ended":
                self._record(job, part, api)
        self._next_round_or_finish(job)

    def _send(self, job: Job, part: Part, api: BatchApi) -> None:
        assert part.file_path is not None, "only manager jobs have parts to send"
        path = Path(part.file_path)
        metadata = {
            **job.options.get("metadata", {}),
            "thrifty_job": job.job_id,
            "thrifty_part": part.part_id,
        }
        try:
            batch = api.find("thrifty_part", part.part_id) if part.state != "pending" else None
            if batch is None:
                if part.provider_file_id is None:
                    file_id = api.upload(path)
                    self._update_part(part, state="uploaded", provider_file_id=file_id or None)
                self._update_part(part, state="sending")
                batch = api.create(path, part.provider_file_id or "", part.endpoint, metadata)
        except BatchRejectedError as exc:
            self._reject_part(job, part, str(exc))
            return
        now = datetime.now(UTC)
        self._update_part(
            part,
            state="submitted",
            provider_batch_id=batch.id,
            provider_status=batch.status,
            submitted_at=now,
        )
        self.store.mark_submitted(job.job_id, part.part_id)
        logger.info("job %s: part %s sent as batch %s", job.job_id, part.part_id, batch.id)

    def _poll(self, part: Part, api: BatchApi) -> None:
        assert part.provider_batch_id is not None
        batch = api.retrieve(part.provider_batch_id)
        values: dict[str, Any] = {
            "provider_status": batch.status,
            "processed_count": batch.processed,
        }
        if batch.ended:
            values.update(
                state="ended",
                ended_at=batch.ended_at or datetime.now(UTC),
                output_file_id=batch.output_file_id,
                error_file_id=batch.error_file_id,
                results_url=batch.results_url,
                message="; ".join(batch.errors) or None,
            )
            logger.info("job %s: batch %s ended %s", part.job_id, batch.id, batch.status)
        self._update_part(part, **values)

    def _record(self, job: Job, part: Part, api: BatchApi) -> None:
        """Read an ended part's results into its results file, the ledger and the requests."""
        assert part.provider_batch_id is not None
        batch = ProviderBatch(
            id=part.provider_batch_id,
            status=part.provider_status or "",
            ended=True,
            total=part.request_count,
            processed=part.processed_count,
            output_file_id=part.output_file_id,
            error_file_id=part.error_file_id,
            results_url=part.results_url,
        )
        waiting = {
            row.custom_id: row for row in self.store.requests(job.job_id, part_id=part.part_id)
        }
        results_path = None if job.work_dir is None else _results_dir(job) / f"{part.part_id}.jsonl"
        recorder = _PartRecorder(self, job, part, results_path)
        try:
            for result in api.results(batch):
                row = waiting.pop(result.custom_id, None)
                if row is None and job.source == "manager":
                    logger.warning(
                        "job %s: batch %s returned custom_id %r, which it was not sent; skipped",
                        job.job_id,
                        batch.id,
                        result.custom_id,
                    )
                    continue
                recorder.add(result, row)
            for row in waiting.values():
                recorder.add(_missing_result(row.custom_id, part), row)
        finally:
            recorder.close()
        self.store.record_results(part.part_id, recorder.updates, {"state": "collected"})
        part.state = "collected"
        logger.info("job %s: recorded %d results of batch %s", job.job_id, recorder.count, batch.id)

    def _next_round_or_finish(self, job: Job) -> None:
        parts = self.store.parts(job.job_id)
        if any(part.state in _ACTIVE_PART_STATES for part in parts):
            return
        retry = self.store.requests(job.job_id, status="retry")
        now = datetime.now(UTC)
        can_retry = job.status != "cancelling" and (
            job.deadline_at is None or now < job.deadline_at
        )
        eligible = [row for row in retry if can_retry and row.attempts <= job.max_rounds]
        if eligible:
            self._resubmit(job, eligible, parts)
            return
        if retry:
            self.store.finalize_requests(
                job.job_id, {row.custom_id: _final_status(row, job) for row in retry}
            )
        status = "cancelled" if job.status == "cancelling" else "completed"
        self.store.update_job(job.job_id, status=status, ended_at=now)
        job.status = status
        logger.info("job %s: %s", job.job_id, status)

    def _resubmit(self, job: Job, rows: Sequence[RequestRow], parts: Sequence[Part]) -> None:
        """Copy the requests to retry from their first part files into new parts, and send those."""
        assert job.work_dir is not None
        round_number = job.round + 1
        limits = BatchLimits(*job.options["limits"])
        writer = PartWriter(
            Path(job.work_dir),
            job.provider_kind,
            limits,
            split_by_model=bool(job.options.get("split_by_model")),
            first_sequence=max(part.sequence for part in parts) + 1,
        )

        by_id = {part.part_id: part for part in parts}
        files = LineFiles()
        assignments: dict[int, list[str]] = {}
        try:
            for row in rows:
                source = by_id[row.source_part_id]
                assert source.file_path is not None
                raw = files.read(Path(source.file_path), row.source_offset, row.source_length)
                placed = writer.add(raw, source.endpoint, row.model or "")
                assignments.setdefault(placed.part, []).append(row.custom_id)
        finally:
            files.close()
            planned = writer.close()

        now = datetime.now(UTC)
        new_parts = [_new_part(job.job_id, part, round_number, now) for part in planned]
        self.store.add_parts(
            new_parts,
            {_part_id(job.job_id, sequence): ids for sequence, ids in assignments.items()},
        )
        self.store.update_job(job.job_id, round=round_number, status="in_progress")
        job.round = round_number

        logger.info(
            "job %s: round %d resubmits %d requests in %d parts",
            job.job_id,
            round_number,
            len(rows),
            len(new_parts),
        )
        for part in new_parts:
            self._send(job, part, self._api(job))

    def _drop_unsent(self, job: Job, part: Part) -> None:
        rows = self.store.requests(job.job_id, part_id=part.part_id)
        self.store.finalize_requests(
            job.job_id, dict.fromkeys((row.custom_id for row in rows), "cancelled")
        )
        self._update_part(part, state="collected", message="cancelled before it was sent")

    def _reject_part(self, job: Job, part: Part, message: str) -> None:
        logger.error("job %s: the provider rejected part %s: %s", job.job_id, part.part_id, message)
        rows = self.store.requests(job.job_id, part_id=part.part_id)
        self.store.finalize_requests(
            job.job_id, dict.fromkeys((row.custom_id for row in rows), "failed")
        )
        self._update_part(part, state="failed", message=message)
        self.store.update_job(job.job_id, message=message)

    def _update_part(self, part: Part, **values: Any) -> None:
        self.store.update_part(part.part_id, **values)
        for name, value in values.items():
            setattr(part, name, value)

    def _api(self, job: Job) -> BatchApi:
        api = self._apis.get(job.job_id)
        if api is None:
            api = self._apis[job.job_id] = self._api_factory(job)
        return api

    def write_records(self, records: Sequence[RequestRecord]) -> None:
        for start in range(0, len(records), _RECORD_CHUNK):
            self.ledger.write(records[start : start + _RECORD_CHUNK])


class _PartRecorder:
    """Collect one part's results: ledger records, results-file lines and request updates."""

    def __init__(
        self, manager: BatchManager, job: Job, part: Part, results_path: Path | None
    ) -> None:
        self.manager = manager
        self.job = job
        self.part = part
        self.updates: list[RequestUpdate] = []
        self.count = 0
        self._records: list[RequestRecord] = []
        self._handle = None
        if results_path is not None:
            results_path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = results_path.open("wb")
        self._offset = 0

    def add(self, result: ResultLine, row: RequestRow | None) -> None:
        priced = result_record(
            self.manager.pricer, self.job, self.part, result, row.model if row else None
        )
        self._records.append(priced.record)
        self.count += 1
        if len(self._records) >= _RECORD_CHUNK:
            self._flush()
        if row is None:
            return
        status = _request_status(result, cancelling=self.job.status == "cancelling")
        line_status = result_status(result) if status == "retry" else status
        offset = length = None
        if self._handle is not None:
            encoded = encode_result(result, line_status)
            offset, length = self._offset, len(encoded)
            self._handle.write(encoded + b"\n")
            self._offset += length + 1
        self.updates.append(
            RequestUpdate(
                custom_id=row.custom_id,
                status=status,
                part_id=None,
                attempts=row.attempts,
                error_code=result.error_code,
                error_message=result.error_message,
                result_part_id=self.part.part_id if offset is not None else None,
                result_offset=offset,
                result_length=length,
            )
        )

    def close(self) -> None:
        self._flush()
        if self._handle is not None:
            self._handle.close()

    def _flush(self) -> None:
        if self._records:
            self.manager.write_records(self._records)
            self._records = []


def _request_status(result: ResultLine, *, cancelling: bool) -> str:
    if result.outcome == "succeeded":
        return "succeeded"
    if result.outcome == "cancelled":
        return "cancelled"
    if result.retryable:
        return "cancelled" if cancelling else "retry"
    return "expired" if result.outcome == "expired" else "failed"


def _final_status(row: RequestRow, job: Job) -> str:
    if job.status == "cancelling":
        return "cancelled"
    return "expired" if row.error_code in ("batch_expired", "expired") else "failed"


def _missing_result(custom_id: str, part: Part) -> ResultLine:
    """Return the result of a request a part ended without a line for."""
    status = part.provider_status or ""
    if status == "expired":
        return ResultLine(
            custom_id,
            "expired",
            0,
            None,
            "batch_expired",
            "the batch expired first",
            retryable=True,
        )
    if status in ("cancelled", "canceling", "cancelling"):
        return ResultLine(
            custom_id, "cancelled", 0, None, "batch_cancelled", "the batch was cancelled"
        )
    if status == "failed":
        message = part.message or "the provider failed the batch"
        return ResultLine(custom_id, "errored", 0, None, "batch_failed", message)
    return ResultLine(
        custom_id,
        "errored",
        0,
        None,
        "missing_result",
        f"the batch ended {status or 'without a status'} with no result for this request",
        retryable=True,
    )


def _new_part(job_id: str, planned: PartFile, round_number: int, now: datetime) -> Part:
    return Part(
        part_id=_part_id(job_id, planned.sequence),
        job_id=job_id,
        sequence=planned.sequence,
        round=round_number,
        endpoint=planned.endpoint,
        request_count=planned.requests,
        state="pending",
        created_at=now,
        model=planned.model,
        file_path=None if planned.path is None else str(planned.path.resolve()),
    )


def _part_id(job_id: str, sequence: int) -> str:
    return f"{job_id}-p{sequence:04d}"


def _results_dir(job: Job) -> Path:
    assert job.work_dir is not None
    return Path(job.work_dir) / "results"


def _eta(job: Job, done: int) -> float | None:
    if job.final or done <= 0:
        return None
    elapsed = (datetime.now(UTC) - job.created_at).total_seconds()
    rate = done / max(elapsed, 1e-6)
    return (job.request_count - done) / rate
