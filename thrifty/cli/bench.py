"""The `thrifty bench models` command: compare models on an evaluation set through a gateway."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from thrifty.errors import RoutingError
from thrifty.ledger import open_ledger
from thrifty.routing.bench import BenchRun, ModelSummary, read_eval_set, run_benchmark, summarize
from thrifty.routing.bench.charts import write_html_report
from thrifty.routing.bench.evalset import GRADER_TYPES, GraderType
from thrifty.routing.bench.ledger import annotate_grades
from thrifty.routing.bench.results import BenchResult, write_outcomes
from thrifty.routing.plots import plots_available, write_pareto_chart

logger = logging.getLogger(__name__)

bench_app = typer.Typer(help="Benchmark models on quality, cost and latency.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the app."""
    app.add_typer(bench_app, name="bench")


@bench_app.command("models")
def models_command(
    eval_set: Annotated[
        Path, typer.Argument(help="Evaluation set: JSONL with prompt or messages, and a grader.")
    ],
    *,
    models: Annotated[str, typer.Option(help="Comma-separated models to compare.")],
    gateway: Annotated[
        str, typer.Option(help="Gateway URL, such as http://127.0.0.1:4000.")
    ] = "http://127.0.0.1:4000",
    api_key: Annotated[
        str, typer.Option(envvar="THRIFTY_API_KEY", help="API key sent to the gateway.")
    ] = "sandbox",
    judge_model: Annotated[
        str | None, typer.Option(help="Model that grades answers for the judge grader.")
    ] = None,
    grader: Annotated[
        str | None,
        typer.Option(help=f"Grader of items that name none: {', '.join(GRADER_TYPES)}."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    header: Annotated[
        list[str] | None,
        typer.Option(help="Extra request header as 'Name: value'; repeat for more."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(help="The gateway's ledger URL; each answer's grade is added to its record."),
    ] = None,
    feature: Annotated[
        str | None,
        typer.Option(
            help="Production feature the evaluation set stands for; stored with each grade "
            "(--db) so `thrifty advise` can estimate routing that feature's traffic."
        ),
    ] = None,
    output_dir: Annotated[
        Path, typer.Option(help="Folder for results.jsonl, outcomes.jsonl, the PNG and HTML.")
    ] = Path("bench_results"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run an evaluation set through a gateway on several models and compare them."""
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("name at least one model", param_hint="--models")
    items = read_eval_set(eval_set, default_grader=_grader_type(grader))
    run = BenchRun(
        gateway_url=gateway,
        models=names,
        api_key=api_key,
        concurrency=concurrency,
        judge_model=judge_model,
        extra_headers=_headers(header or []),
    )
    results = asyncio.run(run_benchmark(items, run))
    summaries = summarize(results, names)
    annotated = _annotate(db, results, run.run_id, feature)
    _write_outputs(output_dir, results, summaries, run.run_id)

    if as_json:
        document = {
            "run_id": run.run_id,
            "items": len(items),
            "annotated_records": annotated,
            "models": [summary.to_dict() for summary in summaries],
            "output_dir": str(output_dir),
        }
        typer.echo(json.dumps(document))
    else:
        _print_summary(summaries, run.run_id, Console())


def _grader_type(name: str | None) -> GraderType | None:
    if name is None:
        return None
    for grader in GRADER_TYPES:
        if grader == name:
            return grader
    raise typer.BadParameter(
        f"{name!r}; use one of {', '.join(GRADER_TYPES)}", param_hint="--grader"
    )


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{value!r} is not 'Name: value'", param_hint="--header")
        headers[name.strip()] = content.strip()
    return headers


def _annotate(
    db: str | None, results: list[BenchResult], run_id: str, feature: str | None
) -> int | None:
    if db is None:
        return None
    ledger = open_ledger(db)
    try:
        return annotate_grades(ledger, results, run_id, feature=feature)
    finally:
        ledger.close()


def _write_outputs(
    folder: Path, results: list[BenchResult], summaries: list[ModelSummary], run_id: str
) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(result.to_dict()) + "\n" for result in results)
        (folder / "results.jsonl").write_text(lines, encoding="utf-8")
        summary = {"run_id": run_id, "models": [s.to_dict() for s in summaries]}
        (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise RoutingError(f"cannot write benchmark results to {folder}: {exc.strerror}") from exc
    write_outcomes(results, folder / "outcomes.jsonl")
    write_html_report(summaries, folder / "pareto.html", title=f"Model benchmark {run_id}")
    if plots_available():
        write_pareto_chart(summaries, folder / "pareto.png")
    else:
        logger.warning("matplotlib is not installed, so pareto.png was not drawn")


def _print_summary(summaries: list[ModelSummary], run_id: str, console: Console) -> None:
    table = Table(title=f"Model benchmark {run_id}")
    table.add_column("model", no_wrap=True)
    for column in ("requests", "errors", "quality", "cost / 1,000 (USD)", "p50 ms"):
        table.add_column(column, justify="right")
    table.add_column("Pareto")
    for s in summaries:
        table.add_row(
            s.model,
            f"{s.requests:,}",
            f"{s.errors:,}",
            "-" if s.quality is None else f"{s.quality:.3f}",
            "unpriced" if s.cost_per_1000_usd is None else str(s.cost_per_1000_usd),
            "-" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.1f}",
            "*" if s.on_frontier else "",
        )
    console.print(table)
