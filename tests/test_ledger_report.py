"""Reports aggregated in SQL on both backends: exact sums, every dimension, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.errors import ReportError
from thrifty.ledger import Ledger, Report, ReportQuery, open_ledger

T0 = datetime(2025, 5, 1, 22, 15, tzinfo=UTC)

# Costs whose float sum would be wrong: 0.1 + 0.2, and genai-prices style
# per-token amounts with more than 18 fractional digits.
RECORDS = [
    make_record(
        "r1",
        started_at=T0,
        provider="openai",
        model_requested="gpt-4o",
        model_served="gpt-4o-2024-08-06",
        key_id="key_a",
        team="search",
        project="ranker",
        user="u1",
        feature="chat",
        session="s1",
        endpoint="/v1/chat/completions",
        service_tier_requested="flex",
        service_tier_served="flex",
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=512,
        cache_write_tokens=0,
        reasoning_tokens=50,
        cost_usd=Decimal("0.1"),
        tags={"env": "prod", "tenant": "acme"},
    ),
    make_record(
        "r2",
        started_at=T0 + timedelta(minutes=50),
        provider="openai",
        model_requested="gpt-4o",
        model_served=None,
        key_id="key_a",
        team="search",
        project="ranker",
        user="u2",
        feature="chat",
        session="s1",
        endpoint="/v1/chat/completions",
        service_tier_requested="flex",
        service_tier_served=None,
        http_status=429,
        error_type="rate_limit_error",
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal("0.2"),
        tags={"env": "prod"},
    ),
    make_record(
        "r3",
        started_at=T0 + timedelta(hours=2),
        provider="anthropic",
        model_requested="claude-sonnet-4",
        model_served="claude-sonnet-4-20250514",
        key_id="key_b",
        team="support",
        project="bot",
        user="u1",
        feature="summarize",
        session="s2",
        endpoint="/v1/messages",
        service_tier_requested=None,
        service_tier_served="standard",
        input_tokens=3000,
        output_tokens=700,
        cache_read_tokens=0,
        cache_write_tokens=2048,
        reasoning_tokens=0,
        cost_usd=Decimal("0.0000000416666666666666664"),
        tags={"env": "dev"},
    ),
    unpriced(
        "r4",
        started_at=T0 + timedelta(hours=2, minutes=5),
        provider="anthropic",
        model_requested="claude-unknown",
        model_served="claude-unknown",
        key_id="key_b",
        team="support",
        project="bot",
        user="u3",
        feature="summarize",
        session=None,
        endpoint="/v1/messages",
        service_tier_served="standard",
        input_tokens=10,
        output_tokens=5,
        tags={},
    ),
    make_record(
        "r5",
        started_at=T0 + timedelta(days=1),
        provider="openai",
        model_requested="text-embedding-3-small",
        model_served="text-embedding-3-small",
        key_id=None,
        team=None,
        project=None,
        user=None,
        feature=None,
        session=None,
        endpoint="/v1/embeddings",
        service_tier_served="default",
        http_status=500,
        error_type=None,
        input_tokens=8,
        output_tokens=0,
        cost_usd=Decimal("0.00000000000000000000123"),
        tags={"env": "prod", "tenant": "globex"},
    ),
]

PRICED_TOTAL = (
    Decimal("0.1")
    + Decimal("0.2")
    + Decimal("0.0000000416666666666666664")
    + Decimal("0.00000000000000000000123")
)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    opened = open_ledger(db_url)
    opened.write(RECORDS)
    yield opened
    opened.close()


def by_values(report: Report) -> dict[tuple[str | None, ...], tuple[int, Decimal, int]]:
    """Map each group's values to (requests, cost_usd, unpriced_requests)."""
    return {
        tuple(group.values.values()): (
            group.totals.requests,
            group.totals.cost_usd,
            group.totals.unpriced_requests,
        )
        for group in report.groups
    }


def test_totals_are_exact(ledger: Ledger) -> None:
    totals = ledger.report(ReportQuery()).totals
    assert totals.requests == 5
    assert totals.errors == 2
    assert totals.input_tokens == 4018
    assert totals.output_tokens == 905
    assert totals.cache_read_tokens == 512
    assert totals.cache_write_tokens == 2048
    assert totals.reasoning_tokens == 50
    assert totals.cost_usd == PRICED_TOTAL
    assert str(totals.cost_usd.normalize()) == "0.3000000416666666666678964"
    assert totals.unpriced_requests == 1


def test_report_without_by_has_no_groups(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery())
    assert report.columns == []
    assert report.groups == []


def test_empty_ledger_reports_zeros(db_url: str) -> None:
    ledger = open_ledger(db_url)
    try:
        report = ledger.report(ReportQuery(by=["model"]))
    finally:
        ledger.close()
    assert report.totals.requests == 0
    assert report.totals.cost_usd == Decimal(0)
    assert report.totals.unpriced_requests == 0
    assert report.groups == []


