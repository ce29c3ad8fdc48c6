"""Imports into the ledger from other tools' records of LLM spend.

``import_file(ledger, source, path)`` reads one file of a source format and
writes its records, returning an ``ImportReport`` of rows read, imported and
skipped, with reasons. Imports are idempotent: each record's id is derived
from its row, so importing a file again adds nothing. The formats and how
each maps into records are described in the module of each source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from thrifty.errors import ImportFileError
from thrifty.ledger.imports.anthropic import read_anthropic_costs, read_anthropic_usage
from thrifty.ledger.imports.base import (
    ALREADY_IMPORTED,
    DEFAULT_BATCH_SIZE,
    ImportOptions,
    ImportReport,
    Reader,
    Row,
    Skipped,
    write_rows,
)
from thrifty.ledger.imports.langfuse import read_langfuse
from thrifty.ledger.imports.litellm import read_litellm
from thrifty.ledger.imports.openai import read_openai_batch, read_openai_costs, read_openai_usage
from thrifty.ledger.store import Ledger


@dataclass(frozen=True, slots=True)
class Source:
    """One importable format: its name on the command line and its reader."""

    name: str
    description: str
    read: Reader


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source("openai-batch", "OpenAI Batch API output file (JSONL)", read_openai_batch),
        Source(
            "openai-usage",
            "OpenAI Usage API completions pages (JSON), one record per bucket result",
            read_openai_usage,
        ),
        Source(
            "openai-costs",
            "OpenAI Costs API pages (JSON), one record per bucket result",
            read_openai_costs,
        ),
        Source(
            "anthropic-usage",
            "Anthropic Admin API messages usage report (JSON), one record per bucket result",
            read_anthropic_usage,
        ),
        Source(
            "anthropic-costs",
            "Anthropic Admin API cost report (JSON), one record per bucket result",
            read_anthropic_costs,
        ),
        Source("litellm", "LiteLLM spend logs exported as CSV", read_litellm),
        Source("langfuse", "Langfuse observations export (JSON or JSONL)", read_langfuse),
    )
}


def import_file(
    ledger: Ledger,
    source: str,
    path: Path,
    options: ImportOptions | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportReport:
    """Import one file of format ``source`` into ``ledger``.

    Raises ImportFileError for an unknown source or a file that cannot be
    read as that format, and LedgerError when the ledger cannot be written.
    """
    entry = SOURCES.get(source)
    if entry is None:
        raise ImportFileError(
            f"unknown import source {source!r}; expected one of: {', '.join(SOURCES)}"
        )
    if not path.is_file():
        raise ImportFileError(f"import file {path} does not exist or is not a file")
    report = ImportReport(source=source, path=str(path))
    rows = entry.read(path, options or ImportOptions())
    return write_rows(ledger, rows, report, batch_size=batch_size)


__all__ = [
    "ALREADY_IMPORTED",
    "SOURCES",
    "ImportOptions",
    "ImportReport",
    "Row",
    "Skipped",
    "Source",
    "import_file",
]
