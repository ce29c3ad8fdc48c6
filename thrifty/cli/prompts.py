"""The `thrifty prompts` commands: analyze request files and write optimized ones.

``thrifty prompts analyze FILE`` prints where the input tokens go and what
each transform would save, per feature. ``--db URL`` sums what the gateway
recorded instead, because the ledger keeps no request bodies.
``thrifty prompts optimize FILE`` writes each request optimized, in the same
line format (plain bodies, OpenAI batch lines, Anthropic batch requests).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from thrifty.cli.report import require_existing_sqlite
from thrifty.config import load_config
from thrifty.errors import ConfigError, PromptError
from thrifty.ledger import default_db_url, open_ledger
from thrifty.pricing.engine import CostEngine
from thrifty.prompts.analyze import Analyzer, SettingsResolver
from thrifty.prompts.config import PromptsConfig
from thrifty.prompts.dialect import Api
from thrifty.prompts.files import ENDPOINT_PATHS, RequestLine, SkippedLine, read_requests
from thrifty.prompts.pipeline import Optimization, optimize
from thrifty.prompts.recorded import recorded_savings
from thrifty.prompts.reuse import DEFAULT_SIMILARITY
from thrifty.prompts.settings import LOSSLESS_TRANSFORMS, TRANSFORMS, Settings

prompts_app = typer.Typer(
    help="Find the input tokens requests waste, and remove them.", no_args_is_help=True
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class ApiName(StrEnum):
    chat = "chat.completions"
    messages = "messages"
    responses = "responses"


def register(app: typer.Typer) -> None:
    app.add_typer(prompts_app, name="prompts")


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="thrifty.yaml whose prompts: section picks each feature's transforms.",
        exists=True,
        dir_okay=False,
    ),
]
TransformsOption = Annotated[
    str | None,
    typer.Option(
        "--transforms",
        help="Comma-separated transforms for every request, overriding --config: "
        f"lossless, {', '.join(TRANSFORMS)}. Default: lossless,layout, plus trim with "
        "--budget and compress with --compress-ratio.",
    ),
]
BudgetOption = Annotated[
    int | None,
    typer.Option("--budget", min=1, help="Trim each conversation to this many input tokens."),
]
RatioOption = Annotated[
    float | None,
    typer.Option(
        "--compress-ratio",
        min=0.01,
        max=0.99,
        help="Compress compressible text to this share of its tokens (lossy).",
    ),
]
ApiOption = Annotated[
    ApiName | None,
    typer.Option("--api", help="The API of every body in FILE; detected per line by default."),
]


@prompts_app.command("analyze")
def analyze(
    file: Annotated[
        Path | None, typer.Argument(help="JSONL of request bodies or batch input lines.")
    ] = None,
    *,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Sum what the gateway recorded in this ledger instead of reading FILE."
        ),
    ] = None,
    config: ConfigOption = None,
    transforms: TransformsOption = None,
    budget: BudgetOption = None,
    compress_ratio: RatioOption = None,
    api: ApiOption = None,
    similarity: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Word 5-gram Jaccard similarity from which two system prompts are grouped.",
        ),
    ] = DEFAULT_SIMILARITY,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for scripts.")
    ] = OutputFormat.table,
) -> None:
    """Break input tokens down by part of the prompt and estimate each transform's saving."""
    if (file is None) == (db is None):
        raise typer.BadParameter("give either FILE or --db URL, not both or neither")
    if db is not None:
        _analyze_ledger(db, output_format)
        return
    assert file is not None
    resolve = _resolver(config, transforms, budget, compress_ratio)
    analyzer = Analyzer(resolve, CostEngine(), similarity=similarity)
    for line in read_requests(file, api=_api(api)):
        if isinstance(line, SkippedLine):
            analyzer.skip(line.reason)
            continue
        try:
            analyzer.add(line)
        except PromptError as exc:
            analyzer.skip(str(exc))
    result = {"source": str(file), **analyzer.as_dict()}
    if output_format is OutputFormat.json:
        _write_json(result)
    else:
        _print_analysis(result)


