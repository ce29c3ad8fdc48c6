"""The `thrifty replay` command against a loopback server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.servers import serve_in_thread
from tests.test_replay import INPUT_PRICE, OUTPUT_PRICE, FakeGateway
from thrifty.cli.main import main

AZURE = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:15:46.6805900,374,44\n"
    "2023-11-16 18:15:46.7805900,1200,9\n"
    "2023-11-16 18:15:46.8805900,5,3\n"
    "2023-11-16 18:15:46.9805900,40,120\n"
)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    with serve_in_thread(fake.app()) as url:
        fake.url = url
        yield fake


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_json_summary_exact(
    gateway: FakeGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = write(tmp_path, "azure.csv", AZURE)

    code = run_cli(monkeypatch, "replay", str(trace), "--gateway", gateway.url, "--json")

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    input_tokens = 374 + 1200 + 7 + 40
    output_tokens = 44 + 9 + 3 + 120
    assert summary["requests"] == 4
    assert summary["errors"] == 0
    assert summary["input_tokens"] == input_tokens
    assert summary["output_tokens"] == output_tokens
    assert summary["cache_read_tokens"] == 0
    assert Decimal(summary["cost_usd"]) == input_tokens * INPUT_PRICE + output_tokens * OUTPUT_PRICE
    assert summary["latency_p50_ms"] > 0
    assert summary["latency_p99_ms"] >= summary["latency_p50_ms"]
    assert [body["model"] for body in gateway.bodies] == ["gpt-4o-mini"] * 4
    assert gateway.headers[0]["authorization"] == "Bearer sandbox"


def test_options_reach_requests(
    gateway: FakeGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = write(tmp_path, "trace.txt", AZURE)
    monkeypatch.setenv("THRIFTY_API_KEY", "tk-test")
    args = ["--model", "gpt-4", "--limit", "2", "--concurrency", "1", "--speed", "1000"]

    code = run_cli(
        monkeypatch, "replay", str(trace), "--gateway", gateway.url, "--format", "azure", *args
    )

    assert code == 0
    assert "Replay summary" in capsys.readouterr().out
    assert [body["max_tokens"] for body in gateway.bodies] == [44, 9]
    assert [body["model"] for body in gateway.bodies] == ["gpt-4", "gpt-4"]
    assert gateway.headers[0]["authorization"] == "Bearer tk-test"


def test_table_summary(
    gateway: FakeGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway.fail_max_tokens = {3}
    trace = write(tmp_path, "azure.csv", AZURE)

    code = run_cli(monkeypatch, "replay", str(trace), "--gateway", gateway.url)

    assert code == 0
    out = capsys.readouterr().out
    assert "Replay summary" in out
    assert "1,614" in out  # input tokens of the three rows that succeeded
    assert "error: line 4: InternalServerError" in out


def test_burstgpt_failed_rows_sent(
    gateway: FakeGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = write(
        tmp_path,
        "burst.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "6,GPT-4,1087,0,1087,API log\n",
    )

    code = run_cli(monkeypatch, "replay", str(trace), "--gateway", gateway.url, "--json")

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["input_tokens"] == 472 + 1087
    assert summary["output_tokens"] == 18 + 1
    assert sorted(body["max_tokens"] for body in gateway.bodies) == [1, 18]


def test_missing_trace_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "absent.csv"

    code = run_cli(monkeypatch, "replay", str(trace), "--gateway", "http://127.0.0.1:9")

    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"thrifty: error: trace file '{trace}' not found; check the path\n"


def test_malformed_trace_exits_2_before_sending(
    gateway: FakeGateway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trace = write(tmp_path, "azure.csv", AZURE + "2023-11-16 18:15:47.0,12x,3\n")

    code = run_cli(monkeypatch, "replay", str(trace), "--gateway", gateway.url)

    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"thrifty: error: {trace}:6: invalid ContextTokens '12x'")
    assert gateway.bodies == []


@pytest.mark.parametrize(
    "args", [["--speed", "-1"], ["--concurrency", "0"], ["--format", "sharegpt"], []]
)
def test_invalid_options_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    trace = write(tmp_path, "azure.csv", AZURE)
    gateway_args = ["--gateway", "http://127.0.0.1:9"] if args else []

    code = run_cli(monkeypatch, "replay", str(trace), *gateway_args, *args)

    assert code == 2
    assert capsys.readouterr().err.startswith("thrifty: error: ")
