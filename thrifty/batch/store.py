"""Batch jobs, their parts and their requests, stored in the ledger database.

Any process that opens the same database reads the same jobs, so ``status``,
``wait``, ``cancel`` and ``collect`` work from another process and after a
restart. A process that changes a job first claims it (``claim``) for a
short lease, so two processes never submit or collect the same part twice.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from thrifty.batch.schema import (
    JOB_FINAL_STATUSES,
    batch_jobs,
    batch_parts,
    batch_requests,
)
from thrifty.config import ProviderConfig, ProviderKind
from thrifty.errors import BatchError
from thrifty.ledger.database import safe_url

logger = logging.getLogger(__name__)

_INSERT_CHUNK = 5000


@dataclass(slots=True)
class Job:
    """One batch job: where it goes, who it belongs to, and how far it is."""

    job_id: str
    source: str
    status: str
    provider: str
    provider_kind: ProviderKind
    base_url: str
    request_count: int
    created_at: datetime
    updated_at: datetime
    max_rounds: int
    round: int = 0
    name: str | None = None
    api_key_env: str | None = None
    pricing_provider: str | None = None
    input_path: str | None = None
    work_dir: str | None = None
    deadline_at: datetime | None = None
    ended_at: datetime | None = None
    team: str | None = None
    project: str | None = None
    user: str | None = None
    feature: str | None = None
    session: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    message: str | None = None

    @property
    def final(self) -> bool:
        return self.status in JOB_FINAL_STATUSES

    def provider_config(self) -> ProviderConfig:
        return ProviderConfig(
            self.provider,
            self.provider_kind,
            self.base_url,
            self.api_key_env,
            self.pricing_provider,
        )


@dataclass(slots=True)
class Part:
    """One provider batch of a job."""

    part_id: str
    job_id: str
    sequence: int
    round: int
    endpoint: str
    request_count: int
    state: str
    created_at: datetime
    model: str | None = None
    file_path: str | None = None
    provider_status: str | None = None
    provider_file_id: str | None = None
    provider_batch_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    results_url: str | None = None
    processed_count: int = 0
    submitted_at: datetime | None = None
    ended_at: datetime | None = None
    message: str | None = None

    @property
    def active(self) -> bool:
        """Whether the part still waits to be sent, or on the provider."""
        return self.state in ("pending", "uploaded", "sending", "submitted", "ended")


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request of a job, as stored."""

    custom_id: str
    position: int
    line: int
    model: str | None
    status: str
    attempts: int
    part_id: str | None
    source_part_id: str
    source_offset: int
    source_length: int
    error_code: str | None = None
    error_message: str | None = None
    result_part_id: str | None = None
    result_offset: int | None = None
    result_length: int | None = None


@dataclass(frozen=True, slots=True)
class RequestUpdate:
    """The new state of one request after its part's results were read."""

    custom_id: str
    status: str
    part_id: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    result_part_id: str | None
    result_offset: int | None
    result_length: int | None


_JOB_JSON = ("tags", "options")


