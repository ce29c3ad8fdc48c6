"""Cost histograms per feature: bins, the approximate p95 and its bound, writes and rebuilds."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.dashboard.unit_costs import (
    binned_feature_call_costs,
    exact_feature_call_costs,
    feature_call_costs,
)
from thrifty.dashboard.view import View
from thrifty.errors import LedgerError
from thrifty.ledger import Ledger, open_ledger
from thrifty.ledger.histogram import (
    bin_bottom_nanousd,
    cost_bin,
    cost_bin_sql,
    p95_nanousd,
    rebuild_histograms,
)
from thrifty.ledger.record import RequestRecord
from thrifty.ledger.schema import cost_histograms

START = datetime(2026, 11, 2, 22, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    for url in ledger_db_url(request, tmp_path):
        opened = open_ledger(url)
        yield opened
        opened.close()


def random_records(count: int, seed: int) -> list[RequestRecord]:
    """Costs spread over seven decades, over two days, for three features."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        changes: dict[str, Any] = {
            "started_at": START + timedelta(seconds=rng.randrange(2 * 86400)),
            "feature": rng.choice(["chat", "search", None]),
        }
        if rng.random() < 0.05:
            records.append(unpriced(f"r{number}", **changes))
            continue
        cost = Decimal(rng.randrange(1, 10**7)) * Decimal(10) ** rng.randrange(-9, -2)
        records.append(make_record(f"r{number}", cost_usd=cost, **changes))
    return records


RECORDS = random_records(600, seed=5)


def test_bins_are_exact_below_one_hundred() -> None:
    assert [cost_bin(value) for value in (-3, 0, 1, 42, 99)] == [0, 0, 1, 42, 99]
    assert [bin_bottom_nanousd(number) for number in (0, 1, 42, 99)] == [0, 1, 42, 99]


def test_bin_bottom_is_within_ten_percent() -> None:
    for value in [100, 109, 110, 123_456, 999_999, 10**12 + 7, 19_999_999]:
        bottom = bin_bottom_nanousd(cost_bin(value))
        assert bottom <= value
        assert value < bottom * Decimal("1.1")
    assert bin_bottom_nanousd(cost_bin(123_456)) == 120_000
    assert cost_bin(129_999) == cost_bin(120_000)
    assert cost_bin(130_000) == cost_bin(129_999) + 1


def test_bin_sql_matches_python(ledger: Ledger) -> None:
    values = [0, 1, 9, 10, 99, 100, 101, 999, 1000, 123_456, 19_999_999, 10**15 + 3]
    statement = sa.select(*(cost_bin_sql(sa.literal(value, sa.BigInteger())) for value in values))
    with ledger.engine.connect() as connection:
        row = connection.execute(statement).one()
    assert list(row) == [cost_bin(value) for value in values]


def test_p95_is_nearest_rank_of_bins() -> None:
    counts = {cost_bin(value): 1 for value in range(1, 21)}
    assert p95_nanousd(counts) == 19
    assert p95_nanousd({}) is None
    assert p95_nanousd({cost_bin(5_000): 94, cost_bin(77_000): 6}) == 77_000


def test_rebuild_gives_same_rows_as_writes(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    written = histogram_rows(ledger)
    with ledger.engine.begin() as connection:
        rebuild_histograms(connection)
    assert histogram_rows(ledger) == written
    priced = sum(1 for record in RECORDS if record.cost_usd is not None)
    assert sum(row[-1] for row in written if row[0] == "day") == priced


def test_binned_unit_costs_match_exact_within_bound(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    view = View(
        since=START + timedelta(minutes=25), until=START + timedelta(days=2), resolution="day"
    )
    binned = series_by_name(binned_feature_call_costs(ledger, view))
    exact = series_by_name(exact_feature_call_costs(ledger, view))
    assert binned.keys() == exact.keys()
    for name, series in exact.items():
        assert binned[name]["points"].keys() == series["points"].keys()
        for bucket, point in [("all", series["summary"]), *series["points"].items()]:
            got = binned[name]["summary"] if bucket == "all" else binned[name]["points"][bucket]
            assert got["count"] == point["count"]
            assert Decimal(got["cost_usd"]) == Decimal(point["cost_usd"])
            assert got["mean_usd"] == point["mean_usd"]
            approximate, precise = Decimal(got["p95_usd"]), Decimal(point["p95_usd"])
            assert approximate <= precise < approximate * Decimal("1.1")


def test_unit_costs_say_how_p95_was_found(ledger: Ledger) -> None:
    ledger.write(RECORDS)
    since, until = START, START + timedelta(days=2)
    by_feature = feature_call_costs(
        ledger, View(since=since, until=until, where={"feature": "chat"})
    )
    by_user = feature_call_costs(ledger, View(since=since, until=until, where={"user": "u1"}))
    assert by_feature["p95"]["method"] == "histogram"
    assert "1.1 times" in by_feature["p95"]["bound"]
    assert [series["name"] for series in by_feature["series"]] == ["chat"]
    assert by_user["p95"] == {"method": "exact"}


def series_by_name(data: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    return {series["name"]: series for series in data["series"]}


def histogram_rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    h = cost_histograms.c
    statement = sa.select(
        h.resolution, h.bucket, h.feature_key, h.bin, h.feature, h.requests
    ).order_by(h.resolution, h.bucket, h.feature_key, h.bin)
    with ledger.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]


def test_rebuild_rejects_mid_day_bound(ledger: Ledger) -> None:
    with ledger.engine.begin() as connection, pytest.raises(LedgerError, match="start a UTC day"):
        rebuild_histograms(connection, since=START + timedelta(minutes=1))
