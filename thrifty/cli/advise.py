"""The ``thrifty advise``, ``whatif`` and ``forecast`` commands, over the ledger."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from thrifty.advisor.forecast import project_month
from thrifty.advisor.plan import build_plan
from thrifty.advisor.render import plan_json, plan_markdown, print_plan
from thrifty.advisor.traffic import Traffic, load_traffic
from thrifty.advisor.whatif import load_policy, run_whatif
from thrifty.cli.report import parse_time
from thrifty.ledger import default_db_url, open_ledger
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.money import format_usd


def advise(
    *,
    db: Annotated[
        str | None, typer.Option(help="Ledger database URL (default: the gateway's).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Start of the period: ISO-8601 or relative (7d, 24h).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End of the period (exclusive).")] = None,
    background: Annotated[
        list[str] | None,
        typer.Option(help="A feature whose responses no user waits for; repeat for several."),
    ] = None,
    format: Annotated[
        Literal["table", "json", "markdown"], typer.Option(help="Output format.")
    ] = "table",
) -> None:
    """Print a savings plan ranked by dollars saved per month, with evidence and config."""
    traffic = _traffic(db, since, until)
    plan = build_plan(traffic, CostEngine(), background=background or ())
    if format == "json":
        sys.stdout.write(orjson.dumps(plan_json(plan), option=orjson.OPT_INDENT_2).decode() + "\n")
    elif format == "markdown":
        sys.stdout.write(plan_markdown(plan))
    else:
        print_plan(plan)


def whatif(
    *,
    policy: Annotated[Path, typer.Option(help="Policy file (YAML) with a `changes:` list.")],
    db: Annotated[
        str | None, typer.Option(help="Ledger database URL (default: the gateway's).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Start of the period.")] = None,
    until: Annotated[str | None, typer.Option(help="End of the period (exclusive).")] = None,
    format: Annotated[Literal["table", "json"], typer.Option(help="Output format.")] = "table",
) -> None:
    """Re-price the same traffic under another policy; print before and after by feature."""
    changes = load_policy(policy)
    traffic = _traffic(db, since, until)
    result = run_whatif(traffic, CostEngine(), changes)
    if format == "json":
        body = {
            "before_usd": format_usd(result.before),
            "after_usd": format_usd(result.after),
            "features": {
                name: {
                    "requests": outcome.requests,
                    "before_usd": format_usd(outcome.before),
                    "after_usd": format_usd(outcome.after),
                    "unpriced_after": outcome.unpriced_after,
                }
                for name, outcome in sorted(result.features.items())
            },
            "assumptions": result.assumptions,
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"What if: ${result.before:,.2f} becomes ${result.after:,.2f}")
    for name in ("feature", "requests", "before", "after", "change"):
        table.add_column(name, justify="left" if name == "feature" else "right")
    for name, outcome in sorted(result.features.items()):
        delta = outcome.after - outcome.before
        table.add_row(
            name,
            f"{outcome.requests:,}",
            f"${outcome.before:,.4f}",
            f"${outcome.after:,.4f}",
            f"{delta:+,.4f}",
        )
    console = Console()
    console.print(table)
    for note in result.assumptions:
        console.print(f"[dim]assumption: {note}[/dim]")


def forecast(
    *,
    db: Annotated[
        str | None, typer.Option(help="Ledger database URL (default: the gateway's).")
    ] = None,
    by: Annotated[
        Literal["total", "feature", "team"], typer.Option(help="Group the projection.")
    ] = "total",
) -> None:
    """Project this month's spend to its end from the daily series, with an interval."""
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    traffic = _traffic(db, month_start.isoformat(), None)
    projections = project_month(traffic, now, by=None if by == "total" else by)
    table = Table(title=f"Month-end projection for {month_start:%Y-%m}")
    for name in (by, "spent", "projected", "interval (about 95%)"):
        table.add_column(name, justify="left" if name == by else "right")
    for item in projections:
        table.add_row(
            item.key,
            f"${item.spent:,.2f}",
            f"${item.projected:,.2f}",
            f"${item.low:,.2f} – ${item.high:,.2f}",
        )
    console = Console()
    console.print(table)
    console.print(
        "[dim]the interval assumes days vary independently around the month's mean so far[/dim]"
    )


def _traffic(db: str | None, since: str | None, until: str | None) -> Traffic:
    now = datetime.now(UTC)
    start = parse_time(since, now, "--since") if since else None
    end = parse_time(until, now, "--until") if until else None
    ledger = open_ledger(db or default_db_url())
    try:
        return load_traffic(ledger, since=start, until=end)
    finally:
        ledger.close()


def register(app: typer.Typer) -> None:
    app.command("advise")(advise)
    app.command("whatif")(whatif)
    app.command("forecast")(forecast)
