"""The `thrifty prices` commands (list, show, missing) and `thrifty reprice`.

``prices list`` and ``prices show`` print the catalog (genai-prices data and
the ``prices:`` section of thrifty.yaml) with every rate, tier and variant
and the date each took effect. ``prices missing`` lists the models of
unpriced requests in the ledger. ``reprice`` prices stored requests again
with the current prices and keeps the figures it replaces. Each prints
Rich tables, or JSON with ``--json`` (money as exact decimal strings).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

if TYPE_CHECKING:
    from thrifty.config import GatewayConfig
    from thrifty.pricing.listing import ModelSheet, ModelSummary, PriceBlock
    from thrifty.pricing.repricing import RepriceSummary, UnpricedModel

prices_app = typer.Typer(
    name="prices",
    help="Show the price catalog, and the models the ledger has no price for.",
    no_args_is_help=True,
)

_CONFIG_HELP = "thrifty.yaml whose prices: section (custom prices, discounts) applies."
_JSON_HELP = "Print JSON (exact decimal strings) instead of tables."
_TIME_HELP = (
    "an ISO-8601 date or datetime (UTC unless it has an offset) or a time ago such as 24h, 7d"
)


def register(app: typer.Typer) -> None:
    """Add the `prices` command group and the `reprice` command to the app."""
    app.add_typer(prices_app, name="prices")
    app.command("reprice")(reprice)


@prices_app.command("list")
def list_prices(
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only this provider's models (e.g. openai).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help=f"Prices in force at this time: {_TIME_HELP}.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """List models with their standard prices per million tokens, tiers and modes."""
    from thrifty.pricing.catalog import Catalog
    from thrifty.pricing.listing import list_models

    moment = _moment(at, "--at")
    settings = _load(config)
    prices = settings.sections.get("prices") if settings is not None else None
    summaries = list_models(Catalog(), provider=provider, at=moment, config=prices)
    if as_json:
        _print_json({"models": [_summary_json(summary) for summary in summaries]})
        return
    _print_table(_summaries_table(summaries, provider))


@prices_app.command("show")
def show_prices(
    model: Annotated[str, typer.Argument(help="Model name, as a request names it.")],
    provider: Annotated[
        str | None,
        typer.Option("--provider", help="Provider the model is served by (default: the first)."),
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help=f"Mark the prices in force at: {_TIME_HELP}.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help=_CONFIG_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """Show every rate, tier and variant of one model, with the date each took effect."""
    from thrifty.pricing.catalog import Catalog
    from thrifty.pricing.listing import model_sheet

    moment = _moment(at, "--at")
    settings = _load(config)
    prices = settings.sections.get("prices") if settings is not None else None
    if provider is not None and settings is not None and provider in settings.providers:
        provider = settings.providers[provider].price_provider
    sheet = model_sheet(Catalog(), model, provider=provider, at=moment, config=prices)
    if as_json:
        _print_json(_sheet_json(sheet))
        return
    _print_table(_sheet_table(sheet))


@prices_app.command("missing")
def missing_prices(
    db: Annotated[str | None, typer.Option("--db", help=_db_help(), show_default=False)] = None,
    since: Annotated[
        str | None, typer.Option("--since", help=f"Only requests started from: {_TIME_HELP}.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Only requests started before this time.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """List the models of unpriced requests in the ledger, with their request counts."""
    from thrifty.ledger import default_db_url, open_ledger
    from thrifty.pricing.repricing import unpriced_models

    url = db or default_db_url()
    _require_existing_sqlite(url)
    ledger = open_ledger(url)
    try:
        models = unpriced_models(
            ledger, since=_moment(since, "--since"), until=_moment(until, "--until")
        )
    finally:
        ledger.close()
    if as_json:
        _print_json({"models": [_unpriced_json(model) for model in models]})
        return
    if not models:
        typer.echo("No unpriced requests in the ledger.")
        return
    _print_table(_unpriced_table(models))


def reprice(
    *,
    since: Annotated[
        str, typer.Option("--since", help=f"Reprice requests started from: {_TIME_HELP}.")
    ],
    until: Annotated[
        str | None, typer.Option("--until", help="Only requests started before this time.")
    ] = None,
    db: Annotated[str | None, typer.Option("--db", help=_db_help(), show_default=False)] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="thrifty.yaml with the prices: overrides to apply (and its ledger.url "
            "unless --db is given). Without it, catalog prices only.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=_JSON_HELP)] = False,
) -> None:
    """Price stored requests again with the current prices; keep the figures replaced."""
    from thrifty.ledger import default_db_url, open_ledger
    from thrifty.pricing import CostEngine
    from thrifty.pricing.repricing import reprice as reprice_ledger

    start = _moment(since, "--since")
    assert start is not None
    end = _moment(until, "--until")
    settings = _load(config, db_url=db)
    url = db or (settings.db_url if settings is not None else default_db_url())
    _require_existing_sqlite(url)
    prices = settings.sections.get("prices") if settings is not None else None
    engine = CostEngine.from_config(prices, warn_unpriced=False)
    providers = (
        {name: item.price_provider for name, item in settings.providers.items()}
        if settings is not None
        else {}
    )

    ledger = open_ledger(url)
    try:
        summary = reprice_ledger(
            ledger, engine, since=start, until=end, pricing_providers=providers, dry_run=dry_run
        )
    finally:
        ledger.close()
    if as_json:
        _print_json(_reprice_json(summary, start, end, dry_run))
        return
    _print_reprice(summary, dry_run)


def _db_help() -> str:
    return (
        "Ledger database URL (sqlite:///PATH or postgresql://...). "
        "Default: $THRIFTY_DB_URL, else sqlite:///.thrifty/thrifty.db."
    )


def _moment(text: str | None, option: str) -> datetime | None:
    from thrifty.cli.report import parse_time

    return None if text is None else parse_time(text, datetime.now(UTC), option)


def _load(path: Path | None, *, db_url: str | None = None) -> GatewayConfig | None:
    from thrifty.config import load_config

    return None if path is None else load_config(path, db_url=db_url)


def _require_existing_sqlite(url: str) -> None:
    """Reject a SQLite path with no database rather than create an empty one."""
    from thrifty.errors import LedgerError
    from thrifty.ledger.database import normalize_url, safe_url, sqlite_path

    path = sqlite_path(normalize_url(url))
    if path is not None and not path.exists():
        raise LedgerError(
            f"no ledger database at {path} ({safe_url(url)}); run the gateway "
            "(thrifty serve) to create one, or pass --db with the URL of an existing ledger"
        )


def _print_json(value: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")


def _print_table(table: Table) -> None:
    console = Console()
    if not console.is_terminal:
        # A pipe or file has no width to fit, so print every column in full.
        unbounded = console.options.update(max_width=10_000)
        natural = Measurement.get(console, unbounded, table).maximum
        console = Console(width=max(natural, 80))
    console.print(table)


def _usd(amount: Decimal | None) -> str | None:
    from thrifty.pricing import format_usd

    return None if amount is None else format_usd(amount)


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _summary_json(summary: ModelSummary) -> dict[str, Any]:
    return {
        "provider": summary.provider,
        "model": summary.model,
        "name": summary.name,
        "context_window": summary.context_window,
        "input_mtok": _usd(summary.input_mtok),
        "cache_read_mtok": _usd(summary.cache_read_mtok),
        "output_mtok": _usd(summary.output_mtok),
        "tiered": summary.tiered,
        "variants": list(summary.variants),
        "since": _day(summary.since),
        "source": summary.source,
    }


def _summaries_table(summaries: list[ModelSummary], provider: str | None) -> Table:
    title = "Prices" if provider is None else f"Prices of {provider}"
    table = Table(title=title, caption="USD per million tokens; + marks long-context tiers")
    for header in ("Provider", "Model", "Input", "Cache read", "Output", "Context"):
        table.add_column(header, justify="left" if header in ("Provider", "Model") else "right")
    table.add_column("Tiers and modes")
    table.add_column("Since")
    for summary in summaries:
        mark = "+" if summary.tiered else ""
        table.add_row(
            summary.provider,
            summary.model,
            _cell(summary.input_mtok, mark),
            _cell(summary.cache_read_mtok, mark),
            _cell(summary.output_mtok, mark),
            f"{summary.context_window:,}" if summary.context_window else "",
            ", ".join(summary.variants),
            _day(summary.since) or "",
        )
    return table


def _cell(amount: Decimal | None, mark: str) -> str:
    text = _usd(amount)
    return "" if text is None else f"{text}{mark}"


def _sheet_json(sheet: ModelSheet) -> dict[str, Any]:
    discount = sheet.discount
    return {
        "provider": sheet.provider,
        "provider_name": sheet.provider_name,
        "model": sheet.model,
        "name": sheet.name,
        "context_window": sheet.context_window,
        "source": sheet.source,
        "deprecated": sheet.deprecated,
        "discount": None
        if discount is None
        else {"percent": _usd(discount.percent), "key": discount.key},
        "blocks": [_block_json(block) for block in sheet.blocks],
    }


def _block_json(block: PriceBlock) -> dict[str, Any]:
    return {
        "applies_to": block.applies_to,
        "starts": _day(block.starts),
        "daily": block.daily,
        "in_force": block.in_force,
        "note": block.note,
        "rates": [
            {
                "key": rate.key,
                "label": rate.label,
                "unit": rate.unit,
                "usd": _usd(rate.base),
                "tiers": [
                    {"above_input_tokens": start, "usd": _usd(price)} for start, price in rate.tiers
                ],
            }
            for rate in block.rates
        ],
    }


def _sheet_table(sheet: ModelSheet) -> Table:
    title = f"{sheet.model} ({sheet.provider_name})"
    details = [sheet.source]
    if sheet.context_window:
        details.append(f"context {sheet.context_window:,} tokens")
    if sheet.deprecated:
        details.append("deprecated")
    if sheet.discount is not None:
        details.append(sheet.discount.describe())
    table = Table(title=title, caption="; ".join(details))
    for header in ("Applies to", "Starts", "In force", "Price", "USD", "Unit", "Long context"):
        table.add_column(header, justify="right" if header == "USD" else "left")
    for index, block in enumerate(sheet.blocks):
        if index:
            table.add_section()
        _add_block_rows(table, block)
    return table


def _add_block_rows(table: Table, block: PriceBlock) -> None:
    applies = block.applies_to if block.daily is None else f"{block.applies_to}, {block.daily}"
    starts = _day(block.starts) or "always"
    in_force = "yes" if block.in_force else "no"
    if not block.rates:
        note = block.note or (
            "no rates in the catalog" if block.applies_to == "standard" else "the standard rates"
        )
        table.add_row(applies, starts, in_force, note, "", "", "")
        return
    for number, rate in enumerate(block.rates):
        tiers = ", ".join(f"{_usd(price)} above {start:,} input" for start, price in rate.tiers)
        first = number == 0
        table.add_row(
            applies if first else "",
            starts if first else "",
            in_force if first else "",
            rate.label,
            _usd(rate.base),
            rate.unit,
            tiers,
        )


def _unpriced_json(model: UnpricedModel) -> dict[str, Any]:
    return {
        "provider": model.provider,
        "model": model.model,
        "requests": model.requests,
        "input_tokens": model.input_tokens,
        "output_tokens": model.output_tokens,
        "first_seen": model.first_seen.isoformat(),
        "last_seen": model.last_seen.isoformat(),
    }


def _unpriced_table(models: list[UnpricedModel]) -> Table:
    table = Table(
        title="Unpriced models",
        caption="Add their prices under `prices:` in thrifty.yaml, then run `thrifty reprice`",
    )
    for header in ("Provider", "Model", "Requests", "Input", "Output", "First seen", "Last seen"):
        table.add_column(
            header, justify="right" if header in ("Requests", "Input", "Output") else "left"
        )
    for model in models:
        table.add_row(
            model.provider,
            model.model,
            f"{model.requests:,}",
            f"{model.input_tokens:,}",
            f"{model.output_tokens:,}",
            model.first_seen.strftime("%Y-%m-%d %H:%M"),
            model.last_seen.strftime("%Y-%m-%d %H:%M"),
        )
    return table


def _reprice_json(
    summary: RepriceSummary, since: datetime, until: datetime | None, dry_run: bool
) -> dict[str, Any]:
    return {
        "since": since.isoformat(),
        "until": None if until is None else until.isoformat(),
        "dry_run": dry_run,
        "examined": summary.examined,
        "changed": summary.changed,
        "newly_priced": summary.newly_priced,
        "unchanged": summary.unchanged,
        "still_unpriced": summary.still_unpriced,
        "skipped": summary.skipped,
        "skip_reasons": summary.skip_reasons,
        "cost_before_usd": _usd(summary.cost_before),
        "cost_after_usd": _usd(summary.cost_after),
    }


def _print_reprice(summary: RepriceSummary, dry_run: bool) -> None:
    verb = "would change" if dry_run else "changed"
    lines = [
        f"{summary.examined:,} requests examined; {verb} {summary.changed:,} "
        f"({summary.newly_priced:,} of them unpriced before), "
        f"{summary.unchanged:,} unchanged, {summary.still_unpriced:,} still unpriced, "
        f"{summary.skipped:,} skipped.",
        f"Cost of the changed requests: ${_usd(summary.cost_before)} before, "
        f"${_usd(summary.cost_after)} after.",
    ]
    for reason, count in sorted(summary.skip_reasons.items()):
        lines.append(f"Skipped {count:,}: {reason}.")
    if dry_run:
        lines.append("Dry run: nothing was written.")
    typer.echo("\n".join(lines))
