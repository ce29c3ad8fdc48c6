"""The `thrifty batch` commands: submit, validate, status, wait, cancel, collect and list.

Jobs live in the ledger database (``--db``), so every command works from
any process that opens it. Each job's part and result files are kept in
``--work-dir`` (``.thrifty/batches`` by default), under the job's id.
"""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress_bar import ProgressBar
from rich.table import Table

from thrifty.batch.inputs import INPUT_FORMATS, InputFormat, line_format, read_input
from thrifty.batch.manager import (
    DEFAULT_MAX_ROUNDS,
    DEFAULT_POLL_INTERVAL_S,
    DEFAULT_ROOT,
    BatchManager,
    JobOptions,
    JobStatus,
)
from thrifty.batch.plan import JobPlan, plan_job
from thrifty.batch.validate import InputOptions
from thrifty.config import ProviderConfig, ProviderKind, load_config
from thrifty.errors import BatchError, BatchInputError
from thrifty.ledger import default_db_url

batch_app = typer.Typer(
    name="batch",
    help="Submit OpenAI and Anthropic batch jobs (half price), follow them and collect results.",
    no_args_is_help=True,
)

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNIT_HOURS = {"m": 1 / 60, "h": 1, "d": 24, "w": 24 * 7}
_ISSUES_SHOWN = 200


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Ledger database URL, where jobs are kept. "
        "Default: $THRIFTY_DB_URL, else sqlite:///.thrifty/thrifty.db.",
        show_default=False,
    ),
]
WorkDirOption = Annotated[
    Path, typer.Option("--work-dir", help="Folder for each job's part and result files.")
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table for people, json for scripts.")
]
ProviderOption = Annotated[
    str | None,
    typer.Option(
        "--provider",
        help="Provider to submit to: openai, anthropic, or another name under providers: in "
        "thrifty.yaml. Default: the input file's format decides.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="thrifty.yaml with the providers.")
]
BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="Send to this API address instead of the provider's."),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Use this model for every request.")
]
MaxTokensOption = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        min=1,
        help="Output limit for requests converted to Anthropic that set none.",
    ),
]
SplitOption = Annotated[
    bool,
    typer.Option(
        "--split-by-model", help="Put each model and endpoint in its own batches (OpenAI)."
    ),
]
InputFormatOption = Annotated[
    str | None,
    typer.Option(
        "--input-format",
        help=f"Input format: {', '.join(INPUT_FORMATS)}. Default: detected from the first line.",
        show_default=False,
    ),
]


