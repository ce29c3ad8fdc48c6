"""`thrifty report chargeback`: a month's spend by owner, as Markdown, CSV or JSON.

    thrifty report chargeback --month 2026-11 --by team
    thrifty report chargeback --month 2026-11 --by cost_center --rules costs.yaml --format csv

The Markdown form is for people: a summary table, one section per owner
with its features, and the unattributed spend. The CSV form has one row per
owner and feature with exact costs, for spreadsheets and finance tools.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from thrifty.allocation import (
    OWNER_DIMENSIONS,
    Statement,
    build_statement,
    load_rules,
    statement_csv,
    statement_markdown,
)
from thrifty.cli.report import require_existing_sqlite
from thrifty.ledger import Totals, default_db_url, open_ledger
from thrifty.ledger.database import safe_url


class StatementFormat(StrEnum):
    markdown = "markdown"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("chargeback")(chargeback)


def chargeback(
    *,
    month: Annotated[
        str, typer.Option("--month", help="The calendar month to bill, as YYYY-MM (UTC).")
    ],
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help=f"Who the spend is charged to: {', '.join(OWNER_DIMENSIONS)} "
            "(cost_center needs --rules).",
        ),
    ] = "team",
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="YAML file of cost-center rules: cost_centers, each with a name and a match "
            "on team, project, feature, key, user, provider, model or tag:KEY.",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Ledger database URL. Default: $THRIFTY_DB_URL, else sqlite:///.thrifty/thrifty.db.",
            show_default=False,
        ),
    ] = None,
    output_format: Annotated[
        StatementFormat,
        typer.Option("--format", help="markdown for people; csv and json (exact costs) for tools."),
    ] = StatementFormat.markdown,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the statement to this file instead of standard output."
        ),
    ] = None,
) -> None:
    """Print a monthly chargeback statement: spend per owner, its features, unattributed spend."""
    allocation = None if rules is None else load_rules(rules)
    url = db or default_db_url()
    require_existing_sqlite(url)
    ledger = open_ledger(url)
    try:
        statement = build_statement(ledger, month, by, allocation)
    finally:
        ledger.close()

    if output_format is StatementFormat.csv:
        text = statement_csv(statement)
    elif output_format is StatementFormat.json:
        text = orjson.dumps(statement_json(statement), option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = statement_markdown(statement, safe_url(url))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def statement_json(statement: Statement) -> dict[str, Any]:
    """Return the JSON form: totals, owners with their features, and the unattributed spend."""

    def section(
        owner: str | None, totals: Totals, features: list[tuple[str | None, Totals]]
    ) -> dict[str, Any]:
        return {
            "owner": owner,
            **_totals(totals),
            "features": [{"feature": name, **_totals(value)} for name, value in features],
        }

    unattributed = statement.unattributed
    return {
        "month": statement.month,
        "by": statement.by,
        "since": statement.since.isoformat(),
        "until": statement.until.isoformat(),
        **_totals(statement.totals),
        "owners": [
            section(item.owner, item.totals, item.ranked_features()) for item in statement.owners
        ],
        "unattributed": None
        if unattributed is None
        else section(None, unattributed.totals, unattributed.ranked_features()),
    }


def _totals(totals: Totals) -> dict[str, Any]:
    return {
        "requests": totals.requests,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cost_usd": format(totals.cost_usd, "f"),
        "unpriced_requests": totals.unpriced_requests,
    }