@prompts_app.command("optimize")
def optimize_file(
    file: Annotated[Path, typer.Argument(help="JSONL of request bodies or batch input lines.")],
    *,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write; standard output by default."),
    ] = None,
    config: ConfigOption = None,
    transforms: TransformsOption = None,
    budget: BudgetOption = None,
    compress_ratio: RatioOption = None,
    api: ApiOption = None,
) -> None:
    """Write every request of FILE optimized, one per line, in FILE's own line format.

    Lines that hold no request to optimize are copied unchanged, so a batch
    input file stays complete. A summary goes to standard error.
    """
    resolve = _resolver(config, transforms, budget, compress_ratio)
    raw_lines = _raw_lines(file)
    target: IO[bytes] = sys.stdout.buffer if output is None else output.open("wb")
    before = after = optimized = skipped = 0
    try:
        for line in read_requests(file, api=_api(api)):
            if isinstance(line, SkippedLine):
                target.write(raw_lines[line.number - 1].rstrip(b"\r\n") + b"\n")
                skipped += 1
                continue
            result = _optimize_line(line, resolve)
            target.write(orjson.dumps(line.with_body(result.body)) + b"\n")
            before += result.input_tokens_before
            after += result.input_tokens_after
            optimized += 1
    finally:
        if output is not None:
            target.close()
    share = f" ({(before - after) / before:.1%} fewer)" if before else ""
    typer.echo(
        f"optimized {optimized} requests from {file}: {before:,} -> {after:,} input tokens"
        f"{share}; {skipped} lines copied unchanged",
        err=True,
    )


def _optimize_line(line: RequestLine, resolve: SettingsResolver) -> Optimization:
    settings = resolve(line.feature, ENDPOINT_PATHS[line.api], str(line.body.get("model") or ""))
    try:
        return optimize(line.body, settings, api=line.api)
    except PromptError as exc:
        raise PromptError(f"line {line.number}: {exc}") from exc


def _resolver(
    config_path: Path | None, transforms: str | None, budget: int | None, ratio: float | None
) -> SettingsResolver:
    """Build the settings lookup from --config and the transform options."""
    prompts = _prompts_config(config_path)
    override = _option_transforms(transforms, budget, ratio, default=prompts is None)

    def resolve(feature: str | None, path: str, model: str) -> Settings:
        settings = prompts.settings_for(feature, path, model) if prompts else Settings()
        if override is not None:
            settings = replace(settings, transforms=override)
        if budget is not None:
            settings = replace(settings, trim=replace(settings.trim, max_input_tokens=budget))
        if ratio is not None:
            settings = replace(settings, compress=replace(settings.compress, ratio=ratio))
        return settings

    if override is not None and "trim" in override and budget is None and prompts is None:
        raise typer.BadParameter("--transforms lists trim; give the token budget with --budget")
    return resolve


def _option_transforms(
    transforms: str | None, budget: int | None, ratio: float | None, *, default: bool
) -> tuple[str, ...] | None:
    if transforms is None:
        if not default and budget is None and ratio is None:
            return None
        names = [*LOSSLESS_TRANSFORMS, "layout"] if default else []
    else:
        names = []
        for name in (item.strip() for item in transforms.split(",")):
            if name == "lossless":
                names += LOSSLESS_TRANSFORMS
            elif name in TRANSFORMS:
                names.append(name)
            elif name:
                raise typer.BadParameter(
                    f"unknown transform {name!r}; use lossless or {', '.join(TRANSFORMS)}",
                    param_hint="--transforms",
                )
    if transforms is None and budget is not None:
        names.append("trim")
    if transforms is None and ratio is not None:
        names.append("compress")
    return tuple(dict.fromkeys(names)) or None


def _prompts_config(path: Path | None) -> PromptsConfig | None:
    if path is None:
        return None
    section = load_config(path).sections.get("prompts")
    if section is None:
        raise ConfigError(
            f"config file {path} has no prompts: section; add one or leave out --config"
        )
    assert isinstance(section, PromptsConfig)
    return section


