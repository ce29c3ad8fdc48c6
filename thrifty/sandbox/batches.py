"""Stored files and batches, and the lifecycle a sandbox batch follows.

A batch's progress is a function of time on the settings' clock: it is
validating for ``batch_validating_s``, then processes
``batch_requests_per_second`` requests a second, then finalizes for
``batch_finalizing_s``. A test can step a batch through its states with a
clock it advances by hand. Requests run when a client looks at the batch:
the ones the timeline has reached by then run in input order, off the event
loop, so a client never sees a count go backwards.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from thrifty.sandbox.errors import ApiError, Family, error_body, new_request_id
from thrifty.sandbox.settings import SandboxSettings

Phase = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "expired",
    "cancelled",
    "failed",
]
TERMINAL_PHASES = frozenset({"completed", "expired", "cancelled", "failed"})

Outcome = Literal["succeeded", "errored", "expired", "canceled"]

# Builds the response body of one request, or raises ApiError as the endpoint would.
Executor = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An uploaded file, or an output file a batch wrote."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a batch."""

    custom_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one request.

    ``status_code`` is 200 for a success, the HTTP status of an error, and 0
    for a request that never ran (expired or canceled). ``body`` is the
    response body or the provider's error body.
    """

    custom_id: str
    outcome: Outcome
    status_code: int
    body: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A batch's phase now, how many requests have run, and when each phase began.

    ``times`` maps ``in_progress``, ``finalizing``, ``cancelling`` and the
    terminal phase to the clock time it began, for the phases reached.
    """

    phase: Phase
    processed: int
    times: dict[str, float]

    @property
    def ended(self) -> bool:
        return self.phase in TERMINAL_PHASES


