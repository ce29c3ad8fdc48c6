"""The ``thrifty demo`` command: sandbox, gateway, a replayed workload and its report."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from thrifty.config import load_config
from thrifty.errors import ConfigError
from thrifty.gateway.app import create_app, gateway_of
from thrifty.gateway.server import port_is_free, uvicorn_server_for, with_sandbox
from thrifty.ledger import Report, ReportQuery, open_ledger
from thrifty.traces.readers import read_trace
from thrifty.traces.replay import HeadersFor, ReplaySummary, replay
from thrifty.traces.rows import TraceRow
from thrifty.traces.workload import Workload, demo_workload

logger = logging.getLogger(__name__)

DEMO_DIR = Path(".thrifty") / "demo"


def demo(
    *,
    requests: Annotated[int, typer.Option(min=1, help="Number of requests to replay.")] = 300,
    port: Annotated[int, typer.Option(help="Gateway port.")] = 4000,
    host: Annotated[str, typer.Option(help="Gateway address.")] = "127.0.0.1",
    trace: Annotated[
        Path | None, typer.Option(help="Replay this trace file instead of the generated workload.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model for rows of --trace.")] = "gpt-4o-mini",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    keep_running: Annotated[
        bool, typer.Option(help="Leave the gateway running after the report, until Ctrl-C.")
    ] = True,
) -> None:
    """Start the sandbox and the gateway, replay a workload, print its report."""
    if not port_is_free(host, port):
        raise ConfigError(f"port {port} on {host} is in use; pick another with --port")
    options = DemoOptions(requests, host, port, trace, model, concurrency, keep_running)
    asyncio.run(_run_demo(options))


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """The demo's command-line options."""

    requests: int
    host: str
    port: int
    trace: Path | None
    model: str
    concurrency: int
    keep_running: bool


async def _run_demo(options: DemoOptions) -> None:
    host, port = options.host, options.port
    console = Console()
    # Each demo starts from an empty ledger, so its report is this run alone.
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    db_url = f"sqlite:///{DEMO_DIR / 'thrifty.db'}"
    config = with_sandbox(load_config(None, db_url=db_url), host, port)
    config = replace(config, spool_dir=DEMO_DIR / "spool")
    app = create_app(config)
    server = uvicorn_server_for(app, host, port, log_level="warning")
    serving = asyncio.create_task(server.serve())
    await _wait_started(server, serving)
    url = f"http://{host}:{port}"
    console.print(f"Gateway on [bold]{url}[/bold], upstream: the offline sandbox at {url}/sandbox")

    rows, headers_for, label = _workload(options.requests, options.trace)
    summary = await _replay_with_progress(
        console, rows, url, options, headers_for=headers_for, label=label
    )
    await gateway_of(app).writer.flush()

    report = await asyncio.to_thread(_report, db_url)
    _print_results(console, report, summary, db_url)

    if options.keep_running:
        console.print(f"\nThe gateway is still running on {url}; press Ctrl-C to stop it.")
        await serving
    else:
        server.should_exit = True
        await serving


async def _wait_started(server: object, serving: asyncio.Task[None]) -> None:
    while not getattr(server, "started", False):
        if serving.done():
            serving.result()
            raise ConfigError("the gateway stopped during start-up; see the log above")
        await asyncio.sleep(0.02)


def _workload(requests: int, trace: Path | None) -> tuple[list[TraceRow], HeadersFor | None, str]:
    if trace is None:
        workload: Workload = demo_workload(requests)
        return list(workload.rows), workload.headers_for, "generated workload"
    rows = []
    for row in read_trace(trace):
        rows.append(row)
        if len(rows) == requests:
            break
    return rows, None, str(trace)


async def _replay_with_progress(
    console: Console,
    rows: list[TraceRow],
    url: str,
    options: DemoOptions,
    *,
    headers_for: HeadersFor | None,
    label: str,
) -> ReplaySummary:
    columns = (
        TextColumn("[bold]replaying[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=len(rows))
        return await replay(
            rows,
            base_url=url,
            model=options.model,
            concurrency=options.concurrency,
            headers_for=headers_for,
            model_for=_row_model,
            on_result=lambda _result: progress.advance(task),
        )


def _row_model(row: TraceRow) -> str | None:
    return row.model


def _report(db_url: str) -> tuple[Report, Report, int]:
    ledger = open_ledger(db_url)
    try:
        by_feature = ledger.report(ReportQuery(by=["feature", "model"]))
        totals = ledger.report(ReportQuery(by=[]))
        return by_feature, totals, ledger.count()
    finally:
        ledger.close()


def _print_results(
    console: Console, reports: tuple[Report, Report, int], summary: ReplaySummary, db_url: str
) -> None:
    from thrifty.cli.report import print_table

    by_feature, totals, stored = reports
    print_table(by_feature, ReportQuery(by=["feature", "model"]))
    ledger_cost = totals.totals.cost_usd
    console.print(
        f"replay: {summary.requests} requests, {summary.errors} errors, "
        f"p50 {_ms(summary.latency_p50_ms)}, p99 {_ms(summary.latency_p99_ms)}"
    )
    console.print(
        f"ledger: {stored} records, ${ledger_cost}; "
        f"the responses' X-Thrifty-Cost-USD headers add up to ${summary.cost_usd or Decimal(0)}"
    )
    if stored != summary.requests or summary.cost_usd != ledger_cost:
        console.print("[red]the report does not match what the gateway sent back[/red]")
    console.print(f"query it again with: thrifty report --db {db_url} --by user")


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
