"""`thrifty prompts analyze` and `thrifty prompts optimize` on request files and ledgers."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.test_prompts_workloads import (
    PASSAGES,
    anthropic_problems,
    openai_chat_problems,
    rag_chats,
    support_chats,
    to_anthropic,
)
from thrifty.cli.main import main
from thrifty.ledger import open_ledger
from thrifty.ledger.record import RequestRecord


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


def write_lines(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    lines: list[dict[str, Any]] = []
    for number, body in enumerate(support_chats(2)):
        lines.append(
            {
                "custom_id": f"support-{number}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {**body, "metadata": {"feature": "support"}},
            }
        )
    lines += [{"feature": "rag", "key": "key-a", "body": body} for body in rag_chats(2)]
    lines += [
        {"custom_id": f"claude-{n}", "params": to_anthropic(body)}
        for n, body in enumerate(support_chats(1, seed=3))
    ]
    lines.append(
        {
            "custom_id": "embed",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "hi"},
        }
    )
    return write_lines(tmp_path / "requests.jsonl", lines)


def analyze_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> dict[str, Any]:
    status, out, err = run_main(
        capsys, monkeypatch, "prompts", "analyze", *args, "--format", "json"
    )
    assert status == 0, err
    result = json.loads(out)
    assert isinstance(result, dict)
    return result


def test_analyze_reports_breakdown_and_transforms(
    request_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = analyze_json(capsys, monkeypatch, str(request_file))
    assert result["requests"] == 5
    assert result["skipped"] == {
        "a batch request to /v1/embeddings, which has no prompt to optimize": 1
    }
    assert sum(result["breakdown"].values()) == result["input_tokens"]
    assert result["breakdown"]["tools"] > 0
    assert result["breakdown"]["retrieved"] > 0
    assert set(result["transforms"]) == {
        "drop_empty",
        "whitespace",
        "minify_json",
        "dedupe",
        "layout",
    }
    assert result["transforms"]["minify_json"]["saved_tokens"] > 0
    assert result["transforms"]["dedupe"]["saved_tokens"] > 0
    assert result["saved_tokens"] == result["input_tokens"] - result["input_tokens_after"]
    assert result["unpriced_requests"] == 0
    assert float(result["saved_usd"]) > 0
    features = {row["feature"]: row for row in result["features"]}
    assert set(features) == {None, "rag", "support"}
    assert features["support"]["requests"] == 2
    assert sum(row["input_tokens"] for row in features.values()) == result["input_tokens"]


def test_analyze_trim_and_compress_options(
    request_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = analyze_json(
        capsys, monkeypatch, str(request_file), "--budget", "500", "--compress-ratio", "0.5"
    )
    assert result["transforms"]["trim"]["saved_tokens"] > 0
    assert result["transforms"]["compress"]["saved_tokens"] > 0
    only = analyze_json(capsys, monkeypatch, str(request_file), "--transforms", "whitespace")
    assert set(only["transforms"]) == {"whitespace"}
    assert only["saved_tokens"] == only["transforms"]["whitespace"]["saved_tokens"]


def test_analyze_groups_shared_system_prompts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = "You are the assistant of Northwind Outfitters.\n\n" + "\n\n".join(PASSAGES)
    lines = [
        {
            "feature": "chat",
            "body": {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "a"},
                ],
            },
        },
        {
            "feature": "search",
            "key": "key-b",
            "body": {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "b"},
                ],
            },
        },
        {
            "feature": "chat",
            "body": {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": system + "Be brief."},
                    {"role": "user", "content": "c"},
                ],
            },
        },
        {
            "feature": "solo",
            "body": {
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "A different prompt altogether."},
                    {"role": "user", "content": "d"},
                ],
            },
        },
    ]
    path = write_lines(tmp_path / "system.jsonl", lines)
    result = analyze_json(capsys, monkeypatch, str(path))
    [group] = result["system_prompts"]
    assert group["variants"] == 2
    assert group["requests"] == 3
    assert group["features"] == ["chat", "search"]
    assert group["keys"] == ["key-b"]
    assert group["total_tokens"] > 3 * group["tokens"] - 10


def test_analyze_table_output(
    request_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = run_main(capsys, monkeypatch, "prompts", "analyze", str(request_file))
    assert status == 0, err
    assert "Where input tokens go" in out
    assert "minify_json" in out
    assert "skipped 1 lines" in out


def test_optimize_writes_same_line_format(
    request_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "optimized.jsonl"
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "prompts",
        "optimize",
        str(request_file),
        "-o",
        str(output),
        "--budget",
        "600",
    )
    assert status == 0, err
    assert out == ""
    assert "optimized 5 requests" in err
    assert "1 lines copied unchanged" in err
    original = [json.loads(line) for line in request_file.read_text().splitlines()]
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(written) == len(original)
    assert [line.get("custom_id") for line in written] == [
        line.get("custom_id") for line in original
    ]
    assert written[-1] == original[-1]
    assert written[0]["url"] == "/v1/chat/completions"
    assert openai_chat_problems(written[0]["body"]) == []
    assert anthropic_problems(written[4]["params"]) == []
    assert len(json.dumps(written[0]["body"])) < len(json.dumps(original[0]["body"]))


def test_optimize_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi   there"}]}
    path = write_lines(tmp_path / "one.jsonl", [body])
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "prompts",
        "optimize",
        str(path),
        "--transforms",
        "whitespace",
        "--config",
        str(write_config(tmp_path)),
    )
    assert status == 0, err
    assert json.loads(out) == body
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "prompts",
        "optimize",
        str(path),
        "--transforms",
        "lossless",
        "--api",
        "chat.completions",
    )
    assert status == 0, err
    assert json.loads(out) == body


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text("prompts:\n  protect:\n    final_user: message\n")
    return path


def test_analyze_db_sums_recorded_savings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url)
    from datetime import UTC, datetime

    annotation = {
        "settings": "default",
        "input_tokens_before": 120,
        "input_tokens_after": 100,
        "saved_tokens": 20,
        "transforms": {"whitespace": {"saved_tokens": 15}, "dedupe": {"saved_tokens": 5}},
        "saved_usd": "0.000003",
    }
    records = [
        RequestRecord(
            request_id=f"req_{n}",
            started_at=datetime.now(UTC),
            provider="openai",
            endpoint="chat.completions",
            model_requested="gpt-4o-mini",
            cost_usd=Decimal("0.0001"),
            feature="chat" if n else None,
            details={"prompts": annotation} if n < 3 else {},
        )
        for n in range(4)
    ]
    ledger.write(records)
    ledger.close()
    result = analyze_json(capsys, monkeypatch, "--db", url)
    assert "stores no request bodies" in result["note"]
    assert result["records"] == 4
    assert result["optimized"]["requests"] == 3
    assert result["optimized"]["saved_tokens"] == 60
    assert result["optimized"]["saved_usd"] == "0.000009"
    assert result["optimized"]["transforms"] == {"dedupe": 15, "whitespace": 45}
    assert [row["feature"] for row in result["features"]] == [None, "chat"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either FILE or --db URL"),
        (["missing.jsonl"], "cannot read request file missing.jsonl"),
        (["bad.jsonl"], "line 2 of"),
        (["good.jsonl", "--transforms", "shrink"], "unknown transform 'shrink'"),
        (["good.jsonl", "--transforms", "trim"], "give the token budget with --budget"),
        (["--db", "sqlite:///nowhere/ledger.db"], "no ledger database at nowhere/ledger.db"),
    ],
)
def test_analyze_errors_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\nnot json\n')
    write_lines(tmp_path / "good.jsonl", [next(rag_chats(1))])
    monkeypatch.chdir(tmp_path)
    status, _, err = run_main(capsys, monkeypatch, "prompts", "analyze", *args)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
