"""Time the dashboard's main page data and `thrifty report --by feature` over a month.

The script bulk-loads N generated requests spread over one month into a
fresh ledger (SQLite file or a new PostgreSQL schema), rebuilds the rollups
cost histograms and user and session rollups the way a migration of an
existing ledger does, then times:

- ``overview``: everything the dashboard's main page shows for the month
  (totals, spend per day stacked by model, top features, models, teams and keys);
- ``report --by feature``: ``Ledger.report`` grouped by feature for the month;
- the savings page's data, which prices each day's groups with the cost engine;
- ``report --by feature`` for a range that starts and ends mid-hour, which
  reads request rows for the two partial hours;
- the Batch and Flex savings that ``thrifty report`` adds, from the rollups,
  and for comparison the same sums read from every request row;
- the users, session and unit cost pages' data and the top 20 sessions;
- whole processes, interpreter start included: ``thrifty --help`` and
  ``thrifty report --by feature --since 2026-11-01``.

The requests are shaped like a company's traffic. There are 12 features,
each on one or two models and a few of 42 keys that belong to 6 teams.
20,000 users send about 8 requests per session, 10% at Flex and 3% at
Batch, and 4 features have a response cache. Flex, Batch and cache hit
rows carry the details their savings are summed from. Each timing is the
median of --repeat runs after one warm-up run, in wall time and in CPU time.

    .venv/bin/python bench/bench_dashboard.py --records 1000000 --backend sqlite
    .venv/bin/python bench/bench_dashboard.py --records 10000000 --backend postgresql

``--keep`` leaves the generated database in place and prints its URL;
``--url URL`` times an existing ledger loaded by an earlier ``--keep`` run
(upgrading it first, as ``open_ledger`` does). ``--url URL --expand 10``
first makes ten times as many requests with INSERT ... SELECT: each copy of
a request starts 1 to 9 seconds later, with its own request and session id.

    .venv/bin/python bench/bench_dashboard.py --records 1000000 --load-only
    .venv/bin/python bench/bench_dashboard.py --url sqlite:///PATH --expand 10 --load-only
    .venv/bin/python bench/bench_dashboard.py --url sqlite:///PATH --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
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

from thrifty.batch.savings import batch_savings, flex_savings, lever_savings
from thrifty.dashboard.queries import overview, session_view
from thrifty.dashboard.savings import savings
from thrifty.dashboard.spender_queries import top_sessions
from thrifty.dashboard.unit_costs import conversation_costs, feature_call_costs, top_spenders
from thrifty.dashboard.view import View
from thrifty.ledger import Ledger, ReportQuery, open_ledger
from thrifty.ledger.histogram import rebuild_histograms
from thrifty.ledger.report import request_conditions
from thrifty.ledger.rollup import rebuild_rollups
from thrifty.ledger.schema import requests
from thrifty.ledger.spender_rollups import rebuild_spender_rollups
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
        standard = (
            Decimal(input_tokens - cache_read) * input_rate
            + Decimal(cache_read) * input_rate / 10
            + Decimal(output_tokens) * output_rate
        ) / 1_000_000
        cost = Decimal(0) if hit else standard * scale
        details = _details(tier, hit, standard, number)
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
            details,
        )


def _details(tier: str, hit: bool, standard: Decimal, number: int) -> str:
    """Return the details JSON that the Flex, Batch and cache savings sums read."""
    if hit:
        return f'{{"cache": {{"saved_usd": "{standard}"}}}}'
    if tier == "flex":
        return f'{{"flex": {{"requested": true, "standard_cost_usd": "{standard}"}}}}'
    if tier == "batch":
        job = f"batch_{number // 100_000}"
        return f'{{"batch": {{"job": "{job}", "standard_cost_usd": "{standard}"}}}}'
    return "{}"


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


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the median wall and CPU time of ``function`` in ms, after one warm-up run.

    CPU time is this process's and its finished children's (user plus system).
    On a machine shared with other work it shows the work done when wall time
    mostly shows waiting for a core. It leaves out the PostgreSQL server's CPU.
    """
    function()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        function()
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((_cpu_seconds() - cpu_start) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cli_ms(arguments: list[str], repeat: int) -> tuple[float, float]:
    """Return the median wall and CPU time of a whole ``thrifty`` process, in milliseconds."""
    command = [str(Path(sys.executable).parent / "thrifty"), *arguments]

    def run_command() -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(arguments[:1])} failed: {done.stderr.strip()}")

    return timed(run_command, repeat)


