"""Monthly chargeback statements and cost-center rules, and `thrifty report chargeback`."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.allocation import (
    build_statement,
    load_rules,
    month_range,
    parse_rules,
    statement_csv,
    statement_markdown,
)
from thrifty.cli.main import main
from thrifty.errors import ConfigError
from thrifty.ledger import Ledger, open_ledger

NOV = datetime(2026, 11, 1, tzinfo=UTC)

RECORDS = [
    make_record(
        "n1",
        started_at=NOV,
        team="search",
        feature="answer",
        cost_usd=Decimal("3.5"),
        tags={"customer": "acme"},
    ),
    make_record(
        "n2",
        started_at=NOV + timedelta(days=3),
        team="search",
        feature="rank",
        cost_usd=Decimal("1.25"),
    ),
    make_record(
        "n3",
        started_at=NOV + timedelta(days=9),
        team="search",
        feature="answer",
        cost_usd=Decimal("0.0000000416666666666666664"),
        tags={"customer": "acme"},
    ),
    make_record(
        "n4",
        started_at=NOV + timedelta(days=10),
        team="support",
        feature="bot",
        cost_usd=Decimal("2"),
        key_id="key_s",
    ),
    make_record(
        "n5",
        started_at=NOV + timedelta(days=20),
        team=None,
        feature="bot",
        cost_usd=Decimal("0.75"),
        tags={"customer": "globex"},
    ),
    make_record(
        "n6",
        started_at=NOV + timedelta(days=29, hours=23),
        team=None,
        feature=None,
        cost_usd=Decimal("0.25"),
    ),
    unpriced("n7", started_at=NOV + timedelta(days=5), team="support", feature="bot"),
    # Outside November: the last instant of October and the first of December.
    make_record(
        "o1", started_at=NOV - timedelta(microseconds=1), team="search", cost_usd=Decimal("100")
    ),
    make_record(
        "d1", started_at=datetime(2026, 12, 1, tzinfo=UTC), team="search", cost_usd=Decimal("100")
    ),
]
SEARCH_TOTAL = Decimal("4.7500000416666666666666664")

RULES = {
    "cost_centers": [
        {"name": "CC-100 Search", "match": {"team": "search", "tag:customer": ["acme"]}},
        {"name": "CC-200 Bots", "match": {"feature": ["bot"]}},
    ]
}


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    for url in ledger_db_url(request, tmp_path):
        opened = open_ledger(url)
        opened.write(RECORDS)
        yield opened
        opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url)
    ledger.write(RECORDS)
    ledger.close()
    return url


def test_month_range_covers_the_month() -> None:
    assert month_range("2026-11") == (NOV, datetime(2026, 12, 1, tzinfo=UTC))
    assert month_range("2026-12") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ConfigError, match="invalid month '2026-13'"):
        month_range("2026-13")


def test_statement_by_team(ledger: Ledger) -> None:
    statement = build_statement(ledger, "2026-11", "team")
    assert statement.totals.requests == 7
    assert statement.totals.cost_usd == SEARCH_TOTAL + Decimal("3")
    assert statement.totals.unpriced_requests == 1
    assert [section.owner for section in statement.owners] == ["search", "support"]
    search = statement.owners[0]
    assert search.totals.cost_usd == SEARCH_TOTAL
    assert [(name, totals.requests) for name, totals in search.ranked_features()] == [
        ("answer", 2),
        ("rank", 1),
    ]
    support = statement.owners[1]
    assert support.totals.requests == 2
    assert support.totals.unpriced_requests == 1


def test_unattributed_spend_is_called_out(ledger: Ledger) -> None:
    statement = build_statement(ledger, "2026-11", "team")
    unattributed = statement.unattributed
    assert unattributed is not None
    assert unattributed.owner is None
    assert unattributed.totals.cost_usd == Decimal("1")
    assert unattributed.totals.requests == 2
    assert dict(unattributed.features).keys() == {"bot", None}


def test_statement_by_key(ledger: Ledger) -> None:
    statement = build_statement(ledger, "2026-11", "key")
    assert [section.owner for section in statement.owners] == ["key_s"]
    assert statement.unattributed is not None
    assert statement.unattributed.totals.requests == 6


def test_statement_by_cost_center(ledger: Ledger) -> None:
    rules = parse_rules(RULES)
    statement = build_statement(ledger, "2026-11", "cost_center", rules)
    owners = {section.owner: section.totals for section in statement.owners}
    assert owners["CC-100 Search"].cost_usd == Decimal("3.5000000416666666666666664")
    assert owners["CC-200 Bots"].cost_usd == Decimal("2.75")
    assert owners["CC-200 Bots"].requests == 3
    assert statement.unattributed is not None
    assert statement.unattributed.totals.cost_usd == Decimal("1.5")


def test_default_cost_center_takes_the_rest(ledger: Ledger) -> None:
    rules = parse_rules({**RULES, "default": "CC-999 Shared"})
    statement = build_statement(ledger, "2026-11", "cost_center", rules)
    assert statement.unattributed is None
    shared = next(s for s in statement.owners if s.owner == "CC-999 Shared")
    assert shared.totals.cost_usd == Decimal("1.5")


def test_first_matching_rule_wins() -> None:
    rules = parse_rules(
        {
            "cost_centers": [
                {"name": "first", "match": {"team": "search"}},
                {"name": "second", "match": {"team": ["search", "support"]}},
            ]
        }
    )
    assert rules.cost_center({"team": "search"}) == "first"
    assert rules.cost_center({"team": "support"}) == "second"
    assert rules.cost_center({"team": None}) is None
    assert rules.dimensions == ["team"]


def test_csv_rows_are_exact(ledger: Ledger) -> None:
    rows = list(
        csv.DictReader(io.StringIO(statement_csv(build_statement(ledger, "2026-11", "team"))))
    )
    assert list(rows[0]) == [
        "month",
        "team",
        "feature",
        "attributed",
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "unpriced_requests",
    ]
    assert rows[0] == {
        **rows[0],
        "team": "search",
        "feature": "answer",
        "attributed": "true",
        "cost_usd": "3.5000000416666666666666664",
        "requests": "2",
    }
    unattributed = [row for row in rows if row["attributed"] == "false"]
    assert [(row["team"], row["feature"], row["cost_usd"]) for row in unattributed] == [
        ("", "bot", "0.75"),
        ("", "", "0.25"),
    ]
    assert sum(Decimal(row["cost_usd"]) for row in rows) == SEARCH_TOTAL + Decimal("3")


def test_markdown_statement(ledger: Ledger) -> None:
    text = statement_markdown(build_statement(ledger, "2026-11", "team"), "sqlite:///x.db")
    lines = text.splitlines()
    assert lines[0] == "# Chargeback statement for 2026-11, by team"
    assert "Total spend: **$7.750000** over 7 requests." in lines
    assert "| search | 3 | 3,600 | 900 | $4.750000 | 61.3% |" in lines
    assert "| **unattributed** | 2 | 2,400 | 600 | $1.000000 | 12.9% |" in lines
    assert "## search" in lines
    assert "## Unattributed spend" in lines
    assert any(
        line.startswith("$1.000000 over 2 requests (12.9% of the month) has no team.")
        for line in lines
    )
    assert "| (no feature) | 1 | $0.250000 | 25.0% |" in lines
    assert any("1 requests used models without a price" in line for line in lines)


def test_markdown_escapes_pipes(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'pipes.db'}")
    try:
        ledger.write([make_record("p", started_at=NOV, team="a|b", cost_usd=Decimal("1"))])
        text = statement_markdown(build_statement(ledger, "2026-11", "team"), "x")
    finally:
        ledger.close()
    assert "| a\\|b | 1 |" in text
    assert "Every request of 2026-11 has a team." in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a mapping"),
        ({"cost_centers": []}, "non-empty list"),
        ({"cost_centers": [{"name": "x"}]}, "exactly the keys name and match"),
        ({"cost_centers": [{"name": "", "match": {"team": "a"}}]}, "give the cost center a name"),
        (
            {"cost_centers": [{"name": "x", "match": {"colour": "red"}}]},
            "unknown dimension 'colour'",
        ),
        ({"cost_centers": [{"name": "x", "match": {"team": []}}]}, "give a value or a list"),
        ({"cost_centers": [{"name": "x", "match": {"team": [3]}}]}, "non-empty string"),
        ({**RULES, "owner": "me"}, "unknown key 'owner'"),
        ({**RULES, "default": ""}, "default is ''"),
    ],
)
def test_invalid_rules_are_rejected(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_rules(raw)


def test_rule_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    with pytest.raises(ConfigError, match="cannot read cost-center rule file"):
        load_rules(path)
    path.write_text("cost_centers: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_rules(path)


def test_cost_center_needs_rules(ledger: Ledger) -> None:
    with pytest.raises(ConfigError, match="needs a rule file"):
        build_statement(ledger, "2026-11", "cost_center")
    with pytest.raises(ConfigError, match="invalid --by 'feature'"):
        build_statement(ledger, "2026-11", "feature")


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_prints_markdown(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "report",
        "chargeback",
        "--month",
        "2026-11",
        "--by",
        "team",
        "--db",
        sqlite_url,
    )
    assert status == 0, err
    assert out.startswith("# Chargeback statement for 2026-11, by team\n")
    assert "## Unattributed spend" in out


def test_cli_writes_csv_file_with_rules(
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps(RULES), encoding="utf-8")
    output = tmp_path / "statement.csv"
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "report",
        "chargeback",
        "--month",
        "2026-11",
        "--by",
        "cost_center",
        "--rules",
        str(rules),
        "--format",
        "csv",
        "--output",
        str(output),
        "--db",
        sqlite_url,
    )
    assert status == 0, err
    assert out == ""
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8"))))
    assert {row["cost_center"] for row in rows} == {"CC-100 Search", "CC-200 Bots", ""}


def test_cli_json(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "report",
        "chargeback",
        "--month",
        "2026-11",
        "--format",
        "json",
        "--db",
        sqlite_url,
    )
    assert status == 0, err
    data = json.loads(out)
    assert data["by"] == "team"
    assert data["cost_usd"] == "7.7500000416666666666666664"
    assert [owner["owner"] for owner in data["owners"]] == ["search", "support"]
    assert data["owners"][0]["features"][0] == {
        **data["owners"][0]["features"][0],
        "feature": "answer",
        "requests": 2,
    }
    assert data["unattributed"]["cost_usd"] == "1.00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "November"], "invalid month 'November'"),
        (["--month", "2026-11", "--by", "cost_center"], "needs a rule file"),
        (["--month", "2026-11", "--rules", "/nonexistent/rules.yaml"], "cannot read"),
        ([], "Missing option '--month'"),
    ],
)
def test_cli_errors_exit_2(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "chargeback", "--db", sqlite_url, *args
    )
    assert status == 2
    assert out == ""
    assert err.startswith("thrifty: error: ")
    assert message in err


def test_report_without_subcommand_still_works(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "report",
        "--db",
        sqlite_url,
        "--by",
        "team",
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "--format",
        "json",
    )
    assert status == 0, err
    data = json.loads(out)
    assert data["requests"] == 7
    assert data["cost_usd"] == "7.7500000416666666666666664"