def test_unpriced_group_adds_no_cost(ledger: Ledger) -> None:
    groups = by_values(ledger.report(ReportQuery(by=["model"])))
    assert groups[("claude-unknown",)] == (1, Decimal(0), 1)


def test_many_exact_costs_sum_exactly(db_url: str) -> None:
    amounts = [Decimal(f"0.{i:03d}0416666666666666664") for i in range(300)]
    records = [
        make_record(f"m{i}", cost_usd=amount, feature="a" if i % 2 else "b")
        for i, amount in enumerate(amounts)
    ]
    ledger = open_ledger(db_url)
    try:
        ledger.write(records)
        report = ledger.report(ReportQuery(by=["feature"]))
    finally:
        ledger.close()
    assert report.totals.cost_usd == sum(amounts, Decimal(0))
    groups = by_values(report)
    assert groups[("a",)][1] == sum(amounts[1::2], Decimal(0))
    assert groups[("b",)][1] == sum(amounts[0::2], Decimal(0))


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        (
            "provider",
            {
                ("openai",): (3, Decimal("0.30000000000000000000123"), 0),
                ("anthropic",): (2, Decimal("0.0000000416666666666666664"), 1),
            },
        ),
        (
            "model",
            {
                ("gpt-4o",): (1, Decimal("0.2"), 0),
                ("gpt-4o-2024-08-06",): (1, Decimal("0.1"), 0),
                ("claude-sonnet-4-20250514",): (1, Decimal("0.0000000416666666666666664"), 0),
                ("claude-unknown",): (1, Decimal(0), 1),
                ("text-embedding-3-small",): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "key",
            {
                ("key_a",): (2, Decimal("0.3"), 0),
                ("key_b",): (2, Decimal("0.0000000416666666666666664"), 1),
                (None,): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "team",
            {
                ("search",): (2, Decimal("0.3"), 0),
                ("support",): (2, Decimal("0.0000000416666666666666664"), 1),
                (None,): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "project",
            {
                ("ranker",): (2, Decimal("0.3"), 0),
                ("bot",): (2, Decimal("0.0000000416666666666666664"), 1),
                (None,): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "user",
            {
                ("u1",): (2, Decimal("0.1000000416666666666666664"), 0),
                ("u2",): (1, Decimal("0.2"), 0),
                ("u3",): (1, Decimal(0), 1),
                (None,): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "feature",
            {
                ("chat",): (2, Decimal("0.3"), 0),
                ("summarize",): (2, Decimal("0.0000000416666666666666664"), 1),
                (None,): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "session",
            {
                ("s1",): (2, Decimal("0.3"), 0),
                ("s2",): (1, Decimal("0.0000000416666666666666664"), 0),
                (None,): (2, Decimal("0.00000000000000000000123"), 1),
            },
        ),
        (
            "endpoint",
            {
                ("/v1/chat/completions",): (2, Decimal("0.3"), 0),
                ("/v1/messages",): (2, Decimal("0.0000000416666666666666664"), 1),
                ("/v1/embeddings",): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "service_tier",
            {
                ("flex",): (2, Decimal("0.3"), 0),
                ("standard",): (2, Decimal("0.0000000416666666666666664"), 1),
                ("default",): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "day",
            {
                ("2025-05-01",): (2, Decimal("0.3"), 0),
                ("2025-05-02",): (3, Decimal("0.0000000416666666666678964"), 1),
            },
        ),
        (
            "hour",
            {
                ("2025-05-01T22:00:00Z",): (1, Decimal("0.1"), 0),
                ("2025-05-01T23:00:00Z",): (1, Decimal("0.2"), 0),
                ("2025-05-02T00:00:00Z",): (2, Decimal("0.0000000416666666666666664"), 1),
                ("2025-05-02T22:00:00Z",): (1, Decimal("0.00000000000000000000123"), 0),
            },
        ),
        (
            "tag:env",
            {
                ("prod",): (3, Decimal("0.30000000000000000000123"), 0),
                ("dev",): (1, Decimal("0.0000000416666666666666664"), 0),
                (None,): (1, Decimal(0), 1),
            },
        ),
        (
            "tag:tenant",
            {
                ("acme",): (1, Decimal("0.1"), 0),
                ("globex",): (1, Decimal("0.00000000000000000000123"), 0),
                (None,): (3, Decimal("0.2000000416666666666666664"), 1),
            },
        ),
        (
            "tag",
            {
                ("env", "prod"): (3, Decimal("0.30000000000000000000123"), 0),
                ("tenant", "acme"): (1, Decimal("0.1"), 0),
                ("env", "dev"): (1, Decimal("0.0000000416666666666666664"), 0),
                ("tenant", "globex"): (1, Decimal("0.00000000000000000000123"), 0),
                (None, None): (1, Decimal(0), 1),
            },
        ),
    ],
)
def test_group_by_dimension(
    ledger: Ledger,
    dimension: str,
    expected: dict[tuple[str | None, ...], tuple[int, Decimal, int]],
) -> None:
    report = ledger.report(ReportQuery(by=[dimension]))
    assert by_values(report) == expected
    assert report.totals.requests == 5


def test_tag_dimension_names_key_and_value_columns(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["tag"]))
    assert report.columns == ["tag_key", "tag_value"]
    assert report.groups[0].values == {"tag_key": "env", "tag_value": "prod"}


def test_groups_sorted_by_cost_descending(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["model"]))
    costs = [group.totals.cost_usd for group in report.groups]
    assert costs == sorted(costs, reverse=True)
    assert report.groups[0].values == {"model": "gpt-4o"}


def test_group_totals_include_tokens_and_errors(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["provider"]))
    openai = next(group for group in report.groups if group.values["provider"] == "openai")
    assert openai.totals.errors == 2
    assert openai.totals.input_tokens == 1008
    assert openai.totals.output_tokens == 200
    assert openai.totals.cache_read_tokens == 512
    assert openai.totals.reasoning_tokens == 50


def test_several_dimensions_combine(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["provider", "tag:env", "day"]))
    assert report.columns == ["provider", "tag:env", "day"]
    assert by_values(report) == {
        ("openai", "prod", "2025-05-01"): (2, Decimal("0.3"), 0),
        ("openai", "prod", "2025-05-02"): (1, Decimal("0.00000000000000000000123"), 0),
        ("anthropic", "dev", "2025-05-02"): (1, Decimal("0.0000000416666666666666664"), 0),
        ("anthropic", None, "2025-05-02"): (1, Decimal(0), 1),
    }


def test_repeated_dimension_is_grouped_once(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["team", "team"]))
    assert report.columns == ["team"]


def test_hour_bucket_is_utc_for_offset_times(db_url: str) -> None:
    plus_two = timezone(timedelta(hours=2))
    ledger = open_ledger(db_url)
    try:
        ledger.write([make_record("tz", started_at=datetime(2025, 1, 1, 1, 30, tzinfo=plus_two))])
        report = ledger.report(ReportQuery(by=["day", "hour"]))
    finally:
        ledger.close()
    assert report.groups[0].values == {"day": "2024-12-31", "hour": "2024-12-31T23:00:00Z"}


def test_since_is_inclusive_and_until_exclusive(ledger: Ledger) -> None:
    report = ledger.report(
        ReportQuery(by=["model"], since=T0 + timedelta(minutes=50), until=T0 + timedelta(hours=2))
    )
    assert report.totals.requests == 1
    assert by_values(report) == {("gpt-4o",): (1, Decimal("0.2"), 0)}


def test_since_accepts_any_offset(ledger: Ledger) -> None:
    since = (T0 + timedelta(hours=2)).astimezone(timezone(timedelta(hours=-5)))
    assert ledger.report(ReportQuery(since=since)).totals.requests == 3


def test_where_filters_on_column_and_tag(ledger: Ledger) -> None:
    report = ledger.report(ReportQuery(by=["user"], where={"feature": "chat", "tag:env": "prod"}))
    assert by_values(report) == {("u2",): (1, Decimal("0.2"), 0), ("u1",): (1, Decimal("0.1"), 0)}
    assert report.totals.requests == 2


def test_where_on_model_uses_served_then_requested(ledger: Ledger) -> None:
    assert ledger.report(ReportQuery(where={"model": "gpt-4o"})).totals.requests == 1
    assert ledger.report(ReportQuery(where={"model": "gpt-4o-2024-08-06"})).totals.requests == 1


def test_where_on_day(ledger: Ledger) -> None:
    assert ledger.report(ReportQuery(where={"day": "2025-05-02"})).totals.requests == 3


def test_unknown_dimension_lists_valid_ones(ledger: Ledger) -> None:
    with pytest.raises(ReportError) as caught:
        ledger.report(ReportQuery(by=["model", "colour"]))
    message = str(caught.value)
    assert message.startswith("unknown dimension 'colour'; valid dimensions: provider, model,")
    assert "tag:KEY" in message
    assert "hour" in message


def test_tag_dimension_without_key_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(ReportError, match="has no tag key"):
        ledger.report(ReportQuery(by=["tag:"]))


def test_where_on_bare_tag_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(ReportError, match="tag:KEY=VALUE"):
        ledger.report(ReportQuery(where={"tag": "prod"}))


def test_where_on_unknown_dimension_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(ReportError, match="unknown dimension 'colour'"):
        ledger.report(ReportQuery(where={"colour": "red"}))


def test_naive_since_is_rejected(ledger: Ledger) -> None:
    with pytest.raises(ReportError, match="since 2025-05-01T00:00:00 is a naive datetime"):
        ledger.report(ReportQuery(since=datetime(2025, 5, 1)))