class BatchStore:
    """Reads and writes the batch tables of one database. Safe to share between threads."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create_job(self, job: Job, parts: Sequence[Part], requests: Sequence[RequestRow]) -> None:
        """Insert a job with its first parts and every request, in one transaction."""
        with self._begin(f"create job {job.job_id} in") as connection:
            connection.execute(sa.insert(batch_jobs), [_job_row(job)])
            if parts:
                connection.execute(sa.insert(batch_parts), [_row(part) for part in parts])
            rows = [{"job_id": job.job_id, **_row(request)} for request in requests]
            for start in range(0, len(rows), _INSERT_CHUNK):
                connection.execute(sa.insert(batch_requests), rows[start : start + _INSERT_CHUNK])

    def get_job(self, job_id: str) -> Job | None:
        statement = sa.select(batch_jobs).where(batch_jobs.c.job_id == job_id)
        with self._connect(f"read job {job_id} from") as connection:
            row = connection.execute(statement).one_or_none()
        return None if row is None else _job(row._mapping)

    def require_job(self, job_id: str) -> Job:
        """Return a job, or raise BatchError naming the ids that exist."""
        job = self.get_job(job_id)
        if job is None:
            raise BatchError(
                f"no batch job with id {job_id!r} in the ledger at {safe_url(self.engine.url)}; "
                "list the jobs with `thrifty batch list`"
            )
        return job

    def list_jobs(
        self, *, limit: int = 20, active_only: bool = False, source: str | None = None
    ) -> list[Job]:
        """Return jobs, newest first; optionally only unfinished ones, or of one source."""
        statement = sa.select(batch_jobs).order_by(batch_jobs.c.created_at.desc()).limit(limit)
        if active_only:
            statement = statement.where(batch_jobs.c.status.not_in(sorted(JOB_FINAL_STATUSES)))
        if source is not None:
            statement = statement.where(batch_jobs.c.source == source)
        with self._connect("list the jobs in") as connection:
            return [_job(row._mapping) for row in connection.execute(statement)]

    def update_job(self, job_id: str, **values: Any) -> None:
        values = {
            name: _json_text(value) if name in _JOB_JSON else value
            for name, value in values.items()
        }
        values["updated_at"] = datetime.now(UTC)
        statement = sa.update(batch_jobs).where(batch_jobs.c.job_id == job_id).values(**values)
        with self._begin(f"update job {job_id} in") as connection:
            connection.execute(statement)

    def parts(self, job_id: str) -> list[Part]:
        statement = (
            sa.select(batch_parts)
            .where(batch_parts.c.job_id == job_id)
            .order_by(batch_parts.c.sequence)
        )
        with self._connect(f"read the parts of job {job_id} from") as connection:
            return [Part(**dict(row._mapping)) for row in connection.execute(statement)]

    def add_parts(self, parts: Sequence[Part], assignments: Mapping[str, Sequence[str]]) -> None:
        """Insert new parts and move each listed request (by custom_id) into its part."""
        with self._begin("add parts to") as connection:
            connection.execute(sa.insert(batch_parts), [_row(part) for part in parts])
            for part in parts:
                custom_ids = assignments.get(part.part_id, ())
                rows = [{"c": custom_id, "p": part.part_id} for custom_id in custom_ids]
                if rows:
                    connection.execute(_assign_statement(part.job_id), rows)

    def job_of_batch(self, provider_batch_id: str) -> str | None:
        """Return the id of the job a provider batch belongs to, if any."""
        statement = sa.select(batch_parts.c.job_id).where(
            batch_parts.c.provider_batch_id == provider_batch_id
        )
        with self._connect(f"find batch {provider_batch_id} in") as connection:
            return connection.execute(statement).scalars().first()

    def update_part(self, part_id: str, **values: Any) -> None:
        statement = sa.update(batch_parts).where(batch_parts.c.part_id == part_id).values(**values)
        with self._begin(f"update part {part_id} in") as connection:
            connection.execute(statement)

    def mark_submitted(self, job_id: str, part_id: str) -> None:
        """Mark a sent part's requests submitted, counting one more attempt each."""
        statement = (
            sa.update(batch_requests)
            .where(batch_requests.c.job_id == job_id, batch_requests.c.part_id == part_id)
            .values(status="submitted", attempts=batch_requests.c.attempts + 1)
        )
        with self._begin(f"mark part {part_id} submitted in") as connection:
            connection.execute(statement)
            pending = connection.execute(
                sa.select(sa.func.count())
                .select_from(batch_parts)
                .where(
                    batch_parts.c.job_id == job_id,
                    batch_parts.c.state.in_(("pending", "uploaded", "sending")),
                )
            ).scalar_one()
            if not pending:
                connection.execute(
                    sa.update(batch_jobs)
                    .where(batch_jobs.c.job_id == job_id, batch_jobs.c.status == "submitting")
                    .values(status="in_progress", updated_at=datetime.now(UTC))
                )

    def request_counts(self, job_id: str) -> Counter[str]:
        """Return how many of a job's requests are in each status."""
        statement = (
            sa.select(batch_requests.c.status, sa.func.count())
            .where(batch_requests.c.job_id == job_id)
            .group_by(batch_requests.c.status)
        )
        with self._connect(f"count the requests of job {job_id} in") as connection:
            return Counter({status: int(count) for status, count in connection.execute(statement)})

    def requests(
        self, job_id: str, *, part_id: str | None = None, status: str | None = None
    ) -> list[RequestRow]:
        """Return a job's requests in input order, optionally of one part or status."""
        statement = _select_requests().where(batch_requests.c.job_id == job_id)
        if part_id is not None:
            statement = statement.where(batch_requests.c.part_id == part_id)
        if status is not None:
            statement = statement.where(batch_requests.c.status == status)
        statement = statement.order_by(batch_requests.c.position)
        with self._connect(f"read the requests of job {job_id} from") as connection:
            return [RequestRow(*row) for row in connection.execute(statement)]

    def iter_requests(self, job_id: str) -> Iterator[RequestRow]:
        """Yield a job's requests in input order without holding them all in memory."""
        statement = (
            _select_requests()
            .where(batch_requests.c.job_id == job_id)
            .order_by(batch_requests.c.position)
            .execution_options(yield_per=2000)
        )
        with self._connect(f"read the requests of job {job_id} from") as connection:
            for row in connection.execute(statement):
                yield RequestRow(*row)

    def record_results(
        self, part_id: str, updates: Sequence[RequestUpdate], part_values: Mapping[str, Any]
    ) -> None:
        """Store the new state of a part's requests and of the part, in one transaction."""
        with self._begin(f"store the results of part {part_id} in") as connection:
            job_id = connection.execute(
                sa.select(batch_parts.c.job_id).where(batch_parts.c.part_id == part_id)
            ).scalar_one()
            rows = [_row(update, prefix="u_") for update in updates]
            for start in range(0, len(rows), _INSERT_CHUNK):
                connection.execute(_result_statement(job_id), rows[start : start + _INSERT_CHUNK])
            connection.execute(
                sa.update(batch_parts).where(batch_parts.c.part_id == part_id).values(**part_values)
            )

    def finalize_requests(self, job_id: str, status_by_id: Mapping[str, str]) -> None:
        """Give requests that will not be retried their final status."""
        statement = (
            sa.update(batch_requests)
            .where(
                batch_requests.c.job_id == job_id,
                batch_requests.c.custom_id == sa.bindparam("c"),
            )
            .values(status=sa.bindparam("s"), part_id=None)
        )
        rows = [{"c": custom_id, "s": status} for custom_id, status in status_by_id.items()]
        if not rows:
            return
        with self._begin(f"finalize requests of job {job_id} in") as connection:
            connection.execute(statement, rows)

    @contextmanager
    def claim(self, job_id: str, *, lease_s: float) -> Iterator[bool]:
        """Claim a job for this process while the block runs; yield whether it was free.

        A claim held by a live process blocks others until its lease ends. A
        claim left by a process that died on this machine is taken over at once.
        """
        owner = process_owner()
        claimed = self._try_claim(job_id, owner, lease_s)
        try:
            yield claimed
        finally:
            if claimed:
                self._release(job_id, owner)

    def _try_claim(self, job_id: str, owner: str, lease_s: float) -> bool:
        now = datetime.now(UTC)
        with self._begin(f"claim job {job_id} in") as connection:
            row = connection.execute(
                sa.select(batch_jobs.c.lease_owner, batch_jobs.c.lease_until)
                .where(batch_jobs.c.job_id == job_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                return False
            holder, until = row
            if holder not in (None, owner) and until is not None and until > now:
                if _owner_alive(holder):
                    return False
                logger.info("job %s: taking over the claim of %s, which has exited", job_id, holder)
            connection.execute(
                sa.update(batch_jobs)
                .where(batch_jobs.c.job_id == job_id)
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            )
        return True

    def _release(self, job_id: str, owner: str) -> None:
        statement = (
            sa.update(batch_jobs)
            .where(batch_jobs.c.job_id == job_id, batch_jobs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )
        with self._begin(f"release job {job_id} in") as connection:
            connection.execute(statement)

    @contextmanager
    def _connect(self, action: str) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise BatchError(
                f"could not {action} the ledger at {safe_url(self.engine.url)}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc

    @contextmanager
    def _begin(self, action: str) -> Iterator[sa.Connection]:
        with self._connect(action) as connection:
            connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                yield connection


_PROCESS_TOKEN = uuid.uuid4().hex[:8]


def process_owner() -> str:
    """Return this process's claim name: host, process id and a per-process token."""
    return f"{socket.gethostname()}:{os.getpid()}:{_PROCESS_TOKEN}"


def _owner_alive(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _assign_statement(job_id: str) -> sa.Update:
    return (
        sa.update(batch_requests)
        .where(batch_requests.c.job_id == job_id, batch_requests.c.custom_id == sa.bindparam("c"))
        .values(part_id=sa.bindparam("p"), status="pending")
    )


def _result_statement(job_id: str) -> sa.Update:
    names = [item.name for item in fields(RequestUpdate) if item.name != "custom_id"]
    return (
        sa.update(batch_requests)
        .where(
            batch_requests.c.job_id == job_id,
            batch_requests.c.custom_id == sa.bindparam("u_custom_id"),
        )
        .values({name: sa.bindparam(f"u_{name}") for name in names})
    )


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(item.name for item in fields(kind))
    return names


def _row(value: Any, *, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{name}": getattr(value, name) for name in _field_names(type(value))}


def _job_row(job: Job) -> dict[str, Any]:
    row = _row(job)
    for name in _JOB_JSON:
        row[name] = _json_text(row[name])
    return row


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _job(row: Mapping[Any, Any]) -> Job:
    names = {item.name for item in fields(Job)}
    values = {name: row[name] for name in names}
    for name in _JOB_JSON:
        values[name] = orjson.loads(values[name])
    return Job(**values)


def _select_requests() -> sa.Select[Any]:
    """Select the columns of ``batch_requests`` in the order of RequestRow's fields."""
    return sa.select(*(batch_requests.c[name] for name in _field_names(RequestRow)))
