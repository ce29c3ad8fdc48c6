"""Time the dashboard's main page data and `thrifty report --by feature` over a month.

The script bulk-loads N generated requests spread over one month into a
fresh ledger (SQLite file or a new PostgreSQL schema), rebuilds the rollups
the way a migration of an existing ledger does, then times:

- ``overview``: everything the dashboard's main page shows for the month
  (totals, spend per day stacked by model, top features, models, teams and keys);
- ``report --by feature``: ``Ledger.report`` grouped by feature for the month;
- the savings page's data, which prices each day's groups with the cost engine;
- the same as a whole ``thrifty report`` process, interpreter start included;
- ``report --by feature`` for a range that starts and ends mid-hour, which
  reads request rows for the two partial hours;
- for comparison, two queries that read every request row of the month: top
  users, and the Batch and Flex savings that ``thrifty report`` adds.

The requests are shaped like a company's traffic. There are 12 features,
each on one or two models and a few of 42 keys that belong to 6 teams.
20,000 users send about 8 requests per session, 10% at Flex and 3% at
Batch, and 4 features have a response cache. Each timing is the median of
--repeat runs after one warm-up run.

    .venv/bin/python bench/bench_dashboard.py --records 1000000 --backend sqlite
    .venv/bin/python bench/bench_dashboard.py --records 10000000 --backend postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from thrifty.batch.savings import lever_savings
from thrifty.dashboard.queries import overview
from thrifty.dashboard.savings import savings
from thrifty.dashboard.view import View
from thrifty.ledger import Ledger, ReportQuery, open_ledger
from thrifty.ledger.rollup import rebuild_rollups
from thrifty.pricing.engine import CostEngine

MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 12, 1, tzinfo=UTC)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 50_000

COLUMNS = (
    "request_id",
    "started_at",
    "ended_at",
    "provider",
    "endpoint",
    "model_requested",
    "model_served",
    "model_priced",
    "streamed",
    "http_status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost_usd",
    "cost_nanousd",
    "unpriced",
    "cost_breakdown",
    "service_tier_requested",
    "service_tier_served",
    "key_id",
    "team",
    "project",
    "user",
    "feature",
    "session",
    "tags",
    "cache_status",
    "upstream_ms",
    "overhead_ms",
    "details",
)

# (provider, model, input $/MTok, output $/MTok)
MODELS = (
    ("openai", "gpt-4o", Decimal("2.5"), Decimal("10")),
    ("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.6")),
    ("openai", "gpt-4.1", Decimal("2"), Decimal("8")),
    ("openai", "o4-mini", Decimal("1.1"), Decimal("4.4")),
    ("anthropic", "claude-sonnet-4-5", Decimal("3"), Decimal("15")),
    ("anthropic", "claude-haiku-4-5", Decimal("1"), Decimal("5")),
)
TEAMS = ("search", "support", "growth", "platform", "data", "mobile")


@dataclass(frozen=True)
class Feature:
    name: str
    team: str
    models: tuple[int, ...]
    keys: tuple[str, ...]
    cached: bool
    weight: int


def make_features(rng: random.Random) -> list[Feature]:
    keys_by_team = {team: [f"key_{team}_{n}" for n in range(7)] for team in TEAMS}
    names = (
        "chat",
        "search-answer",
        "summarize",
        "classify",
        "extract",
        "translate",
        "autocomplete",
        "support-bot",
        "email-draft",
        "code-review",
        "report-writer",
        "tagging",
    )
    features = []
    for position, name in enumerate(names):
        team = TEAMS[position % len(TEAMS)]
        models = tuple(rng.sample(range(len(MODELS)), rng.choice((1, 2))))
        keys = tuple(rng.sample(keys_by_team[team], 3))
        features.append(Feature(name, team, models, keys, position % 3 == 0, rng.randint(1, 10)))
    return features


def generate_rows(count: int, seed: int) -> Iterator[tuple[object, ...]]:
    """Yield request rows in start order, as tuples in COLUMNS order."""
    rng = random.Random(seed)
    features = make_features(rng)
    weights = [feature.weight for feature in features]
    step = (MONTH_END - MONTH_START) / count
    session_id = 0
    for number in range(count):
        started = MONTH_START + step * number
        feature = rng.choices(features, weights)[0]
        provider, model, input_rate, output_rate = MODELS[rng.choice(feature.models)]
        tier_draw = rng.random()
        tier = "default"
        if tier_draw < 0.10:
            tier = "flex"
        elif tier_draw < 0.13:
            tier = "batch"
        cache_status = None
        if feature.cached:
            cache_status = "hit" if rng.random() < 0.3 else "miss"
        input_tokens = rng.randint(200, 6000)
        cache_read = input_tokens // 2 if rng.random() < 0.4 else 0
        output_tokens = rng.randint(20, 900)
        hit = cache_status == "hit"
        scale = Decimal("0.5") if tier != "default" else Decimal(1)
        cost = (
            Decimal(0)
            if hit
            else (
                (
                    Decimal(input_tokens - cache_read) * input_rate
                    + Decimal(cache_read) * input_rate / 10
                    + Decimal(output_tokens) * output_rate
                )
                * scale
                / 1_000_000
            )
        )
        if rng.random() < 0.125:
            session_id += 1
        user = f"user_{rng.randrange(20_000)}"
        key = rng.choice(feature.keys)
        yield (
            f"bench-{number:09d}",
            started,
            started + timedelta(milliseconds=rng.randint(200, 4000)),
            provider,
            "/v1/messages" if provider == "anthropic" else "/v1/chat/completions",
            model,
            model,
            model,
            False,
            200,
            input_tokens,
            output_tokens,
            cache_read,
            0,
            0,
            0,
            False,
            cost,
            int(cost * 1_000_000_000),
            False,
            "{}",
            tier,
            tier,
            key,
            feature.team,
            f"{feature.team}-app",
            user,
            feature.name,
            f"session_{session_id}",
            "{}",
            cache_status,
            float(rng.randint(150, 3500)),
            0.4,
            "{}",
        )


def load_sqlite(ledger: Ledger, count: int, seed: int) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    statement = f"INSERT INTO requests ({', '.join(_quoted(COLUMNS))}) VALUES ({placeholders})"
    connection = ledger.engine.raw_connection()
    try:
        cursor = connection.cursor()
        batch: list[tuple[object, ...]] = []
        for row in generate_rows(count, seed):
            batch.append(_sqlite_row(row))
            if len(batch) == CHUNK:
                _insert_chunk(cursor, statement, batch)
        if batch:
            _insert_chunk(cursor, statement, batch)
    finally:
        connection.close()


def _insert_chunk(cursor: Any, statement: str, batch: list[tuple[object, ...]]) -> None:
    # One transaction per chunk, so the write-ahead log is checkpointed as the load goes.
    cursor.execute("BEGIN")
    cursor.executemany(statement, batch)
    cursor.execute("COMMIT")
    batch.clear()


def _sqlite_row(row: tuple[object, ...]) -> tuple[object, ...]:
    values = list(row)
    for position in (1, 2):
        moment = values[position]
        assert isinstance(moment, datetime)
        values[position] = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    values[17] = format(values[17], "f")
    return tuple(values)


def load_postgresql(ledger: Ledger, count: int, seed: int) -> None:
    connection = ledger.engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY requests ({', '.join(_quoted(COLUMNS))}) FROM STDIN") as copy,
        ):
            for row in generate_rows(count, seed):
                copy.write_row(row)
        driver.commit()
    finally:
        connection.close()


def _quoted(names: tuple[str, ...]) -> list[str]:
    return [f'"{name}"' for name in names]


def timed(function: Callable[[], object], repeat: int) -> float:
    """Return the median wall time of ``function`` in milliseconds, after one warm-up run."""
    function()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def cli_report_ms(db_url: str, repeat: int) -> float:
    command = [
        str(Path(sys.executable).parent / "thrifty"),
        "report",
        "--db",
        db_url,
        "--by",
        "feature",
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "--format",
        "json",
    ]

    def run_command() -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"thrifty report failed: {done.stderr.strip()}")

    return timed(run_command, repeat)


@contextlib.contextmanager
def database(backend: str, path: Path | None) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(dir=path) as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    schema = f"thrifty_bench_{uuid.uuid4().hex[:10]}"
    conninfo = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the SQLite file")
    args = parser.parse_args()

    with database(args.backend, args.dir) as db_url:
        ledger = open_ledger(db_url)
        try:
            run(ledger, db_url, args)
        finally:
            ledger.close()


def run(ledger: Ledger, db_url: str, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    loader = load_sqlite if args.backend == "sqlite" else load_postgresql
    loader(ledger, args.records, args.seed)
    loaded = time.perf_counter()
    with ledger.engine.begin() as connection:
        rebuild_rollups(connection)
    if args.backend == "postgresql":
        # Autovacuum would analyze the new rows soon after a real load.
        autocommit = ledger.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    rebuilt = time.perf_counter()
    with ledger.engine.connect() as connection:
        rollup_rows = connection.exec_driver_sql("SELECT count(*) FROM request_rollups").scalar()
    print(
        f"{args.backend}: {args.records:,} requests loaded in {loaded - start:.1f} s, "
        f"rollups rebuilt in {rebuilt - loaded:.1f} s ({rollup_rows:,} rollup rows)"
    )

    month = View(since=MONTH_START, until=MONTH_END, resolution="day")
    by_feature = ReportQuery(by=["feature"], since=MONTH_START, until=MONTH_END)
    mid_hour = ReportQuery(
        by=["feature"],
        since=MONTH_START + timedelta(minutes=30),
        until=MONTH_END - timedelta(minutes=30),
    )
    top_users = ReportQuery(by=["user"], since=MONTH_START, until=MONTH_END, limit=10)
    engine = CostEngine()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("overview (main page data)", lambda: overview(ledger, month, "model")),
        ("report --by feature", lambda: ledger.report(by_feature)),
        ("report --by feature, mid-hour bounds", lambda: ledger.report(mid_hour)),
        ("savings page data", lambda: savings(ledger, month, engine)),
        ("top 10 users (request rows)", lambda: ledger.report(top_users)),
        (
            "report's Batch and Flex savings (request rows)",
            lambda: lever_savings(ledger, by_feature),
        ),
    ]
    print(f"{'query':<48} {'median ms':>10}")
    for name, function in cases:
        print(f"{name:<48} {timed(function, args.repeat):>10.1f}", flush=True)
    print(f"{'thrifty report process (wall)':<48} {cli_report_ms(db_url, args.repeat):>10.1f}")


if __name__ == "__main__":
    main()
