"""The `thrifty export` command: ledger records of a date range as CSV or Parquet.

The columns are the fields of a ledger record (see ``thrifty.ledger.exports``),
with exact decimal costs. CSV goes to standard output unless ``--output``
names a file; Parquet needs a file and the pyarrow package.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from thrifty.cli.report import parse_time
from thrifty.errors import LedgerError
from thrifty.ledger import default_db_url, open_ledger
from thrifty.ledger.database import normalize_url, safe_url, sqlite_path
from thrifty.ledger.exports import export_records


class ExportFormatOption(StrEnum):
    csv = "csv"
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)


def export_command(
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
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write; CSV goes to standard output without it.",
            show_default=False,
        ),
    ] = None,
    export_format: Annotated[
        ExportFormatOption,
        typer.Option("--format", help="csv, or parquet (needs pyarrow)."),
    ] = ExportFormatOption.csv,
    since: Annotated[
        str | None,
        typer.Option(
            help="Export requests started at or after this time: an ISO-8601 date or "
            "datetime (UTC unless it has an offset) or a time ago such as 24h, 7d.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Export requests started before this time; same forms as --since."),
    ] = None,
) -> None:
    """Export ledger records as CSV or Parquet."""
    now = datetime.now(UTC)
    start = None if since is None else parse_time(since, now, "--since")
    end = None if until is None else parse_time(until, now, "--until")
    if export_format is ExportFormatOption.parquet and output is None:
        raise typer.BadParameter("a Parquet export needs a file", param_hint="--output")

    url = db or default_db_url()
    path = sqlite_path(normalize_url(url))
    if path is not None and not path.exists():
        # Opening it would create an empty ledger, and the export would hide the typo.
        raise LedgerError(
            f"no ledger database at {path} ({safe_url(url)}); pass --db with the URL "
            "of an existing ledger"
        )
    ledger = open_ledger(url)
    try:
        written = export_records(
            ledger,
            output if output is not None else sys.stdout,
            export_format.value,
            since=start,
            until=end,
        )
    finally:
        ledger.close()
    if output is not None:
        print(f"wrote {written} records to {output}", file=sys.stderr)
