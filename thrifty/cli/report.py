"""The `thrifty report` command: totals and groups from the ledger.

The JSON and CSV forms are a stable contract. JSON has ``requests``,
``errors``, the token totals, ``cost_usd`` (a decimal string, priced requests
only) and ``unpriced_requests`` at the top level, and a ``groups`` list with
each group's dimension values beside the same fields. CSV has a header row
and one row per group, or one row of totals without ``--by``.

When the period has response cache lookups or embedding calls made for the
cache, JSON and CSV also carry ``CACHE_FIELDS`` in the totals and each group:
lookups, hits, hit rate, dollars saved, embedding cost and the net saving
(saved minus embedding cost). Storage is not in the net saving, because the
ledger records no storage cost; ``thrifty cache stats --usd-per-gb-month``
estimates it.
"""

from __future__ import annotations

import csv
import re
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from thrifty.errors import LedgerError
from thrifty.ledger import (
    DIMENSIONS,
    Ledger,
    Report,
    ReportQuery,
    Totals,
    default_db_url,
    open_ledger,
)
from thrifty.ledger.database import normalize_url, safe_url, sqlite_path
from thrifty.ledger.levers import levers_of, savings_json, savings_lines

if TYPE_CHECKING:
    from thrifty.routing.report import RouteReport

TOTAL_FIELDS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_requests",
)
CACHE_FIELDS = (
    "cache_lookups",
    "cache_hits",
    "cache_semantic_hits",
    "cache_misses",
    "cache_hit_rate",
    "cache_saved_usd",
    "cache_unpriced_hits",
    "cache_embedding_requests",
    "cache_embedding_usd",
    "cache_net_saving_usd",
)
CACHE_NET_NOTE = (
    "Cache net = saved minus the cost of the cache's embedding calls; storage is not "
    "included (thrifty cache stats --usd-per-gb-month estimates it)."
)

_RELATIVE_TIME = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def register(app: typer.Typer) -> None:
    # A group, so that `thrifty report` keeps its options and gains subcommands.
    from thrifty.cli import chargeback

    report_app = typer.Typer(no_args_is_help=False, pretty_exceptions_enable=False)
    report_app.callback(invoke_without_command=True)(report)
    chargeback.register(report_app)
    app.add_typer(report_app, name="report")


def report(
    ctx: typer.Context,
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
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help=f"Comma-separated dimensions to group by: {', '.join(DIMENSIONS)}.",
        ),
    ] = "",
    since: Annotated[
        str | None,
        typer.Option(
            help="Include requests started at or after this time: an ISO-8601 date or "
            "datetime (UTC unless it has an offset) or a time ago such as 30m, 24h, 7d, 2w.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Include requests started before this time; same forms as --since."),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            help="Keep only requests with DIMENSION=VALUE (e.g. feature=chat, tag:env=prod); "
            "repeat for several.",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="table for people; json and csv (exact decimal costs) for scripts.",
        ),
    ] = OutputFormat.table,
) -> None:
    """Print request counts, tokens and cost from the ledger, in total and by group.

    `thrifty report chargeback` prints a monthly statement by team or cost center.
    """
    if ctx.invoked_subcommand is not None:
        return
    now = datetime.now(UTC)
    query = ReportQuery(
        by=[name.strip() for name in by.split(",") if name.strip()],
        since=None if since is None else parse_time(since, now, "--since"),
        until=None if until is None else parse_time(until, now, "--until"),
        where=_parse_where(where or []),
    )
    url = db or default_db_url()
    require_existing_sqlite(url)

    ledger = open_ledger(url)
    try:
        result = ledger.report(query)
        routes = _route_savings(ledger, query)
    finally:
        ledger.close()
    # The totals carry the Batch and Flex sums, read from the rollups.
    savings = levers_of(result.totals)

    if output_format is OutputFormat.json:
        document = {**report_json(result, query), "savings": savings_json(savings)}
        if routes is not None:
            document["routes"] = routes.json
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    elif output_format is OutputFormat.csv:
        _write_csv(result)
    else:
        print_table(result, query)
        if has_cache(result.totals):
            typer.echo(CACHE_NET_NOTE)
        for line in savings_lines(savings):
            typer.echo(line)
        for line in [] if routes is None else routes.lines:
            typer.echo(line)


def _route_savings(ledger: Ledger, query: ReportQuery) -> RouteReport | None:
    """Sum each route's cost against its strongest model, for a report ``--by route``."""
    if "route" not in query.by:
        return None
    # Imported here: thrifty.routing loads the learned router's dependencies.
    from thrifty.routing.report import route_report

    return route_report(ledger, query)


