"""`thrifty batch`: dry run, validate, submit, wait (also after a killed wait), status, collect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.batch_support import ManualClock, openai_line, read_jsonl, write_jsonl
from thrifty.cli.main import main
from thrifty.pricing.engine import CostEngine
from thrifty.sandbox import SandboxServer, SandboxSettings
from thrifty.tokens import count_chat_messages
from thrifty.usage import Usage


@pytest.fixture(autouse=True)
def provider_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def places(tmp_path: Path) -> list[str]:
    """The --db and --work-dir options of one test's ledger."""
    return ["--db", f"sqlite:///{tmp_path / 'ledger.db'}", "--work-dir", str(tmp_path / "jobs")]


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


def run_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> Any:
    status, out, err = run_main(capsys, monkeypatch, *args, "--format", "json")
    assert status == 0, err
    return json.loads(out)


def test_dry_run_estimates_both_rates(
    tmp_path: Path,
    places: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [openai_line(index, max_tokens=100) for index in range(5)]
    path = write_jsonl(tmp_path / "input.jsonl", lines)

    estimate = run_json(capsys, monkeypatch, "batch", "submit", str(path), "--dry-run", *places)

    tokens = sum(count_chat_messages(line["body"]["messages"], "gpt-4o-mini") for line in lines)
    engine = CostEngine()
    prices = [
        engine.price(
            "openai",
            "gpt-4o-mini",
            Usage(
                input_tokens=count_chat_messages(line["body"]["messages"], "gpt-4o-mini"),
                output_tokens=100,
            ),
            batch=batch,
        ).cost_usd
        for line in lines
        for batch in (True, False)
    ]
    assert estimate["requests"] == 5
    assert estimate["batches"] == 1
    model = estimate["models"][0]
    assert model["model"] == "gpt-4o-mini"
    assert model["input_tokens"] == tokens
    assert model["output_tokens"] == 500
    assert Decimal(model["batch_cost_usd"]) == sum(prices[0::2], Decimal(0))
    assert Decimal(model["standard_cost_usd"]) == sum(prices[1::2], Decimal(0))
    assert not (tmp_path / "jobs").exists()


def test_validate_lists_every_bad_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[dict[str, Any]] = [
        openai_line(0),
        {**openai_line(1), "url": "/v1/nope"},
        {**openai_line(0)},
        {**openai_line(3), "method": "DELETE"},
    ]
    path = write_jsonl(tmp_path / "input.jsonl", lines)

    status, out, err = run_main(capsys, monkeypatch, "batch", "validate", str(path))

    assert status == 1
    assert out == ""
    problems = err.splitlines()
    assert problems[0].startswith("line 2: url '/v1/nope' is not one the Batch API accepts")
    assert problems[1] == "line 3: custom_id 'req-0' repeats the one on line 1"
    assert problems[2] == "line 4: method is 'DELETE'; the Batch API takes POST only"
    assert problems[3] == f"{path}: 3 invalid lines"


def test_validate_counts_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(3)])

    status, out, _ = run_main(capsys, monkeypatch, "batch", "validate", str(path))

    assert status == 0
    assert out.strip() == f"{path}: 3 valid openai requests in 1 batch"


def test_submit_invalid_file_exits_2(
    tmp_path: Path,
    places: list[str],
    sandbox: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(0), {"custom_id": "x"}])

    status, _, err = run_main(
        capsys, monkeypatch, "batch", "submit", str(path), "--base-url", sandbox.url, *places
    )

    assert status == 2
    lines = err.splitlines()
    assert lines[0].startswith("line 2: the line is not a batch request")
    assert lines[-1].startswith(f"thrifty: error: {path} has 1 invalid lines")


