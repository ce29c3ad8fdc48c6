"""The `thrifty cache` commands: stats, clear, eval and advise.

``stats`` reports the response cache per feature (hit rate, dollars saved,
embedding and storage cost, net saving) and provider prompt caching per
model, feature or key; ``clear`` deletes entries; ``eval`` measures semantic
match quality on labelled pairs; ``advise`` lists prefixes that repeat
without being read from the providers' caches.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from thrifty.cache.config import CacheConfig, parse_cache_config
from thrifty.cli.report import parse_time
from thrifty.config import load_config
from thrifty.errors import CacheError, ConfigError
from thrifty.ledger import default_db_url
from thrifty.ledger.database import create_ledger_engine, normalize_url, safe_url, sqlite_path

cache_app = typer.Typer(
    name="cache",
    help="Response cache and provider prompt caching: stats, clear, eval, advise.",
    no_args_is_help=True,
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class EmbedderChoice(StrEnum):
    local = "local"
    gateway = "gateway"


class SplitChoice(StrEnum):
    all = "all"
    train = "train"
    held_out = "held-out"


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Ledger database URL. Default: ledger.url of --config, else $THRIFTY_DB_URL, "
        "else sqlite:///.thrifty/thrifty.db.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="thrifty.yaml to read the cache: section from.", exists=True),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", help="table for people, json for scripts.")
]


@cache_app.command("stats")
def stats(
    *,
    db: DbOption = None,
    config: ConfigOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Start of the period: ISO 8601, or a time ago such as 24h or 7d."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End of the period; same forms.")] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Dimensions of the prompt caching table: model, feature, key, team, project, "
            "provider, endpoint.",
        ),
    ] = "model",
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Print the response cache's savings per feature and prompt caching's per model."""
    from thrifty.cache.analytics import prompt_cache_stats, response_cache_stats
    from thrifty.cache.store import open_store
    from thrifty.pricing.engine import CostEngine

    now = datetime.now(UTC)
    start = None if since is None else parse_time(since, now, "--since")
    end = now if until is None else parse_time(until, now, "--until")
    url, cache_config = _settings(db, config)
    store = open_store(cache_config.storage.url or url)
    try:
        summary = store.summary()
        sizes = store.feature_bytes(start, end)
    finally:
        store.close()
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as connection:
            response = response_cache_stats(
                connection,
                since=start,
                until=end,
                entry_sizes=sizes,
                usd_per_gb_month=cache_config.storage.usd_per_gb_month,
            )
            dimensions = [name.strip() for name in by.split(",") if name.strip()]
            prompt = prompt_cache_stats(
                connection, CostEngine(), by=dimensions, since=start, until=end
            )
    finally:
        engine.dispose()

    if output_format is OutputFormat.json:
        _write_json(
            {
                "since": None if start is None else start.isoformat(),
                "until": end.isoformat(),
                "entries": summary.entries,
                "bytes": summary.bytes,
                "semantic_entries": summary.semantic_entries,
                "response_cache": [item.to_json() for item in response],
                "prompt_cache": [item.to_json() for item in prompt],
            }
        )
        return
    console = Console()
    console.print(
        f"{summary.entries:,} entries, {summary.bytes:,} bytes "
        f"({summary.semantic_entries:,} found by meaning)"
    )
    console.print(_response_table(response))
    console.print(_prompt_table(prompt, dimensions))


@cache_app.command("clear")
def clear(
    *,
    db: DbOption = None,
    config: ConfigOption = None,
    namespace: Annotated[
        str | None, typer.Option(help="Delete only the entries of this namespace.")
    ] = None,
    feature: Annotated[
        str | None, typer.Option(help="Delete only the entries stored for this feature.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete every entry, in the database and Redis.")
    ] = False,
) -> None:
    """Delete cached responses from the database and the Redis hot tier."""
    from thrifty.cache.cache import ResponseCache
    from thrifty.cache.redis_tier import RedisTier
    from thrifty.cache.store import open_store

    if not (everything or namespace or feature):
        raise typer.BadParameter("name what to delete: --namespace, --feature or --all")
    url, cache_config = _settings(db, config)
    storage = cache_config.storage
    redis = None
    if storage.redis_url is not None:
        redis = RedisTier(storage.redis_url, prefix=storage.redis_prefix, ttl_s=storage.redis_ttl_s)
    cache = ResponseCache(
        open_store(storage.url or url),
        redis=redis,
        max_entries=cache_config.max_entries,
        max_bytes=cache_config.max_bytes,
    )
    try:
        count = cache.clear(namespace=namespace, feature=feature)
    finally:
        cache.close()
    typer.echo(f"deleted {count} cache entries")