@contextlib.contextmanager
def database(backend: str, path: Path | None, keep: bool) -> Iterator[str]:
    if backend == "sqlite":
        if keep:
            folder = tempfile.mkdtemp(dir=path)
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
            return
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
        if not keep:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--url", default=None, help="time this loaded ledger; load nothing")
    parser.add_argument("--load-only", action="store_true", help="load, keep and time nothing")
    parser.add_argument(
        "--skip-row-scans",
        action="store_true",
        help="leave out the timing that reads every request row of the month",
    )
    parser.add_argument(
        "--expand", type=int, default=1, help="with --url: multiply the requests by this"
    )
    args = parser.parse_args()

    if args.url is not None:
        start = time.perf_counter()
        ledger = open_ledger(args.url)
        print(f"opened (and upgraded) {args.url} in {time.perf_counter() - start:.1f} s")
        try:
            if args.expand > 1:
                expand(ledger, args.expand)
            if not args.load_only:
                time_queries(ledger, args.url, args)
        finally:
            ledger.close()
        return
    keep = args.keep or args.load_only
    with database(args.backend, args.dir, keep) as db_url:
        ledger = open_ledger(db_url)
        try:
            load(ledger, args)
            if not args.load_only:
                time_queries(ledger, db_url, args)
        finally:
            ledger.close()
        if keep:
            print(f"kept {db_url}", flush=True)