def parse_time(text: str, now: datetime, option: str) -> datetime:
    """Parse an ISO-8601 date or datetime, or a time ago such as ``24h``, as UTC."""
    relative = _RELATIVE_TIME.fullmatch(text.strip())
    if relative:
        amount, unit = relative.groups()
        return now - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"invalid time {text!r}; use an ISO-8601 date or datetime "
            "(2025-01-31, 2025-01-31T13:00:00Z) or a time ago such as 30m, 24h, 7d, 2w",
            param_hint=option,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _parse_where(items: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in items:
        name, sign, value = item.partition("=")
        if not sign or not name.strip():
            raise typer.BadParameter(
                f"invalid filter {item!r}; write it as DIMENSION=VALUE, e.g. feature=chat",
                param_hint="--where",
            )
        filters[name.strip()] = value
    return filters


def require_existing_sqlite(url: str) -> None:
    """Reject a SQLite path with no database rather than create an empty one."""
    path = sqlite_path(normalize_url(url))
    if path is not None and not path.exists():
        raise LedgerError(
            f"no ledger database at {path} ({safe_url(url)}); run the gateway "
            "(thrifty serve) to create one, or pass --db with the URL of an existing ledger"
        )


def report_json(result: Report, query: ReportQuery) -> dict[str, Any]:
    """Return the JSON form of a report: totals at the top level, then groups."""
    cache = has_cache(result.totals)
    return {
        "by": result.columns,
        "since": None if query.since is None else query.since.isoformat(),
        "until": None if query.until is None else query.until.isoformat(),
        **_totals_json(result.totals, cache=cache),
        "groups": [
            {**group.values, **_totals_json(group.totals, cache=cache)} for group in result.groups
        ],
    }


def has_cache(totals: Totals) -> bool:
    """Return whether the requests include response cache lookups or the cache's embedding calls."""
    return totals.cache_lookups > 0 or totals.cache_embedding_requests > 0


def _totals_json(totals: Totals, *, cache: bool = False) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(totals, name) for name in TOTAL_FIELDS}
    values["cost_usd"] = format(totals.cost_usd, "f")
    if cache:
        values.update(cache_json(totals))
    return values


def cache_json(totals: Totals) -> dict[str, Any]:
    """Return the ``CACHE_FIELDS`` of a Totals, money as exact decimal strings."""
    values: dict[str, Any] = {name: getattr(totals, name) for name in CACHE_FIELDS}
    for name in ("cache_saved_usd", "cache_embedding_usd", "cache_net_saving_usd"):
        values[name] = format(values[name], "f")
    return values


def _write_csv(result: Report) -> None:
    cache = has_cache(result.totals)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow([*result.columns, *TOTAL_FIELDS, *(CACHE_FIELDS if cache else ())])
    if not result.columns:
        writer.writerow(_csv_cells(_totals_json(result.totals, cache=cache)))
        return
    for group in result.groups:
        values = ["" if value is None else value for value in group.values.values()]
        writer.writerow([*values, *_csv_cells(_totals_json(group.totals, cache=cache))])


def _csv_cells(values: dict[str, Any]) -> list[Any]:
    return ["" if value is None else value for value in values.values()]


def print_table(result: Report, query: ReportQuery, console: Console | None = None) -> None:
    """Print a report as a Rich table, costs rounded for reading.

    Count columns whose total is zero (no errors, no reasoning tokens...) are
    left out so the table fits a terminal; JSON and CSV keep every field. The
    response cache's hit rate, saving and net saving are shown when the
    requests include cache lookups or the cache's embedding calls.
    """
    table = Table(title="Thrifty report", caption=_period(query))
    for name in result.columns:
        table.add_column(name, no_wrap=True)
    cache = has_cache(result.totals)
    headers = [*_CELL_HEADERS, *(_CACHE_HEADERS if cache else ())]
    total_cells = _table_cells(result.totals, cache=cache)
    shown = [
        index
        for index, (header, cell) in enumerate(zip(headers, total_cells, strict=True))
        if header in _ALWAYS_SHOWN or header in _CACHE_HEADERS or cell not in ("0", "$0")
    ]
    for index in shown:
        table.add_column(headers[index], justify="right", no_wrap=True)

    for group in result.groups:
        labels = ["(none)" if value is None else value for value in group.values.values()]
        cells = _table_cells(group.totals, cache=cache)
        table.add_row(*labels, *[cells[index] for index in shown])
    if result.groups:
        table.add_section()
    total_labels = ["total", *[""] * (len(result.columns) - 1)] if result.columns else []
    table.add_row(*total_labels, *[total_cells[index] for index in shown], style="bold")

    if console is None:
        console = _console_for(table)
    console.print(table)


_CELL_HEADERS = (
    "Requests",
    "Errors",
    "Input",
    "Output",
    "Cache read",
    "Cache write",
    "Reasoning",
    "Cost (USD)",
    "Unpriced",
)
_ALWAYS_SHOWN = frozenset({"Requests", "Input", "Output", "Cost (USD)"})
_CACHE_HEADERS = ("Cache hit rate", "Cache saved", "Cache net")


def _console_for(table: Table) -> Console:
    console = Console()
    if not console.is_terminal:
        # A pipe or file has no width to fit, so print every column in full.
        unbounded = console.options.update(max_width=10_000)
        natural = Measurement.get(console, unbounded, table).maximum
        console = Console(width=max(natural, 80))
    return console


def _table_cells(totals: Totals, *, cache: bool = False) -> list[str]:
    counts = (
        totals.requests,
        totals.errors,
        totals.input_tokens,
        totals.output_tokens,
        totals.cache_read_tokens,
        totals.cache_write_tokens,
        totals.reasoning_tokens,
    )
    cells = [f"{count:,}" for count in counts]
    cells += [_display_usd(totals.cost_usd), f"{totals.unpriced_requests:,}"]
    if cache:
        rate = totals.cache_hit_rate
        cells += [
            "-" if rate is None else f"{rate:.1%}",
            _display_usd(totals.cache_saved_usd),
            _display_usd(totals.cache_net_saving_usd),
        ]
    return cells


def _display_usd(amount: Decimal) -> str:
    """Round a cost for the table; the JSON and CSV forms keep every digit."""
    if amount == 0 or abs(amount) >= Decimal("0.000001"):
        return f"{amount:,.6f}"
    return f"{amount:.3e}"


def _period(query: ReportQuery) -> str:
    start = "the first request" if query.since is None else query.since.isoformat()
    end = "now" if query.until is None else query.until.isoformat()
    return f"requests started from {start} until {end}; costs rounded, --format json is exact"
