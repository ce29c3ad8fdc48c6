"""The parts every importer shares: the row outcome, the report, and the write loop.

An importer reads one file and yields, per row of its format, either a
``RequestRecord`` or a ``Skipped`` with the reason the row does not enter
the ledger. Each record's ``request_id`` is derived from the row itself (the
source's own id, or a hash of the row's identifying fields), so importing a
file twice writes nothing the second time: the ledger skips ids it has.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from thrifty.errors import ImportFileError, PricingError
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.store import Ledger
from thrifty.pricing import Cost
from thrifty.pricing.engine import CostEngine
from thrifty.usage import Usage

logger = logging.getLogger(__name__)

ALREADY_IMPORTED = "already in the ledger"
DEFAULT_BATCH_SIZE = 500


class RowError(ValueError):
    """A row that cannot be imported; the message is the reason, without row values."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row left out, why (``reason``, shared by similar rows) and where (``location``)."""

    reason: str
    location: str


Row = RequestRecord | Skipped


@dataclass(slots=True)
class ImportOptions:
    """Settings an import may need.

    ``at`` is the time given to rows that carry none, such as an OpenAI batch
    output line of embeddings. Without it such rows are skipped.
    """

    engine: CostEngine = field(default_factory=CostEngine)
    at: datetime | None = None


@dataclass(slots=True)
class ImportReport:
    """The outcome of one import: rows read, records imported, rows skipped and why.

    ``skipped`` maps each reason to its row count, ``ALREADY_IMPORTED``
    included; ``first_skipped`` maps it to the location of its first row.
    """

    source: str
    path: str
    rows_read: int = 0
    imported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    first_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, location: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.first_skipped.setdefault(reason, location)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "path": self.path,
            "rows_read": self.rows_read,
            "imported": self.imported,
            "skipped": self.skipped_total,
            "skipped_reasons": [
                {"reason": reason, "rows": count, "first": self.first_skipped[reason]}
                for reason, count in sorted(self.skipped.items(), key=lambda item: -item[1])
            ],
        }


Reader = Callable[[Path, ImportOptions], Iterator[Row]]


def write_rows(
    ledger: Ledger, rows: Iterable[Row], report: ImportReport, *, batch_size: int
) -> ImportReport:
    """Write the records of ``rows`` in batches, counting every row in ``report``."""
    batch: list[RequestRecord] = []
    for row in rows:
        report.rows_read += 1
        if isinstance(row, Skipped):
            report.skip(row.reason, row.location)
            continue
        batch.append(row)
        if len(batch) >= batch_size:
            _write_batch(ledger, batch, report)
            batch = []
    if batch:
        _write_batch(ledger, batch, report)
    return report


def _write_batch(ledger: Ledger, batch: list[RequestRecord], report: ImportReport) -> None:
    inserted = ledger.write(batch)
    report.imported += inserted
    if inserted < len(batch):
        report.skip(ALREADY_IMPORTED, batch[0].request_id, len(batch) - inserted)


def stable_id(source: str, *parts: object) -> str:
    """Derive a request id from a row's identifying values: the same row, the same id."""
    text = json.dumps([str(part) if part is not None else None for part in parts])
    return f"{source}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def load_json(path: Path) -> list[Any]:
    """Return the JSON documents of a file: the whole file, or one per line (JSONL).

    Numbers with a fraction are read as Decimal, so amounts stay exact.
    """
    text = _read_text(path)
    try:
        return [json.loads(text, parse_float=Decimal)]
    except json.JSONDecodeError:
        pass
    documents = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            documents.append(json.loads(line, parse_float=Decimal))
        except json.JSONDecodeError as exc:
            raise ImportFileError(
                f"{path} is neither a JSON document nor JSON lines: line {number}: {exc.msg}"
            ) from exc
    return documents