def load(ledger: Ledger, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    loader = load_sqlite if args.backend == "sqlite" else load_postgresql
    loader(ledger, args.records, args.seed)
    loaded = time.perf_counter()
    with ledger.engine.begin() as connection:
        rebuild_rollups(connection)
        rebuild_histograms(connection)
        rebuild_spender_rollups(connection)
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


def expand(ledger: Ledger, factor: int) -> None:
    """Copy every request ``factor - 1`` times in SQL, then rebuild rollups and histograms."""
    start = time.perf_counter()
    sqlite_backend = ledger.engine.dialect.name == "sqlite"
    with ledger.engine.connect() as connection:
        original = connection.exec_driver_sql("SELECT count(*) FROM requests").scalar()
    # Copying into a table without its secondary indexes and building them
    # afterwards, by sorting, is several times faster than updating them per row.
    with ledger.engine.begin() as connection:
        for index in requests.indexes:
            index.drop(connection, checkfirst=True)
    for copy in range(1, factor):
        with ledger.engine.begin() as connection:
            if sqlite_backend:
                connection.exec_driver_sql("PRAGMA cache_size = -1000000")
            done = connection.exec_driver_sql(
                f"SELECT count(*) FROM requests WHERE request_id = 'bench-000000000.{copy}'"
            ).scalar()
            if not done:
                connection.exec_driver_sql(_copy_statement(copy, sqlite_backend))
        print(f"copy {copy}: {time.perf_counter() - start:.1f} s", flush=True)
    with ledger.engine.begin() as connection:
        for index in requests.indexes:
            index.create(connection)
    copied = time.perf_counter()
    with ledger.engine.begin() as connection:
        rebuild_rollups(connection)
        rebuild_histograms(connection)
        rebuild_spender_rollups(connection)
    if not sqlite_backend:
        autocommit = ledger.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    print(
        f"expanded {original:,} requests {factor} times in {copied - start:.1f} s, "
        f"rollups and histograms rebuilt in {time.perf_counter() - copied:.1f} s",
        flush=True,
    )


def _copy_statement(copy: int, sqlite_backend: bool) -> str:
    """Return an INSERT ... SELECT that adds one shifted copy of the original requests."""

    def shifted(column: str) -> str:
        if sqlite_backend:
            # Keep the stored text form: whole seconds moved, microseconds kept.
            return (
                f"strftime('%Y-%m-%d %H:%M:%S', \"{column}\", '+{copy} seconds') "
                f'|| substr("{column}", 20)'
            )
        return f"\"{column}\" + interval '{copy} seconds'"

    overrides = {
        "request_id": f"request_id || '.{copy}'",
        "started_at": shifted("started_at"),
        "ended_at": shifted("ended_at"),
        "session": f"session || '.{copy}'",
    }
    selected = [overrides.get(name, f'"{name}"') for name in COLUMNS]
    # The generated ids contain no dot, so the originals are the rows without one.
    original = "instr(request_id, '.') = 0" if sqlite_backend else "strpos(request_id, '.') = 0"
    return (
        f"INSERT INTO requests ({', '.join(_quoted(COLUMNS))}) "
        f"SELECT {', '.join(selected)} FROM requests WHERE {original}"
    )


def time_queries(ledger: Ledger, db_url: str, args: argparse.Namespace) -> None:
    month = View(since=MONTH_START, until=MONTH_END, resolution="day")
    by_feature = ReportQuery(by=["feature"], since=MONTH_START, until=MONTH_END)
    mid_hour = ReportQuery(
        by=["feature"],
        since=MONTH_START + timedelta(minutes=30),
        until=MONTH_END - timedelta(minutes=30),
    )
    engine = CostEngine()
    cases: list[tuple[str, Callable[[], object]]] = [
        ("overview (main page data)", lambda: overview(ledger, month, "model")),
        ("report --by feature", lambda: ledger.report(by_feature)),
        ("report --by feature, mid-hour bounds", lambda: ledger.report(mid_hour)),
        ("savings page data", lambda: savings(ledger, month, engine)),
        ("report's Batch and Flex savings (rollups)", lambda: lever_savings(ledger, by_feature)),
        ("Batch and Flex savings (request rows)", lambda: row_lever_savings(ledger, by_feature)),
        ("users page: top 10 users", lambda: top_spenders(ledger, month, "user")),
        ("top 20 sessions", lambda: top_sessions(ledger, month, 20)),
        ("session page: one session", lambda: session_view(ledger, "session_1000")),
        ("unit costs page: feature calls", lambda: feature_call_costs(ledger, month)),
        ("unit costs page: conversations", lambda: conversation_costs(ledger, month)),
    ]
    if args.skip_row_scans:
        cases = [case for case in cases if case[0] not in ROW_SCANS]
    print(f"{'query':<48} {'wall ms':>10} {'cpu ms':>10}")
    for name, function in cases:
        wall, cpu = timed(function, args.repeat)
        print(f"{name:<48} {wall:>10.1f} {cpu:>10.1f}", flush=True)
    processes = {
        "thrifty --help process (wall)": ["--help"],
        "thrifty report --by feature process (wall)": [
            "report", "--db", db_url, "--by", "feature", "--since", "2026-11-01",
        ],
    }  # fmt: skip
    for name, arguments in processes.items():
        wall, cpu = cli_ms(arguments, args.repeat)
        print(f"{name:<48} {wall:>10.1f} {cpu:>10.1f}", flush=True)


ROW_SCANS = ("Batch and Flex savings (request rows)",)


def row_lever_savings(ledger: Ledger, query: ReportQuery) -> object:
    """Sum the Batch and Flex savings from every request row, as before the rollups kept them."""
    conditions = request_conditions(query)
    with ledger.engine.connect() as connection:
        return batch_savings(connection, conditions), flex_savings(connection, conditions)


if __name__ == "__main__":
    main()