@batch_app.command("submit")
def submit_command(
    file: Annotated[Path, typer.Argument(help="Input file: JSON Lines (or a .json document).")],
    *,
    provider: ProviderOption = None,
    name: Annotated[str | None, typer.Option("--name", help="A name for the job.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every result is in.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate and estimate the cost at batch and synchronous rates; send nothing.",
        ),
    ] = False,
    average_output_tokens: Annotated[
        int | None,
        typer.Option(
            "--average-output-tokens",
            min=0,
            help="With --dry-run: output tokens per request that sets no output limit.",
        ),
    ] = None,
    model: ModelOption = None,
    max_tokens: MaxTokensOption = None,
    split_by_model: SplitOption = False,
    input_format: InputFormatOption = None,
    max_rounds: Annotated[
        int,
        typer.Option(
            "--max-rounds",
            min=0,
            help="Rounds of resubmission for expired and retryable failed requests.",
        ),
    ] = DEFAULT_MAX_ROUNDS,
    deadline: Annotated[
        str,
        typer.Option(
            "--deadline",
            help="Stop resubmitting this long after submission: e.g. 90m, 72h, 7d.",
        ),
    ] = "72h",
    feature: Annotated[str | None, typer.Option(help="Feature to attribute results to.")] = None,
    team: Annotated[str | None, typer.Option(help="Team to attribute results to.")] = None,
    project: Annotated[str | None, typer.Option(help="Project to attribute results to.")] = None,
    user: Annotated[str | None, typer.Option(help="User to attribute results to.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE tag of every result; repeatable.")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option("--metadata", help="KEY=VALUE sent with each OpenAI batch; repeatable."),
    ] = None,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between polls with --wait.")
    ] = DEFAULT_POLL_INTERVAL_S,
    config: ConfigOption = None,
    base_url: BaseUrlOption = None,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Validate, split and submit a batch file; --dry-run estimates its cost instead."""
    target = _provider(file, provider, config, base_url)
    input_options = InputOptions(
        provider=target.kind,
        input_format=_input_format(input_format),
        split_by_model=split_by_model,
        max_tokens=max_tokens,
        model=model,
    )
    with _manager(db, work_dir) as manager:
        if dry_run:
            plan = manager.estimate(
                file, target, input_options, average_output_tokens=average_output_tokens
            )
            _exit_on_issues(file, plan)
            _print_estimate(plan, output_format)
            return
        options = JobOptions(
            name=name,
            input=input_options,
            max_rounds=max_rounds,
            deadline=parse_duration(deadline, "--deadline"),
            team=team,
            project=project,
            user=user,
            feature=feature,
            tags=_pairs(tag, "--tag"),
            metadata=_pairs(metadata, "--metadata"),
        )
        try:
            status = manager.submit(file, target, options)
        except BatchInputError as exc:
            _print_issues(exc.issues)
            raise
        if wait:
            status = _wait(manager, status.job.job_id, poll_interval, None, output_format)
        _print_status(status, output_format)


@batch_app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="Input file: JSON Lines (or a .json document).")],
    *,
    provider: ProviderOption = None,
    model: ModelOption = None,
    max_tokens: MaxTokensOption = None,
    split_by_model: SplitOption = False,
    input_format: InputFormatOption = None,
    config: ConfigOption = None,
) -> None:
    """Check a batch file and list every invalid line; exit 1 if there is any."""
    target = _provider(file, provider, config, None)
    options = InputOptions(
        provider=target.kind,
        input_format=_input_format(input_format),
        split_by_model=split_by_model,
        max_tokens=max_tokens,
        model=model,
    )
    plan = plan_job(file, options)
    if plan.issues:
        _print_issues([str(issue) for issue in plan.issues])
        typer.echo(f"{file}: {len(plan.issues)} invalid lines", err=True)
        # SystemExit, not typer.Exit: main() runs the app with standalone_mode
        # off, where click returns an Exit's code instead of exiting with it.
        raise SystemExit(1)
    parts = len(plan.parts)
    typer.echo(
        f"{file}: {len(plan.requests):,} valid {target.kind} requests in {parts} "
        f"batch{'es' if parts != 1 else ''}"
    )


@batch_app.command("status")
def status_command(
    job: Annotated[
        str | None, typer.Argument(help="Job id; default: the newest job.", show_default=False)
    ] = None,
    *,
    refresh: Annotated[
        bool, typer.Option("--refresh/--no-refresh", help="Ask the provider for progress first.")
    ] = True,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Show a job's progress, request counts, ETA and cost so far."""
    with _manager(db, work_dir) as manager:
        job_id = job or _newest_job(manager)
        # A batch a client created through the gateway is polled by the gateway,
        # which has the client's credentials; here its stored status is shown.
        polls = refresh and manager.store.require_job(job_id).source == "manager"
        status = manager.refresh(job_id) if polls else manager.status(job_id)
        _print_status(status, output_format)


@batch_app.command("wait")
def wait_command(
    job: Annotated[str, typer.Argument(help="Job id.")],
    *,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between polls.")
    ] = DEFAULT_POLL_INTERVAL_S,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Give up after this many seconds.")
    ] = None,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Wait until every request of a job has a final result (resubmitting as needed)."""
    with _manager(db, work_dir) as manager:
        status = _wait(manager, job, poll_interval, timeout, output_format)
        _print_status(status, output_format)


@batch_app.command("cancel")
def cancel_command(
    job: Annotated[str, typer.Argument(help="Job id.")],
    *,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Cancel a job's provider batches; results already in are kept."""
    with _manager(db, work_dir) as manager:
        _print_status(manager.cancel(job), output_format)


@batch_app.command("collect")
def collect_command(
    job: Annotated[str, typer.Argument(help="Job id.")],
    *,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Results file. Default: the input file's name + .results.jsonl."
        ),
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Write what is in before the job has ended.")
    ] = False,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Write a job's results in input order, one line per request with its status."""
    with _manager(db, work_dir) as manager:
        stored = manager.store.require_job(job)
        target = output or _default_output(stored.input_path, job)
        summary = manager.collect(job, target, partial=partial)
    counts = dict(sorted(summary.counts.items()))
    if output_format is OutputFormat.json:
        _echo_json({"job": job, "output": str(summary.path), "counts": counts})
        return
    detail = ", ".join(f"{count:,} {status}" for status, count in counts.items())
    typer.echo(f"wrote {summary.written:,} results to {summary.path} ({detail})")


