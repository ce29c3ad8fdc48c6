"""Splitting a job's requests into part files within the provider's batch limits.

Parts are written as requests stream in. A request goes to the open part of
its group: its endpoint and model for OpenAI, which takes one of each per
batch, and a single group for Anthropic. A part is closed before a request
would take it past the request or byte limit. Each request's place in its part
file is remembered, so a later round can resubmit single requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from thrifty.batch.limits import BatchLimits
from thrifty.config import ProviderKind


@dataclass(slots=True)
class PartFile:
    """One provider batch of a job: its requests, written one line each.

    ``path`` is None when the plan only counts (a validation or a dry run).
    ``model`` is None for an Anthropic part that mixes models.
    """

    sequence: int
    endpoint: str
    model: str | None
    path: Path | None
    requests: int = 0
    line_bytes: int = 0
    handle: BinaryIO | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class PlacedRequest:
    """The place of one request's line: its part, and its byte offset and length in the file."""

    part: int
    offset: int
    length: int


class PartWriter:
    """Assign requests to parts and write the part files (when given a folder).

    ``first_sequence`` numbers the first part, so later rounds continue the
    job's numbering.
    """

    def __init__(
        self,
        folder: Path | None,
        kind: ProviderKind,
        limits: BatchLimits,
        *,
        split_by_model: bool,
        first_sequence: int = 1,
    ) -> None:
        self.folder = folder
        self.kind: ProviderKind = kind
        self.limits = limits
        self.split_by_model = split_by_model
        self.parts: list[PartFile] = []
        self._open: dict[tuple[str, str], PartFile] = {}
        self._next_sequence = first_sequence

    def fits_alone(self, raw: bytes) -> bool:
        """Return whether a line is small enough for a batch of its own."""
        return self.limits.batch_bytes(self.kind, len(raw), 1) <= self.limits.max_bytes

    def add(self, raw: bytes, endpoint: str, model: str) -> PlacedRequest:
        """Append one request line to the open part of its group; return where it went."""
        group = (endpoint, model) if self.kind == "openai" or self.split_by_model else ("", "")
        part = self._open.get(group)
        if part is None or not self._has_room(part, raw):
            if part is not None:
                _close(part)
            part = self._start(endpoint, model if group[1] else None)
            self._open[group] = part
        offset = part.line_bytes + part.requests
        if part.handle is not None:
            part.handle.write(raw + b"\n")
        part.requests += 1
        part.line_bytes += len(raw)
        return PlacedRequest(part.sequence, offset, len(raw))

    def close(self) -> list[PartFile]:
        """Close every part file and return the parts in sequence order."""
        for part in self._open.values():
            _close(part)
        self._open.clear()
        return sorted(self.parts, key=lambda part: part.sequence)

    def _has_room(self, part: PartFile, raw: bytes) -> bool:
        limits = self.limits
        if part.requests + 1 > limits.max_requests:
            return False
        size = limits.batch_bytes(self.kind, part.line_bytes + len(raw), part.requests + 1)
        return size <= limits.max_bytes

    def _start(self, endpoint: str, model: str | None) -> PartFile:
        sequence = self._next_sequence
        self._next_sequence += 1
        path = None if self.folder is None else self.folder / f"part-{sequence:04d}.jsonl"
        part = PartFile(sequence, endpoint, model, path)
        if path is not None:
            part.handle = path.open("wb")
        self.parts.append(part)
        return part


def _close(part: PartFile) -> None:
    if part.handle is not None:
        part.handle.close()
        part.handle = None


def read_line(path: Path, offset: int, length: int) -> bytes:
    """Read one request line back from a part file."""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)
