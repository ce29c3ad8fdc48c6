"""`thrifty import`: the summary printed per file, run twice on the same file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.ledger import open_ledger

LINES = [
    {
        "id": "batch_req_a",
        "custom_id": "a",
        "response": {
            "status_code": 200,
            "request_id": "req_a",
            "body": {
                "object": "list",
                "data": [],
                "model": "text-embedding-3-small",
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            },
        },
        "error": None,
    },
    {"id": "batch_req_b", "custom_id": "b", "response": None, "error": {"code": "server_error"}},
]


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture
def batch_file(tmp_path: Path) -> Path:
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in LINES), encoding="utf-8")
    return path


def test_import_prints_summary_twice(
    tmp_path: Path,
    batch_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    args = ("import", "openai-batch", str(batch_file), "--db", db, "--at", "2025-06-01T12:00:00Z")

    first_status = run_cli(monkeypatch, *args)
    first = capsys.readouterr().out
    second_status = run_cli(monkeypatch, *args)
    second = capsys.readouterr().out
    ledger = open_ledger(db)
    count = ledger.count()
    ledger.close()

    assert first_status == 0
    assert second_status == 0
    assert first.splitlines() == [
        f"{batch_file}: 2 rows read, 1 imported, 1 skipped",
        "  1 skipped: request failed (server_error); failed requests are not billed "
        "(first: line 2)",
    ]
    assert second.splitlines()[0] == f"{batch_file}: 2 rows read, 0 imported, 2 skipped"
    assert "  1 skipped: already in the ledger (first: openai-batch:batch_req_a)" in (
        second.splitlines()
    )
    assert count == 1


def test_import_json_summary(
    tmp_path: Path,
    batch_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"

    status = run_cli(
        monkeypatch, "import", "openai-batch", str(batch_file), "--db", db, "--format", "json"
    )
    summary = json.loads(capsys.readouterr().out)

    assert status == 0
    [report] = summary["files"]
    assert summary["source"] == "openai-batch"
    assert report["rows_read"] == 2
    assert report["imported"] == 0
    assert report["skipped"] == 2
    # Reasons with equal counts keep the order of their first rows.
    assert [item["reason"] for item in report["skipped_reasons"]] == [
        "no timestamp in the response; pass --at with the batch's completion time",
        "request failed (server_error); failed requests are not billed",
    ]
    assert report["skipped_reasons"][0]["first"] == "line 1"


def test_import_unknown_source_exits_2(
    batch_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run_cli(monkeypatch, "import", "openai-invoices", str(batch_file))

    assert status == 2
    assert "unknown source 'openai-invoices'" in capsys.readouterr().err


def test_import_missing_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"

    status = run_cli(monkeypatch, "import", "litellm", str(tmp_path / "nope.csv"), "--db", db)

    assert status == 2
    assert "does not exist" in capsys.readouterr().err
