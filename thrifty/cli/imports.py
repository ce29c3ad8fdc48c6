"""The `thrifty import` command: other tools' spend records into the ledger.

``thrifty import SOURCE FILE...`` prints, per file, the rows read, imported
and skipped with the reason for each group of skipped rows. Importing the
same file again imports nothing: each record's id comes from its row.
``--format json`` prints one JSON object with a ``files`` list, for scripts.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from thrifty.cli.report import parse_time
from thrifty.ledger import default_db_url, open_ledger
from thrifty.ledger.imports import SOURCES, ImportOptions, ImportReport, import_file


class SummaryFormat(StrEnum):
    text = "text"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)


def import_command(
    source: Annotated[
        str,
        typer.Argument(
            help="Format of the files: "
            + "; ".join(f"{s.name}: {s.description}" for s in SOURCES.values()),
            show_default=False,
        ),
    ],
    files: Annotated[
        list[Path],
        typer.Argument(help="Files to import.", show_default=False),
    ],
    *,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Ledger database URL (sqlite:///PATH or postgresql://...). "
            "Default: $THRIFTY_DB_URL, else sqlite:///.thrifty/thrifty.db.",
            show_default=False,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            help="Time for rows that carry none (OpenAI batch embeddings): an ISO-8601 "
            "date or datetime, UTC unless it has an offset.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        SummaryFormat,
        typer.Option("--format", help="text for people, json for scripts."),
    ] = SummaryFormat.text,
) -> None:
    """Import spend records from OpenAI, Anthropic, LiteLLM or Langfuse exports."""
    if source not in SOURCES:
        raise typer.BadParameter(
            f"unknown source {source!r}; use one of: {', '.join(SOURCES)}", param_hint="SOURCE"
        )
    options = ImportOptions(at=None if at is None else parse_time(at, datetime.now(UTC), "--at"))
    ledger = open_ledger(db or default_db_url())
    try:
        reports = [import_file(ledger, source, path, options) for path in files]
    finally:
        ledger.close()

    if output_format is SummaryFormat.json:
        summary = {"source": source, "files": [report.to_dict() for report in reports]}
        sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        return
    for report in reports:
        _print_report(report)


def _print_report(report: ImportReport) -> None:
    print(
        f"{report.path}: {report.rows_read} rows read, {report.imported} imported, "
        f"{report.skipped_total} skipped"
    )
    for reason, count in sorted(report.skipped.items(), key=lambda item: -item[1]):
        print(f"  {count} skipped: {reason} (first: {report.first_skipped[reason]})")