def test_submit_wait_status_collect(
    tmp_path: Path,
    places: list[str],
    sandbox: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(7)])
    monkeypatch.chdir(tmp_path)

    submitted = run_json(
        capsys,
        monkeypatch,
        "batch",
        "submit",
        str(path),
        "--base-url",
        sandbox.url,
        "--name",
        "nightly",
        "--feature",
        "nightly-eval",
        "--tag",
        "env=test",
        "--wait",
        "--poll-interval",
        "0.02",
        *places,
    )
    job = submitted["job"]
    status = run_json(capsys, monkeypatch, "batch", "status", job, *places)
    listed = run_json(capsys, monkeypatch, "batch", "list", *places)
    code, out, err = run_main(capsys, monkeypatch, "batch", "collect", job, *places)

    assert submitted["status"] == "completed"
    assert submitted["counts"] == {"succeeded": 7}
    assert status["done"] == 7
    assert status["requests"] == 7
    assert Decimal(status["standard_cost_usd"]) == 2 * Decimal(status["cost_usd"])
    assert Decimal(status["cost_usd"]) > 0
    assert [entry["job"] for entry in listed] == [job]
    assert listed[0]["name"] == "nightly"
    assert code == 0, err
    output = tmp_path / "input.results.jsonl"
    assert out.strip() == f"wrote 7 results to {Path('input.results.jsonl')} (7 succeeded)"
    collected = read_jsonl(output)
    assert [line["custom_id"] for line in collected] == [f"req-{index}" for index in range(7)]


def test_status_of_newest_job_table(
    tmp_path: Path,
    places: list[str],
    sandbox: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(2)])
    submitted = run_json(
        capsys, monkeypatch, "batch", "submit", str(path), "--base-url", sandbox.url, *places
    )

    status, out, err = run_main(capsys, monkeypatch, "batch", "status", *places)

    assert status == 0, err
    assert submitted["job"] in out
    assert "2/2 requests" in out
    assert "requests: 2 succeeded" in out
    assert f"thrifty batch collect {submitted['job']}" in out


def test_unknown_job_exits_2(
    places: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = run_main(capsys, monkeypatch, "batch", "status", "job_missing", *places)

    assert status == 2
    assert err.startswith("thrifty: error: no batch job with id 'job_missing'")


def test_wait_after_killed_wait(
    tmp_path: Path,
    places: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The batch stays validating until the clock moves, so the killed wait
    # cannot have finished it.
    clock = ManualClock()
    settings = SandboxSettings(batch_validating_s=10, clock=clock)
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(20)])

    with SandboxServer(settings) as server:
        job = run_json(
            capsys, monkeypatch, "batch", "submit", str(path), "--base-url", server.url, *places
        )["job"]
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from thrifty.cli.main import main; main()",
                "batch",
                "wait",
                job,
                "--poll-interval",
                "0.05",
                *places,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        try:
            assert waiting.stderr is not None
            first = waiting.stderr.readline().decode()
            assert "0/20 requests" in first
        finally:
            waiting.kill()
            waiting.wait(timeout=20)
        clock.advance(10)
        finished = run_json(
            capsys, monkeypatch, "batch", "wait", job, "--poll-interval", "0.05", *places
        )
        code, _, err = run_main(
            capsys, monkeypatch, "batch", "collect", job, "-o", str(tmp_path / "out.jsonl"), *places
        )

    assert waiting.returncode == -9
    assert finished["status"] == "completed"
    assert finished["counts"] == {"succeeded": 20}
    assert code == 0, err
    collected = read_jsonl(tmp_path / "out.jsonl")
    assert [line["custom_id"] for line in collected] == [f"req-{index}" for index in range(20)]
    assert {line["attempts"] for line in collected} == {1}


def test_report_shows_batch_savings(
    tmp_path: Path,
    places: list[str],
    sandbox: SandboxServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_jsonl(tmp_path / "input.jsonl", [openai_line(index) for index in range(3)])
    job = run_json(
        capsys,
        monkeypatch,
        "batch",
        "submit",
        str(path),
        "--base-url",
        sandbox.url,
        "--wait",
        "--poll-interval",
        "0.02",
        *places,
    )
    db = places[:2]

    report = run_json(capsys, monkeypatch, "report", *db, "--by", "batch")
    status, table, err = run_main(capsys, monkeypatch, "report", *db)

    savings = report["savings"]["batch"]
    assert report["groups"][0]["batch"] == job["job"]
    assert report["groups"][0]["requests"] == 3
    assert savings["results"] == 3
    assert savings["cost_usd"] == job["cost_usd"]
    assert Decimal(savings["standard_cost_usd"]) == 2 * Decimal(job["cost_usd"])
    assert Decimal(savings["savings_usd"]) == Decimal(job["cost_usd"])
    assert report["savings"]["flex"]["calls"] == 0
    assert status == 0, err
    assert "Batch: 3 results cost $" in table
    assert "Flex:" not in table