@batch_app.command("list")
def list_command(
    *,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="Maximum number of jobs to list.")
    ] = 20,
    db: DbOption = None,
    work_dir: WorkDirOption = DEFAULT_ROOT,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """List jobs, newest first."""
    with _manager(db, work_dir) as manager:
        statuses = [manager.status(job.job_id) for job in manager.list_jobs(limit)]
    if output_format is OutputFormat.json:
        _echo_json([status_json(status) for status in statuses])
        return
    table = Table(title="Batch jobs")
    for header in (
        "Job",
        "Name",
        "Provider",
        "Status",
        "Done",
        "Requests",
        "Cost (USD)",
        "Created",
    ):
        table.add_column(header, no_wrap=True)
    for status in statuses:
        job = status.job
        table.add_row(
            job.job_id,
            job.name or "",
            job.provider,
            job.status,
            f"{status.done:,}",
            f"{status.total:,}",
            f"{status.cost.cost_usd:.6f}",
            job.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    Console().print(table)


def status_json(status: JobStatus) -> dict[str, Any]:
    """Return a job's status as JSON: the job, its request counts, parts and cost."""
    job = status.job
    return {
        "job": job.job_id,
        "name": job.name,
        "status": job.status,
        "source": job.source,
        "provider": job.provider,
        "requests": status.total,
        "done": status.done,
        "eta_s": None if status.eta_s is None else round(status.eta_s, 1),
        "round": job.round,
        "counts": dict(sorted(status.counts.items())),
        "cost_usd": format(status.cost.cost_usd, "f"),
        "standard_cost_usd": format(status.cost.standard_cost_usd, "f"),
        "savings_usd": format(status.cost.savings_usd, "f"),
        "created_at": job.created_at.isoformat(),
        "ended_at": None if job.ended_at is None else job.ended_at.isoformat(),
        "message": job.message,
        "parts": [
            {
                "part": part.part_id,
                "round": part.round,
                "requests": part.request_count,
                "state": part.state,
                "provider_batch_id": part.provider_batch_id,
                "provider_status": part.provider_status,
            }
            for part in status.parts
        ],
    }


def parse_duration(text: str, option: str) -> timedelta:
    """Parse a duration such as ``90m``, ``72h``, ``7d`` or ``2w``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"invalid duration {text!r}; write a number and a unit, e.g. 90m, 72h, 7d or 2w",
            param_hint=option,
        )
    amount, unit = match.groups()
    return timedelta(hours=int(amount) * _UNIT_HOURS[unit])


def _provider(
    file: Path, name: str | None, config_path: Path | None, base_url: str | None
) -> ProviderConfig:
    """Return the provider a file goes to: the named one, or the one its format is for."""
    config = load_config(config_path)
    if name is None:
        kind = _detected_kind(file)
        provider = config.provider_for_kind(kind)
    else:
        found = config.providers.get(name)
        if found is None:
            raise typer.BadParameter(
                f"no provider named {name!r}; use one of {', '.join(sorted(config.providers))}",
                param_hint="--provider",
            )
        provider = found
    if base_url is not None:
        provider = ProviderConfig(
            provider.name,
            provider.kind,
            base_url.rstrip("/"),
            provider.api_key_env,
            provider.pricing_provider,
        )
    return provider


def _detected_kind(file: Path) -> ProviderKind:
    for line in read_input(file):
        if isinstance(line.value, dict):
            found = line_format(line.value)
            if found is not None:
                return "anthropic" if found == "anthropic" else "openai"
    return "openai"


def _input_format(value: str | None) -> InputFormat | None:
    if value is None:
        return None
    for known in INPUT_FORMATS:
        if value == known:
            return known
    raise typer.BadParameter(
        f"unknown input format {value!r}; use {', '.join(INPUT_FORMATS)}",
        param_hint="--input-format",
    )


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sign, value = item.partition("=")
        if not sign or not key.strip():
            raise typer.BadParameter(f"invalid pair {item!r}; write KEY=VALUE", param_hint=option)
        pairs[key.strip()] = value.strip()
    return pairs


def _manager(db: str | None, work_dir: Path) -> BatchManager:
    return BatchManager(db or default_db_url(), root=work_dir)


def _newest_job(manager: BatchManager) -> str:
    jobs = manager.list_jobs(1)
    if not jobs:
        raise BatchError("no batch jobs in the ledger yet; submit one with `thrifty batch submit`")
    return jobs[0].job_id


def _default_output(input_path: str | None, job_id: str) -> Path:
    if input_path is None:
        return Path(f"{job_id}.results.jsonl")
    source = Path(input_path)
    return Path(source.stem + ".results.jsonl")


def _wait(
    manager: BatchManager,
    job_id: str,
    poll_interval: float,
    timeout: float | None,
    output_format: OutputFormat,
) -> JobStatus:
    console = Console(stderr=True)
    last_done = {"count": -1}

    def report(status: JobStatus) -> None:
        if output_format is OutputFormat.json or status.done == last_done["count"]:
            return
        last_done["count"] = status.done
        console.print(_progress_line(status))

    return manager.wait(job_id, poll_interval_s=poll_interval, timeout_s=timeout, on_update=report)


def _exit_on_issues(file: Path, plan: JobPlan) -> None:
    if plan.issues:
        issues = [str(issue) for issue in plan.issues]
        _print_issues(issues)
        raise BatchInputError(str(file), issues)


def _print_issues(issues: list[str]) -> None:
    for issue in issues[:_ISSUES_SHOWN]:
        typer.echo(issue, err=True)
    if len(issues) > _ISSUES_SHOWN:
        typer.echo(f"... and {len(issues) - _ISSUES_SHOWN} more", err=True)


def _print_status(status: JobStatus, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.json:
        _echo_json(status_json(status))
        return
    job = status.job
    console = Console(soft_wrap=True)
    title = f"{job.job_id}" + (f" ({job.name})" if job.name else "")
    console.print(f"[bold]{title}[/bold]  {job.provider}  {job.status}  round {job.round}")
    console.print(_progress_line(status))
    counts = ", ".join(f"{count:,} {name}" for name, count in sorted(status.counts.items()))
    if counts:
        console.print(f"requests: {counts}")
    cost = status.cost
    console.print(
        f"cost so far: ${cost.cost_usd:.6f} at batch rates, ${cost.standard_cost_usd:.6f} "
        f"at synchronous rates (saved ${cost.savings_usd:.6f})"
    )
    if job.message:
        console.print(f"[yellow]{job.message}[/yellow]")
    if job.final and job.work_dir is not None:
        console.print(f"collect the results with: thrifty batch collect {job.job_id}")


def _progress_line(status: JobStatus) -> Table:
    bar = ProgressBar(total=max(status.total, 1), completed=status.done, width=30)
    grid = Table.grid(padding=(0, 1))
    share = status.done / status.total if status.total else 1.0
    eta = "" if status.eta_s is None else f"ETA {_duration_text(status.eta_s)}"
    grid.add_row(bar, f"{share:6.1%}", f"{status.done:,}/{status.total:,} requests", eta)
    return grid


def _duration_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _print_estimate(plan: JobPlan, output_format: OutputFormat) -> None:
    estimate = plan.estimate
    assert estimate is not None
    parts = len(plan.parts)
    if output_format is OutputFormat.json:
        _echo_json({**estimate.to_json(), "batches": parts})
        return

    batches = f"{parts} batch" if parts == 1 else f"{parts} batches"
    table = Table(title=f"Estimate: {estimate.requests:,} requests in {batches}")
    for header in ("Model", "Requests", "Input", "Output", "Batch (USD)", "Sync (USD)", "Saved"):
        table.add_column(header, justify="left" if header == "Model" else "right")
    for model in estimate.models.values():
        table.add_row(
            model.model,
            f"{model.requests:,}",
            f"{model.input_tokens:,}",
            f"{model.output_tokens:,}",
            _usd(model.batch_cost_usd),
            _usd(model.standard_cost_usd),
            _usd(model.savings_usd),
        )

    table.add_section()
    table.add_row(
        "total",
        f"{estimate.requests:,}",
        "",
        "",
        _usd(estimate.batch_cost_usd),
        _usd(estimate.standard_cost_usd),
        "",
        style="bold",
    )
    console = Console(soft_wrap=True)
    console.print(table)

    unknown = sum(model.output_unknown for model in estimate.models.values())
    if unknown:
        console.print(
            f"{unknown:,} requests set no output limit, so their output is not counted; "
            "pass --average-output-tokens to count it"
        )
    unpriced = [model.unpriced for model in estimate.models.values() if model.unpriced]
    for reason in unpriced:
        console.print(f"[yellow]unpriced:[/yellow] {reason}")


def _usd(amount: Decimal | None) -> str:
    return "unpriced" if amount is None else f"{amount:,.6f}"


def _echo_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