@cache_app.command("eval")
def evaluate(
    pairs_file: Annotated[
        Path,
        typer.Argument(
            help="Labelled pairs: CSV with question1, question2, is_duplicate; JSON with "
            "origin and similar; or JSON with Main Query and Follow-Up Query.",
            exists=True,
            dir_okay=False,
        ),
    ],
    *,
    embedder: Annotated[
        EmbedderChoice, typer.Option(help="local (all-MiniLM-L6-v2) or gateway.")
    ] = EmbedderChoice.local,
    gateway: Annotated[
        str | None,
        typer.Option(help="Gateway URL for --embedder gateway, e.g. http://127.0.0.1:4000."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="Embedding model for --embedder gateway.")
    ] = "text-embedding-3-small",
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable with the key for --embedder gateway.")
    ] = "OPENAI_API_KEY",
    threshold: Annotated[
        float | None,
        typer.Option(help="The threshold to mark as the default. Default: the configured one."),
    ] = None,
    split: Annotated[
        SplitChoice,
        typer.Option(
            help="Evaluate only the training or the held-out half of a pairs file (a fixed "
            "split by a hash of each pair's texts), e.g. to measure a threshold chosen on "
            "the other half. Follow-up files are always read whole.",
        ),
    ] = SplitChoice.all,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Print precision, recall and F1 per similarity threshold, or follow-up leaks."""
    from thrifty.cache.config import DEFAULT_THRESHOLD
    from thrifty.cache.embedders import create_embedder
    from thrifty.cache.evaluate import (
        Conversation,
        Pair,
        evaluate_follow_ups,
        evaluate_pairs,
        read_pairs,
        select_split,
    )

    default = DEFAULT_THRESHOLD if threshold is None else threshold
    if not 0 < default <= 1:
        raise typer.BadParameter(f"--threshold is {default}; give a value above 0, at most 1")
    items = read_pairs(pairs_file)
    chosen = create_embedder(
        embedder.value, model=model, gateway_url=gateway, api_key=os.environ.get(api_key_env)
    )
    if items and isinstance(items[0], Conversation):
        conversations = [item for item in items if isinstance(item, Conversation)]
        result = evaluate_follow_ups(conversations, chosen, threshold=default)
        _print_follow_ups(result, output_format)
        return
    pairs = [item for item in items if isinstance(item, Pair)]
    if split is not SplitChoice.all:
        pairs = select_split(pairs, "train" if split is SplitChoice.train else "held-out")
    evaluation = evaluate_pairs(pairs, chosen, default_threshold=default)
    if output_format is OutputFormat.json:
        _write_json(
            {
                "file": str(pairs_file),
                "split": split.value,
                "embedder": chosen.name,
                "pairs": evaluation.pairs,
                "duplicates": evaluation.duplicates,
                "passed_guards": evaluation.passed_guards,
                "default_threshold": evaluation.default_threshold,
                "rows": [row.to_json() for row in evaluation.rows],
            }
        )
        return
    scope = "" if split is SplitChoice.all else f" ({split.value} split)"
    table = Table(
        title=f"{pairs_file.name}{scope}: {evaluation.pairs:,} pairs, "
        f"{evaluation.duplicates:,} duplicates, {chosen.name}"
    )
    for column in ("threshold", "matched", "precision", "95% interval", "recall", "F1"):
        table.add_column(column, justify="right")
    for row in evaluation.rows:
        mark = " (default)" if abs(row.threshold - evaluation.default_threshold) < 1e-9 else ""
        interval = row.precision_interval
        table.add_row(
            f"{row.threshold:.3f}{mark}",
            f"{row.matched:,}",
            _ratio(row.precision),
            "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}",
            _ratio(row.recall),
            _ratio(row.f1),
        )
    Console().print(table)


@cache_app.command("advise")
def advise_command(
    *,
    db: DbOption = None,
    config: ConfigOption = None,
    requests_file: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="Read request bodies from this JSON Lines file instead of the ledger.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Start of the period (ledger only).")] = None,
    until: Annotated[str | None, typer.Option(help="End of the period (ledger only).")] = None,
    feature: Annotated[str | None, typer.Option(help="Only this feature (ledger only).")] = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """List prompt prefixes that repeat without being cached, and what fixing each saves."""
    from thrifty.cache.advise import advise, samples_from_file, samples_from_ledger
    from thrifty.pricing.engine import CostEngine

    if requests_file is not None:
        findings = advise(samples_from_file(requests_file), CostEngine())
    else:
        now = datetime.now(UTC)
        url, _ = _settings(db, config)
        engine = create_ledger_engine(url)
        try:
            with engine.connect() as connection:
                samples = list(
                    samples_from_ledger(
                        connection,
                        since=None if since is None else parse_time(since, now, "--since"),
                        until=None if until is None else parse_time(until, now, "--until"),
                        feature=feature,
                    )
                )
        finally:
            engine.dispose()
        findings = advise(samples, CostEngine())

    if output_format is OutputFormat.json:
        _write_json({"findings": [finding.to_json() for finding in findings]})
        return
    if not findings:
        typer.echo("no uncached repeated prefixes found")
        return
    table = Table(title="Prompt caching advice (savings are estimates)")
    for column in ("kind", "model", "feature", "requests", "tokens", "saving", "what to do"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        table.add_row(
            finding.kind,
            finding.model,
            finding.feature or "-",
            f"{finding.requests:,}",
            f"{finding.tokens:,}",
            _usd(finding.saving_usd),
            finding.detail,
        )
    Console(width=160).print(table)


def _settings(db: str | None, config: Path | None) -> tuple[str, CacheConfig]:
    """Return the ledger URL and the cache section, with defaults when absent."""
    loaded = load_config(config, db_url=db) if config is not None else None
    url = db or (loaded.db_url if loaded is not None else default_db_url())
    path = sqlite_path(normalize_url(url))
    if path is not None and not path.exists():
        raise CacheError(
            f"no ledger database at {path} ({safe_url(url)}); run the gateway (thrifty serve) "
            "to create one, or pass --db with the URL of an existing ledger"
        )
    section = loaded.sections.get("cache") if loaded is not None else None
    if section is None:
        return url, parse_cache_config({})
    if not isinstance(section, CacheConfig):
        raise ConfigError("the cache: section could not be read")
    return url, section


def _response_table(rows: list[Any]) -> Table:
    table = Table(title="Response cache by feature")
    columns = ("feature", "lookups", "hit rate", "saved", "embeddings", "storage", "net saving")
    for column in columns:
        table.add_column(column, justify="left" if column == "feature" else "right")
    for row in rows:
        table.add_row(
            row.feature or "-",
            f"{row.lookups:,}",
            _ratio(row.hit_rate),
            _usd(row.saved_usd),
            _usd(row.embedding_usd),
            "unpriced" if row.storage_usd is None else _usd(row.storage_usd),
            _usd(row.net_saving_usd),
        )
    return table


def _prompt_table(rows: list[Any], dimensions: list[str]) -> Table:
    table = Table(title="Provider prompt caching")
    for name in dimensions:
        table.add_column(name)
    for column in ("requests", "input tokens", "cached", "hit rate", "cost", "saved"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            *(str(row.values[name] or "-") for name in dimensions),
            f"{row.requests:,}",
            f"{row.input_tokens:,}",
            f"{row.cache_read_tokens:,}",
            _ratio(row.hit_rate),
            _usd(row.cost_usd),
            _usd(row.saved_usd),
        )
    return table


def _print_follow_ups(result: Any, output_format: OutputFormat) -> None:
    data = {
        "conversations": result.conversations,
        "lookups": result.lookups,
        "own_hits": result.own_hits,
        "cross_conversation_hits": result.cross_conversation_hits,
        "wrong_question_hits": result.wrong_question_hits,
        "threshold": result.threshold,
    }
    if output_format is OutputFormat.json:
        _write_json(data)
        return
    for name, value in data.items():
        typer.echo(f"{name}: {value}")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _usd(amount: Decimal | None) -> str:
    if amount is None:
        return "unpriced"
    return f"${amount:,.6f}" if abs(amount) < 1 else f"${amount:,.2f}"


def _write_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
