"""The ``thrifty advise``, ``whatif`` and ``forecast`` commands, over the ledger."""

from __future__ import annotations

import asyncio
import io
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console
from rich.table import Table

from thrifty.advisor.alerting import FileOnce, Finding, Once, find_alerts, raise_new
from thrifty.advisor.bench_evidence import ModelScore, load_bench_scores
from thrifty.advisor.forecast import Bound, project_month
from thrifty.advisor.html_report import plan_html
from thrifty.advisor.plan import build_plan
from thrifty.advisor.render import plan_json, plan_markdown, print_plan
from thrifty.advisor.traffic import Traffic, load_traffic
from thrifty.advisor.whatif import load_policy, run_whatif
from thrifty.cli.report import parse_time
from thrifty.config import DEFAULT_STATE_DIR, load_config
from thrifty.control.alerts import Alert, AlertDispatcher
from thrifty.control.config import ControlConfig
from thrifty.errors import ConfigError
from thrifty.ledger import default_db_url, open_ledger
from thrifty.pricing.engine import CostEngine
from thrifty.pricing.money import format_usd

DEFAULT_ALERT_STATE = DEFAULT_STATE_DIR / "advisor-alerts.json"


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
        Literal["table", "json", "markdown", "html"],
        typer.Option(help="Output format; html is one self-contained page with charts."),
    ] = "table",
    output: Annotated[
        Path | None, typer.Option(help="Write the plan to this file instead of standard output.")
    ] = None,
    alerts: Annotated[
        bool,
        typer.Option(
            "--alerts",
            help="Instead of the plan, check anomalies and projected budget overspend and send "
            "new ones to the control.alerts sinks of --config.",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="thrifty.yaml with the control: alert sinks (--alerts)."),
    ] = None,
    alert_state: Annotated[
        Path,
        typer.Option(
            help="File that remembers the alerts sent, when control.redis is not configured."
        ),
    ] = DEFAULT_ALERT_STATE,
    bound: Annotated[
        Bound,
        typer.Option(
            help="Alert when this end of a budget's month-end projection is above its limit."
        ),
    ] = "central",
) -> None:
    """Print a savings plan ranked by dollars saved per month, with evidence and config.

    With --alerts, check for anomalies and projected overspend and send the new ones instead.
    """
    if alerts:
        send_alerts(db, config, alert_state, bound, format)
        return
    traffic = _traffic(db, since, until)
    plan = build_plan(traffic, CostEngine(), background=background or (), bench=_bench_scores(db))
    if format == "json":
        text = orjson.dumps(plan_json(plan), option=orjson.OPT_INDENT_2).decode() + "\n"
    elif format == "markdown":
        text = plan_markdown(plan)
    elif format == "html":
        now = datetime.now(UTC)
        totals = project_month(traffic, now)
        text = plan_html(plan, traffic, now, totals[0] if totals else None)
    elif output is None:
        print_plan(plan)
        return
    else:
        buffer = io.StringIO()
        print_plan(plan, Console(file=buffer, width=120))
        text = buffer.getvalue()
    _write(text, output)


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


def send_alerts(
    db: str | None, config_path: Path | None, state: Path, bound: Bound, format: str
) -> None:
    """Check the ledger for anomalies and projected overspend; send the new ones."""
    config = load_config(config_path, db_url=db)
    control = config.sections.get("control")
    control = control if isinstance(control, ControlConfig) else ControlConfig()
    now = datetime.now(UTC)
    ledger = open_ledger(db or (config.db_url if config_path is not None else default_db_url()))
    try:
        findings = find_alerts(ledger, now, bound=bound)
    finally:
        ledger.close()
    raised = asyncio.run(_deliver(findings, control, state))
    if format == "json":
        body = {
            "raised": [alert.payload() for alert in raised],
            "already_sent": len(findings) - len(raised),
        }
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console = Console()
    for alert in raised:
        console.print(f"[bold]{alert.event}[/bold]: {alert.message}", highlight=False)
    repeated = len(findings) - len(raised)
    console.print(f"[dim]{len(raised)} alerts sent; {repeated} found were sent before[/dim]")


async def _deliver(findings: list[Finding], control: ControlConfig, state: Path) -> list[Alert]:
    dispatcher = AlertDispatcher(control.alerts)
    once: Once
    counters = None
    if control.redis is not None:
        from thrifty.control.redis_counters import RedisCounters

        redis = control.redis
        counters = RedisCounters(redis.url, prefix=redis.prefix, timeout_s=redis.timeout_s)
        once = counters
    else:
        once = FileOnce(state)
    await dispatcher.start()
    try:
        return await raise_new(findings, once, dispatcher.raise_alert)
    finally:
        await dispatcher.stop()
        if counters is not None:
            await counters.close()


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the plan to {output}: {exc}; pick another --output"
        ) from exc


def _traffic(db: str | None, since: str | None, until: str | None) -> Traffic:
    now = datetime.now(UTC)
    start = parse_time(since, now, "--since") if since else None
    end = parse_time(until, now, "--until") if until else None
    ledger = open_ledger(db or default_db_url())
    try:
        return load_traffic(ledger, since=start, until=end)
    finally:
        ledger.close()


def _bench_scores(db: str | None) -> dict[str, dict[str, ModelScore]]:
    """Read every benchmark grade of the ledger, whatever the period studied."""
    ledger = open_ledger(db or default_db_url())
    try:
        return load_bench_scores(ledger)
    finally:
        ledger.close()


def register(app: typer.Typer) -> None:
    app.command("advise")(advise)
    app.command("whatif")(whatif)
    app.command("forecast")(forecast)
