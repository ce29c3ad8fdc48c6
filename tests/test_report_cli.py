"""`thrifty report`: JSON, CSV and table output and exit codes.

Subprocesses check the output contract and the exit codes. The other cases
call the same ``main()`` in-process, because each subprocess spends about
two seconds importing the CLI.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer

from tests.ledger_support import BACKENDS, ledger_db_url, make_record, unpriced
from thrifty.cli.main import main
from thrifty.cli.report import parse_time
from thrifty.ledger import open_ledger

NOW = datetime.now(UTC)

RECORDS = [
    make_record(
        "c1",
        started_at=NOW - timedelta(hours=2),
        model_served="gpt-4o",
        feature="chat",
        input_tokens=1000,
        output_tokens=100,
        cache_read_tokens=256,
        reasoning_tokens=10,
        cost_usd=Decimal("0.1"),
        tags={"env": "prod"},
    ),
    make_record(
        "c2",
        started_at=NOW - timedelta(days=3),
        model_served="gpt-4o",
        feature="chat",
        input_tokens=500,
        output_tokens=50,
        cost_usd=Decimal("0.2"),
        tags={"env": "dev"},
    ),
    make_record(
        "c3",
        started_at=NOW - timedelta(days=3),
        model_served="gpt-4o-mini",
        feature=None,
        input_tokens=20,
        output_tokens=2,
        cache_write_tokens=8,
        cost_usd=Decimal("0.0000000416666666666666664"),
        http_status=500,
        error_type="server_error",
    ),
    unpriced("c4", started_at=NOW - timedelta(hours=1), model_served="mystery", feature="chat"),
]

TOTAL_COST = "0.3000000416666666666666664"


def filled(urls: Iterator[str]) -> Iterator[str]:
    for url in urls:
        ledger = open_ledger(url)
        ledger.write(RECORDS)
        ledger.close()
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from filled(ledger_db_url(request, tmp_path))


@pytest.fixture(params=["sqlite"])
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from filled(ledger_db_url(request, tmp_path))


def thrifty(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from thrifty.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ) if env is None else env,
        timeout=60,
        check=False,
    )


def run_main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """Run ``main()`` in-process; return its exit status, stdout and stderr."""
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_has_totals_and_groups(sqlite_url: str) -> None:
    result = thrifty("report", "--db", sqlite_url, "--by", "model", "--format", "json")
    assert result.returncode == 0, result.stderr
    check_model_report(json.loads(result.stdout))


def test_json_same_on_each_backend(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", db_url, "--by", "model", "--format", "json"
    )
    assert status == 0, err
    check_model_report(json.loads(out))


def check_model_report(data: dict[str, Any]) -> None:
    assert data["requests"] == 4
    assert data["errors"] == 1
    assert data["input_tokens"] == 2720
    assert data["output_tokens"] == 452
    assert data["cache_read_tokens"] == 256
    assert data["cache_write_tokens"] == 8
    assert data["reasoning_tokens"] == 10
    assert data["cost_usd"] == TOTAL_COST
    assert data["unpriced_requests"] == 1
    assert data["by"] == ["model"]
    assert [group["model"] for group in data["groups"]] == ["gpt-4o", "gpt-4o-mini", "mystery"]
    assert data["groups"][0] == {
        "model": "gpt-4o",
        "requests": 2,
        "errors": 0,
        "input_tokens": 1500,
        "output_tokens": 150,
        "cache_read_tokens": 256,
        "cache_write_tokens": 0,
        "reasoning_tokens": 10,
        "cost_usd": "0.3",
        "unpriced_requests": 0,
    }
    assert data["groups"][2]["cost_usd"] == "0"
    assert data["groups"][2]["unpriced_requests"] == 1


def test_json_groups_by_tag_key(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", db_url, "--by", "tag:env", "--format", "json"
    )
    assert status == 0, err
    groups = {group["tag:env"]: group["requests"] for group in json.loads(out)["groups"]}
    assert groups == {"prod": 1, "dev": 1, None: 2}


def test_csv_has_header_and_group_rows(sqlite_url: str) -> None:
    result = thrifty("report", "--db", sqlite_url, "--by", "feature,model", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == [
        "feature",
        "model",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_usd",
        "unpriced_requests",
    ]
    assert rows[1] == ["chat", "gpt-4o", "2", "0", "1500", "150", "256", "0", "10", "0.3", "0"]
    assert rows[2][:2] == ["", "gpt-4o-mini"]
    assert rows[2][9] == "0.0000000416666666666666664"
    assert rows[3][:2] == ["chat", "mystery"]
    assert len(rows) == 4


def test_csv_without_by_is_one_totals_row(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", sqlite_url, "--format", "csv"
    )
    assert status == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert len(rows) == 2
    assert rows[1][0] == "4"
    assert rows[1][7] == TOTAL_COST


def test_table_lists_groups_and_total(sqlite_url: str) -> None:
    result = thrifty("report", "--db", sqlite_url, "--by", "model")
    assert result.returncode == 0, result.stderr
    assert "Thrifty report" in result.stdout
    assert "gpt-4o-mini" in result.stdout
    assert "mystery" in result.stdout
    assert "total" in result.stdout
    assert "0.300000" in result.stdout
    assert "4.167e-8" in result.stdout


def test_since_relative_and_until_iso(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", db_url, "--since", "24h", "--format", "json"
    )
    assert status == 0, err
    assert json.loads(out)["requests"] == 2

    until = (NOW - timedelta(days=1)).date().isoformat()
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", db_url, "--until", until, "--format", "json"
    )
    assert status == 0, err
    data = json.loads(out)
    assert data["requests"] == 2
    assert data["until"] == f"{until}T00:00:00+00:00"


def test_where_filters_requests(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(
        capsys, monkeypatch, "report", "--db", db_url,
        "--where", "feature=chat", "--where", "tag:env=prod", "--format", "json",
    )  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["requests"] == 1


def test_db_defaults_to_env_variable(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THRIFTY_DB_URL", sqlite_url)
    status, out, err = run_main(capsys, monkeypatch, "report", "--format", "json")
    assert status == 0, err
    assert json.loads(out)["requests"] == 4


def test_db_defaults_to_local_sqlite_file(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / '.thrifty' / 'thrifty.db'}")
    ledger.write(RECORDS[:2])
    ledger.close()
    env = {key: value for key, value in os.environ.items() if key != "THRIFTY_DB_URL"}
    result = thrifty("report", "--format", "json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["requests"] == 2


def test_unknown_dimension_exits_2(sqlite_url: str) -> None:
    result = thrifty("report", "--db", sqlite_url, "--by", "model,colour")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("thrifty: error: unknown dimension 'colour'; valid dimensions:")
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "case",
    [
        ("--since", "yesterday", "invalid time 'yesterday'"),
        ("--until", "2025-13-01", "invalid time '2025-13-01'"),
        ("--where", "feature", "invalid filter 'feature'"),
        ("--format", "xml", "'xml' is not one of"),
    ],
)
def test_invalid_option_exits_2(
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, str, str],
) -> None:
    option, value, message = case
    status, out, err = run_main(capsys, monkeypatch, "report", "--db", sqlite_url, option, value)
    assert status == 2
    assert out == ""
    assert err.startswith("thrifty: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_missing_sqlite_file_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "thrifty.db"
    result = thrifty("report", "--db", f"sqlite:///{path}")
    assert result.returncode == 2
    assert result.stderr.startswith(f"thrifty: error: no ledger database at {path}")
    assert not path.parent.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", datetime(2025, 6, 1, 11, 30, tzinfo=UTC)),
        ("24h", datetime(2025, 5, 31, 12, 0, tzinfo=UTC)),
        ("7d", datetime(2025, 5, 25, 12, 0, tzinfo=UTC)),
        ("2w", datetime(2025, 5, 18, 12, 0, tzinfo=UTC)),
        ("90s", datetime(2025, 6, 1, 11, 58, 30, tzinfo=UTC)),
        ("2025-01-31", datetime(2025, 1, 31, tzinfo=UTC)),
        ("2025-01-31T13:00:00Z", datetime(2025, 1, 31, 13, tzinfo=UTC)),
        ("2025-01-31T13:00:00", datetime(2025, 1, 31, 13, tzinfo=UTC)),
        (
            "2025-01-31T13:00:00+02:00",
            datetime(2025, 1, 31, 13, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_parse_time_forms(text: str, expected: datetime) -> None:
    now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    parsed = parse_time(text, now, "--since")
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_parse_time_rejects_words() -> None:
    with pytest.raises(typer.BadParameter, match="invalid time 'last week'"):
        parse_time("last week", datetime(2025, 6, 1, tzinfo=UTC), "--since")