def json_lines(path: Path, expected: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, document)`` for each non-blank line of a JSONL file.

    ``expected`` describes the format for the error raised on a line that is
    not JSON.
    """
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ImportFileError(f"cannot read import file {path}: {exc.strerror}") from exc
    with handle, utf8_errors_as_import_errors(path):
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                raise ImportFileError(
                    f"{path} line {number} is not JSON ({exc.msg}); {expected}"
                ) from exc


@contextlib.contextmanager
def utf8_errors_as_import_errors(path: Path) -> Iterator[None]:
    """Turn a decoding error while a text file is read into an ImportFileError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"import file {path} is not UTF-8 text: {exc}") from exc


def buckets_of(documents: Iterable[Any], path: Path) -> Iterator[Mapping[str, Any]]:
    """Yield the time buckets of usage or cost API pages.

    A document may be one page (``{"data": [bucket, ...]}``), a list of pages
    or of buckets, or one bucket.
    """
    for document in documents:
        items = document if isinstance(document, list) else [document]
        for item in items:
            if not isinstance(item, Mapping):
                raise ImportFileError(f"{path}: expected JSON objects, got {type(item).__name__}")
            data = item.get("data")
            if isinstance(data, list) and "results" not in item:
                yield from (bucket for bucket in data if isinstance(bucket, Mapping))
            else:
                yield item


def parse_time(value: object, name: str) -> datetime:
    """Read a timestamp: Unix seconds or ISO 8601 text; one without an offset is UTC."""
    if isinstance(value, bool) or value is None or value == "":
        raise RowError(f"missing {name}")
    if isinstance(value, int | float | Decimal):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str):
        raise RowError(f"invalid {name}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise RowError(f"invalid {name}") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def count(value: object, name: str) -> int:
    """Read a token count: a whole number, 0 when absent."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise RowError(f"invalid {name}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str | Decimal | float):
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise RowError(f"invalid {name}") from exc
        if parsed != parsed.to_integral_value():
            raise RowError(f"invalid {name}")
        number = int(parsed)
    else:
        raise RowError(f"invalid {name}")
    if number < 0:
        raise RowError(f"negative {name}")
    return number


def amount(value: object, name: str) -> Decimal | None:
    """Read a money amount exactly: a decimal string or number; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        raise RowError(f"invalid {name}")
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise RowError(f"invalid {name}") from exc
    if not parsed.is_finite():
        raise RowError(f"invalid {name}")
    return parsed


def text(value: object) -> str | None:
    """Return a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def price(
    engine: CostEngine,
    provider: str,
    model: str | None,
    usage: Usage,
    at: datetime,
    *,
    service_tier: str | None = None,
    batch: bool = False,
    speed: str | None = None,
) -> Cost:
    """Price imported usage; a model without a price gives an unpriced Cost, never $0."""
    if model is None:
        return unpriced(provider, "", "the row names no model")
    try:
        return engine.price(
            provider, model, usage, service_tier=service_tier, batch=batch, at=at, speed=speed
        )
    except PricingError as exc:
        return unpriced(provider, model, str(exc))


def unpriced(provider: str, model: str, reason: str) -> Cost:
    return Cost(
        provider=provider,
        model_requested=model,
        model=None,
        service_tier="default",
        batch=False,
        cost_usd=None,
        unpriced_reason=reason,
    )


def usage_fields(usage: Usage) -> dict[str, Any]:
    """Return the token fields of a record for ``usage``."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "cache_write_1h_tokens": usage.cache_write_1h_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "usage_estimated": usage.estimated,
    }


def cost_fields(cost: Cost) -> dict[str, Any]:
    """Return the cost fields of a record for ``cost``."""
    return {
        "cost_usd": cost.cost_usd,
        "cost_breakdown": dict(cost.breakdown),
        "unpriced": cost.cost_usd is None,
        "model_priced": cost.model,
    }


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportFileError(f"cannot read import file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"import file {path} is not UTF-8 text: {exc}") from exc
