"""The `thrifty replay` command: drive a gateway from a trace file."""

from __future__ import annotations

import asyncio
import json
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from thrifty.traces import ReplaySummary, RequestResult, TraceFormat, read_trace, replay

DEFAULT_MODEL = "gpt-4o-mini"


def register(app: typer.Typer) -> None:
    """Add the ``replay`` command to the app."""
    app.command("replay")(replay_command)


def replay_command(
    trace: Annotated[
        Path, typer.Argument(help="Trace file: Azure LLM CSV, Mooncake JSONL or BurstGPT CSV.")
    ],
    *,
    gateway: Annotated[
        str, typer.Option("--gateway", help="Gateway URL, such as http://127.0.0.1:4000.")
    ],
    model: Annotated[str, typer.Option(help="Model named in every request.")] = DEFAULT_MODEL,
    limit: Annotated[int | None, typer.Option(min=0, help="Replay only the first N rows.")] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Maximum number of requests in flight.")
    ] = 8,
    speed: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Replay the trace's timing sped up by this factor (2 = twice as fast); "
            "0 sends as fast as --concurrency allows.",
        ),
    ] = 0.0,
    trace_format: Annotated[
        TraceFormat | None,
        typer.Option(
            "--format", help="Trace format; detected from the file's first line when omitted."
        ),
    ] = None,
    api_key: Annotated[
        str, typer.Option(envvar="THRIFTY_API_KEY", help="API key sent to the gateway.")
    ] = "sandbox",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object.")
    ] = False,
) -> None:
    """Replay a trace through a gateway, reproducing each row's input and output tokens."""
    # Read the rows once before sending anything, so a malformed file fails
    # with no request sent; this also gives the progress bar its total.
    total = sum(1 for _ in islice(read_trace(trace, trace_format), limit))

    stderr = Console(stderr=True)
    with Progress(console=stderr, transient=True, disable=not stderr.is_terminal) as progress:
        task = progress.add_task("replaying", total=total)

        def advance(result: RequestResult) -> None:
            progress.advance(task)

        rows = read_trace(trace, trace_format)
        summary = asyncio.run(
            replay(
                rows,
                base_url=gateway,
                model=model,
                api_key=api_key,
                concurrency=concurrency,
                speed=speed,
                limit=limit,
                on_result=advance,
            )
        )

    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        _print_table(summary, Console())


def _print_table(summary: ReplaySummary, console: Console) -> None:
    table = Table(title="Replay summary")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("requests", f"{summary.requests:,}")
    table.add_row("errors", f"{summary.errors:,}")
    table.add_row("input tokens", f"{summary.input_tokens:,}")
    table.add_row("output tokens", f"{summary.output_tokens:,}")
    table.add_row("cache read tokens", f"{summary.cache_read_tokens:,}")
    table.add_row("cost (USD)", _cost_text(summary))
    table.add_row("latency p50 (ms)", _ms_text(summary.latency_p50_ms))
    table.add_row("latency p99 (ms)", _ms_text(summary.latency_p99_ms))
    table.add_row("wall time (s)", f"{summary.wall_s:.2f}")
    console.print(table)
    for message in summary.error_messages:
        console.print(f"error: {message}", markup=False, highlight=False)


def _cost_text(summary: ReplaySummary) -> str:
    if summary.requests == summary.errors:
        return "-"
    if summary.cost_usd is None:
        return "unpriced"
    if summary.unpriced:
        return f"{summary.cost_usd} (+{summary.unpriced:,} unpriced)"
    return str(summary.cost_usd)


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