class SandboxBatch:
    """One batch of requests, for either provider.

    ``errors`` lists the input file's problems found at creation; a batch with
    any fails once its validation time is over.
    """

    def __init__(
        self,
        batch_id: str,
        family: Family,
        endpoint: str,
        items: Sequence[BatchItem],
        *,
        settings: SandboxSettings,
        executor: Executor,
        seed: int,
        errors: Sequence[dict[str, Any]] = (),
        input_file_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = batch_id
        self.family: Family = family
        self.endpoint = endpoint
        self.items = list(items)
        self.settings = settings
        self.errors = list(errors)
        self.input_file_id = input_file_id
        self.metadata = dict(metadata) if metadata is not None else None
        self.created_clock = settings.clock()
        self.created_at = time.time()
        self.cancel_clock: float | None = None
        self.results: list[ItemResult] = []
        self.output_file_id: str | None = None
        self.error_file_id: str | None = None
        self.outputs_written = False
        self._executor = executor
        self._draws = random.Random(seed)
        # Held while requests run and while output files are written.
        self.lock = threading.Lock()

    def wall_time(self, clock_time: float) -> float:
        """Convert a time on the settings' clock to Unix seconds."""
        return self.created_at + (clock_time - self.created_clock)

    def snapshot(self, now: float) -> Snapshot:
        """Return where the timeline has the batch at clock time ``now``."""
        settings = self.settings
        start = self.created_clock + settings.batch_validating_s
        if self.errors:
            if now < start:
                return Snapshot("validating", 0, {})
            return Snapshot("failed", 0, {"failed": start})

        window_end = self.created_clock + settings.batch_completion_window_s
        cancel = self.cancel_clock if self.cancel_clock is not None else math.inf
        stop = min(window_end, cancel)
        done = self._all_done_at(start)
        if done <= stop:
            return self._normal_snapshot(now, start, done)
        return self._stopped_snapshot(now, start, stop, cancelled=cancel <= window_end)

    def process(self, now: float) -> Snapshot:
        """Run the requests the timeline has reached by ``now``; return the snapshot.

        Once the batch has ended, every request that did not run gets its
        expired or canceled result. Safe to call from several threads.
        """
        with self.lock:
            snapshot = self.snapshot(now)
            for item in self.items[len(self.results) : snapshot.processed]:
                self.results.append(self._run(item))
            if snapshot.ended and snapshot.phase != "failed":
                left: Outcome = "canceled" if snapshot.phase == "cancelled" else "expired"
                for item in self.items[len(self.results) :]:
                    self.results.append(ItemResult(item.custom_id, left, 0, None))
            return snapshot

    def cancel(self, now: float) -> None:
        """Stop processing at ``now``; a batch that has ended stays as it is."""
        if self.cancel_clock is None and not self.snapshot(now).ended:
            self.cancel_clock = now

    def outcome_counts(self) -> Counter[str]:
        return Counter(result.outcome for result in self.results)

    def _all_done_at(self, start: float) -> float:
        rate = self.settings.batch_requests_per_second
        if rate <= 0 or not self.items:
            return start
        return start + len(self.items) / rate

    def _processed_by(self, moment: float, start: float) -> int:
        if moment < start:
            return 0
        rate = self.settings.batch_requests_per_second
        if rate <= 0:
            return len(self.items)
        # The small allowance keeps a float product such as 0.3 * 10 from
        # landing just below a whole request.
        return min(len(self.items), math.floor((moment - start) * rate + 1e-9))

    def _normal_snapshot(self, now: float, start: float, done: float) -> Snapshot:
        finalizing_s = self.settings.batch_finalizing_s
        times = _reached(now, {"in_progress": start, "finalizing": done})
        if now < start:
            return Snapshot("validating", 0, times)
        if now < done:
            return Snapshot("in_progress", self._processed_by(now, start), times)
        if now < done + finalizing_s:
            return Snapshot("finalizing", len(self.items), times)
        return Snapshot("completed", len(self.items), {**times, "completed": done + finalizing_s})

    def _stopped_snapshot(
        self, now: float, start: float, stop: float, *, cancelled: bool
    ) -> Snapshot:
        finalizing_s = self.settings.batch_finalizing_s
        wind_down: Phase = "cancelling" if cancelled else "finalizing"
        times = _reached(now, {"in_progress": start, wind_down: stop})
        if stop < start:
            times.pop("in_progress", None)
        processed = self._processed_by(min(now, stop), start)
        if now < stop:
            phase: Phase = "validating" if now < start else "in_progress"
            return Snapshot(phase, processed, times)
        if now < stop + finalizing_s:
            return Snapshot(wind_down, processed, times)
        end: Phase = "cancelled" if cancelled else "expired"
        return Snapshot(end, processed, {**times, end: stop + finalizing_s})

    def _run(self, item: BatchItem) -> ItemResult:
        draw = self._draws.random()
        settings = self.settings
        if draw < settings.batch_expiry_rate:
            return ItemResult(item.custom_id, "expired", 0, None)
        if draw < settings.batch_expiry_rate + settings.batch_failure_rate:
            error = ApiError(
                500, "The sandbox failed this batch request, as batch_failure_rate requires."
            )
            return self._errored(item, error)
        try:
            return ItemResult(item.custom_id, "succeeded", 200, self._executor(item.body))
        except ApiError as exc:
            return self._errored(item, exc)

    def _errored(self, item: BatchItem, error: ApiError) -> ItemResult:
        body = error_body(error, self.family, new_request_id())
        return ItemResult(item.custom_id, "errored", error.status, body)


def _reached(now: float, starts: dict[str, float]) -> dict[str, float]:
    return {name: moment for name, moment in starts.items() if moment <= now}


@dataclass
class BatchRegistry:
    """Every file and batch one sandbox app stores, newest last."""

    files: dict[str, StoredFile] = field(default_factory=dict)
    batches: dict[str, SandboxBatch] = field(default_factory=dict)
    created: int = 0

    def add_file(
        self, filename: str, purpose: str, content: bytes, *, lifetime_s: int | None = None
    ) -> StoredFile:
        """Store a file; it reports an expiry ``lifetime_s`` after now when one is given."""
        created_at = int(time.time())
        expires_at = None if lifetime_s is None else created_at + lifetime_s
        stored = StoredFile(
            "file-" + uuid.uuid4().hex[:24], filename, purpose, content, created_at, expires_at
        )
        self.files[stored.id] = stored
        return stored

    def next_seed(self, seed: int) -> int:
        """Return the seed of the next batch's draws, so each batch draws its own."""
        self.created += 1
        return seed * 1_000_003 + self.created

    def newest_first(self, family: Family) -> Iterator[SandboxBatch]:
        for batch in reversed(self.batches.values()):
            if batch.family == family:
                yield batch


def page(
    ids: Sequence[str], *, after: str | None, before: str | None, limit: int
) -> tuple[list[str], bool]:
    """Return one page of ids listed newest first, and whether more follow.

    ``after`` starts the page just past that id (older entries), ``before``
    ends it just before that id (newer entries).
    """
    if before is not None:
        end = ids.index(before) if before in ids else len(ids)
        start = max(0, end - limit)
        return list(ids[start:end]), start > 0
    start = ids.index(after) + 1 if after is not None and after in ids else 0
    selected = list(ids[start : start + limit])
    return selected, start + limit < len(ids)