def _api(choice: ApiName | None) -> Api | None:
    if choice is None:
        return None
    names: dict[ApiName, Api] = {
        ApiName.chat: "chat.completions",
        ApiName.messages: "messages",
        ApiName.responses: "responses",
    }
    return names[choice]


def _raw_lines(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().splitlines()
    except OSError as exc:
        raise PromptError(f"cannot read request file {path}: {exc.strerror}") from exc


def _analyze_ledger(url: str, output_format: OutputFormat) -> None:
    url = url or default_db_url()
    require_existing_sqlite(url)
    ledger = open_ledger(url)
    try:
        summary = recorded_savings(ledger)
    finally:
        ledger.close()
    note = (
        "the ledger stores no request bodies, so no prompt can be analyzed from it; "
        "these are the savings the gateway recorded. Run `thrifty prompts analyze FILE` "
        "on a file of request bodies for a full analysis."
    )
    result = {"source": ledger.url, "note": note, **summary}
    if output_format is OutputFormat.json:
        _write_json(result)
        return
    console = Console()
    console.print(note)
    optimized = summary["optimized"]
    console.print(
        f"{summary['records']:,} records; {optimized['requests']:,} optimized by the gateway: "
        f"{optimized['input_tokens_before']:,} -> {optimized['input_tokens_after']:,} input "
        f"tokens, ${optimized['saved_usd']} saved"
    )
    if summary["features"]:
        table = Table("feature", "requests", "input before", "input after", "saved", "saved USD")
        for row in summary["features"]:
            table.add_row(
                row["feature"] or "-",
                f"{row['requests']:,}",
                f"{row['input_tokens_before']:,}",
                f"{row['input_tokens_after']:,}",
                f"{row['saved_tokens']:,}",
                row["saved_usd"],
            )
        console.print(table)


def _write_json(result: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


def _print_analysis(result: dict[str, Any]) -> None:
    console = Console()
    total = result["input_tokens"]
    console.print(
        f"{result['requests']:,} requests, {total:,} input tokens; all transforms together: "
        f"{result['input_tokens_after']:,} ({_share(result['saved_tokens'], total)} saved, "
        f"${result['saved_usd']}"
        + (f", {result['unpriced_requests']} unpriced" if result["unpriced_requests"] else "")
        + ")"
    )
    parts = Table("part of the prompt", "input tokens", "share", title="Where input tokens go")
    for part, tokens in result["breakdown"].items():
        parts.add_row(part, f"{tokens:,}", _share(tokens, total))
    console.print(parts)

    transforms = Table(
        "transform", "saved tokens", "share", "requests", title="Each transform alone"
    )
    for name, row in result["transforms"].items():
        transforms.add_row(
            name,
            f"{row['saved_tokens']:,}",
            _share(row["saved_tokens"], total),
            f"{row['requests_with_saving']:,}",
        )
    console.print(transforms)

    features = Table(
        "feature", "requests", "input tokens", "saved", "share", "saved USD", title="Per feature"
    )
    for row in result["features"]:
        features.add_row(
            row["feature"] or "-",
            f"{row['requests']:,}",
            f"{row['input_tokens']:,}",
            f"{row['saved_tokens']:,}",
            _share(row["saved_tokens"], row["input_tokens"]),
            row["saved_usd"],
        )
    console.print(features)

    if result["system_prompts"]:
        prompts = Table(
            "system prompt",
            "tokens",
            "variants",
            "requests",
            "total tokens",
            "features",
            "keys",
            title="System prompts shared across features or keys, or nearly identical",
        )
        for group in result["system_prompts"]:
            prompts.add_row(
                group["preview"],
                f"{group['tokens']:,}",
                str(group["variants"]),
                f"{group['requests']:,}",
                f"{group['total_tokens']:,}",
                ", ".join(group["features"]) or "-",
                ", ".join(group["keys"]) or "-",
            )
        console.print(prompts)
    if result["skipped"]:
        for reason, count in result["skipped"].items():
            console.print(f"skipped {count} lines: {reason}")


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"
