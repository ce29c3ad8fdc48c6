"""Batch input files: validation, format conversion, splitting and the cost estimate."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from thrifty.batch.estimate import Estimator
from thrifty.batch.limits import BatchLimits
from thrifty.batch.plan import plan_job
from thrifty.batch.validate import InputOptions
from thrifty.errors import BatchError
from thrifty.pricing.engine import CostEngine
from thrifty.tokens import count_chat_messages
from thrifty.usage import Usage


def chat_body(index: int, model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"question {index}"}],
        "max_tokens": 8,
        **extra,
    }


def openai_line(index: int, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": f"req-{index}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": chat_body(index, **body),
    }


def write_lines(path: Path, lines: list[Any]) -> Path:
    encoded = [line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines]
    path.write_text("\n".join(encoded) + "\n")
    return path


def test_every_bad_line_is_reported(tmp_path: Path) -> None:
    lines: list[Any] = [
        openai_line(1),
        "{not json",
        {**openai_line(1)},
        {**openai_line(3), "method": "GET"},
        {**openai_line(4), "url": "/v1/audio/speech"},
        {"custom_id": "req-5", "method": "POST", "url": "/v1/chat/completions", "body": {}},
        openai_line(6, model="gpt-4o"),
        openai_line(7, stream=True),
        {"custom_id": "req-8", "params": {"model": "claude-haiku-4-5"}},
        openai_line(9),
    ]
    path = write_lines(tmp_path / "input.jsonl", lines)

    plan = plan_job(path, InputOptions())

    reported = {issue.line: str(issue) for issue in plan.issues}
    assert sorted(reported) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "invalid JSON" in reported[2]
    assert "custom_id 'req-1' repeats the one on line 1" in reported[3]
    assert "method is 'GET'; the Batch API takes POST only" in reported[4]
    assert "url '/v1/audio/speech' is not one the Batch API accepts" in reported[5]
    assert "the request has no model" in reported[6]
    assert "body.messages is missing" in reported[6]
    assert "model 'gpt-4o' differs from the file's first request ('gpt-4o-mini')" in reported[7]
    assert "stream is set" in reported[8]
    assert "use one format per file" in reported[9]
    assert [entry.custom_id for entry in plan.requests] == ["req-1", "req-9"]


def test_issue_text_starts_with_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "input.jsonl", [openai_line(1), {**openai_line(2), "method": "PUT"}]
    )

    plan = plan_job(path, InputOptions())

    assert [str(issue) for issue in plan.issues] == [
        "line 2: method is 'PUT'; the Batch API takes POST only"
    ]


def test_anthropic_custom_id_rule(tmp_path: Path) -> None:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "hi"}],
    }
    lines = [
        {"custom_id": "ok_id-1", "params": params},
        {"custom_id": "has space", "params": params},
        {"custom_id": "x" * 65, "params": params},
        {"custom_id": "no-max", "params": {**params, "max_tokens": 0}},
        {"custom_id": "no-messages", "params": {**params, "messages": []}},
    ]
    path = write_lines(tmp_path / "input.jsonl", lines)

    plan = plan_job(path, InputOptions())

    assert plan.provider == "anthropic"
    reported = {issue.line: str(issue) for issue in plan.issues}
    assert sorted(reported) == [2, 3, 4, 5]
    assert "custom_id 'has space' is invalid for Anthropic" in reported[2]
    assert "invalid for Anthropic" in reported[3]
    assert "params.max_tokens is 0" in reported[4]
    assert "params.messages must be a non-empty list" in reported[5]


def test_mixed_models_split_when_asked(tmp_path: Path) -> None:
    lines = [openai_line(1), openai_line(2, model="gpt-4o"), openai_line(3)]
    path = write_lines(tmp_path / "input.jsonl", lines)

    plan = plan_job(path, InputOptions(split_by_model=True), folder=tmp_path)

    assert plan.issues == []
    assert [(part.model, part.requests) for part in plan.parts] == [
        ("gpt-4o-mini", 2),
        ("gpt-4o", 1),
    ]
    first = (tmp_path / "part-0001.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["custom_id"] for line in first] == ["req-1", "req-3"]


def test_split_at_request_limit(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "input.jsonl", [openai_line(index) for index in range(10)])

    plan = plan_job(path, InputOptions(), folder=tmp_path, limits=BatchLimits(4, 10**9))

    assert [part.requests for part in plan.parts] == [4, 4, 2]
    assert [entry.part for entry in plan.requests] == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]
    for entry in plan.requests:
        raw = (tmp_path / f"part-{entry.part:04d}.jsonl").read_bytes()
        line = raw[entry.offset : entry.offset + entry.length]
        assert orjson.loads(line)["custom_id"] == entry.custom_id


def test_split_at_byte_limit(tmp_path: Path) -> None:
    lines = [openai_line(index) for index in range(6)]
    path = write_lines(tmp_path / "input.jsonl", lines)
    line_bytes = len(orjson.dumps(lines[0]))

    # Room for two lines (each with its line break) and not three.
    limit = BatchLimits(1000, 2 * (line_bytes + 1) + 1)
    plan = plan_job(path, InputOptions(), folder=tmp_path, limits=limit)

    assert [part.requests for part in plan.parts] == [2, 2, 2]
    for part in plan.parts:
        assert part.path is not None
        assert part.path.stat().st_size <= limit.max_bytes


def test_anthropic_byte_limit_counts_wrapper(tmp_path: Path) -> None:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "hi"}],
    }
    lines = [{"custom_id": f"r{index}", "params": params} for index in range(4)]
    path = write_lines(tmp_path / "input.jsonl", lines)
    size = len(orjson.dumps(lines[0]))
    # {"requests":[a,b]} is 15 bytes of wrapper, two lines and one comma.
    limit = BatchLimits(1000, 15 + 2 * size + 1)

    plan = plan_job(path, InputOptions(), limits=limit)

    assert [part.requests for part in plan.parts] == [2, 2]


def test_oversized_line_is_an_issue(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "input.jsonl", [openai_line(1)])

    plan = plan_job(path, InputOptions(), limits=BatchLimits(10, 50))

    assert len(plan.issues) == 1
    assert "more than one batch can hold" in str(plan.issues[0])


def test_chat_list_converts_to_openai(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "input.jsonl", [chat_body(1), {**chat_body(2), "custom_id": "mine"}]
    )

    plan = plan_job(path, InputOptions(), folder=tmp_path)

    assert plan.input_format == "chat"
    assert plan.provider == "openai"
    written = [
        orjson.loads(line) for line in (tmp_path / "part-0001.jsonl").read_bytes().splitlines()
    ]
    assert written[0] == {
        "custom_id": "request-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": chat_body(1),
    }
    assert written[1]["custom_id"] == "mine"
    assert "custom_id" not in written[1]["body"]


def test_chat_converts_to_anthropic(tmp_path: Path) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        ],
        "max_completion_tokens": 20,
        "temperature": 0.5,
        "stop": "END",
        "user": "u-1",
    }
    path = write_lines(tmp_path / "input.jsonl", [openai_line(1) | {"body": body}])

    options = InputOptions(provider="anthropic", model="claude-haiku-4-5")
    plan = plan_job(path, options, folder=tmp_path)

    assert plan.issues == []
    line = orjson.loads((tmp_path / "part-0001.jsonl").read_bytes())
    assert line == {
        "custom_id": "req-1",
        "params": {
            "model": "claude-haiku-4-5",
            "max_tokens": 20,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "system": "Be brief.",
            "temperature": 0.5,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
        },
    }


def test_anthropic_converts_to_openai(tmp_path: Path) -> None:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 12,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Hi"}],
        "stop_sequences": ["END"],
    }
    path = write_lines(tmp_path / "input.jsonl", [{"custom_id": "a1", "params": params}])

    plan = plan_job(path, InputOptions(provider="openai", model="gpt-4o-mini"), folder=tmp_path)

    assert plan.issues == []
    line = orjson.loads((tmp_path / "part-0001.jsonl").read_bytes())
    assert line["url"] == "/v1/chat/completions"
    assert line["body"] == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "max_completion_tokens": 12,
        "stop": ["END"],
    }


def test_conversion_problems_are_reported(tmp_path: Path) -> None:
    no_limit = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    tools = {**chat_body(2), "tools": [{"type": "function"}]}
    hot = chat_body(3, temperature=1.5)
    path = write_lines(tmp_path / "input.jsonl", [no_limit, tools, hot])

    plan = plan_job(path, InputOptions(provider="anthropic"))

    reported = {issue.line: str(issue) for issue in plan.issues}
    assert "max_tokens is missing and Anthropic requires it" in reported[1]
    assert "field 'tools' has no Anthropic Messages equivalent" in reported[2]
    assert "temperature 1.5 is above Anthropic's maximum of 1" in reported[3]


def test_max_tokens_default_for_conversion(tmp_path: Path) -> None:
    no_limit = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hi"}]}
    path = write_lines(tmp_path / "input.jsonl", [no_limit])

    plan = plan_job(path, InputOptions(provider="anthropic", max_tokens=64), folder=tmp_path)

    assert plan.issues == []
    assert orjson.loads((tmp_path / "part-0001.jsonl").read_bytes())["params"]["max_tokens"] == 64


def test_json_document_of_requests(tmp_path: Path) -> None:
    params = {
        "model": "claude-haiku-4-5",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "hi"}],
    }
    document = {
        "requests": [{"custom_id": "a", "params": params}, {"custom_id": "a", "params": params}]
    }
    path = tmp_path / "batch.json"
    path.write_bytes(orjson.dumps(document))

    plan = plan_job(path, InputOptions())

    assert plan.provider == "anthropic"
    assert [str(issue) for issue in plan.issues] == [
        "line 2: custom_id 'a' repeats the one on line 1"
    ]


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="does not exist"):
        plan_job(tmp_path / "absent.jsonl", InputOptions())


def test_empty_file_is_an_issue(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")

    plan = plan_job(path, InputOptions())

    assert len(plan.issues) == 1
    assert "has no requests" in str(plan.issues[0])


def test_estimate_at_batch_and_sync_rates(tmp_path: Path) -> None:
    lines = [openai_line(index) for index in range(3)]
    lines.append(
        openai_line(3)
        | {"body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "no limit"}]}}
    )
    path = write_lines(tmp_path / "input.jsonl", lines)
    engine = CostEngine()

    estimator = Estimator(engine, "openai", average_output_tokens=None)
    plan = plan_job(path, InputOptions(), estimator=estimator)

    assert plan.estimate is not None
    model = plan.estimate.models["gpt-4o-mini"]
    inputs = [count_chat_messages(line["body"]["messages"], "gpt-4o-mini") for line in lines]
    assert model.requests == 4
    assert model.input_tokens == sum(inputs)
    assert model.output_tokens == 3 * 8
    assert model.output_unknown == 1
    batch = sum(
        (
            engine.price(
                "openai", "gpt-4o-mini", Usage(input_tokens=tokens, output_tokens=out), batch=True
            ).cost_usd
            or Decimal(0)
            for tokens, out in zip(inputs, [8, 8, 8, 0], strict=True)
        ),
        Decimal(0),
    )
    standard = sum(
        (
            engine.price(
                "openai", "gpt-4o-mini", Usage(input_tokens=tokens, output_tokens=out)
            ).cost_usd
            or Decimal(0)
            for tokens, out in zip(inputs, [8, 8, 8, 0], strict=True)
        ),
        Decimal(0),
    )
    assert model.batch_cost_usd == batch
    assert model.standard_cost_usd == standard
    assert model.batch_cost_usd * 2 == model.standard_cost_usd


def test_estimate_uses_stated_average(tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "no limit"}]}
    path = write_lines(tmp_path / "input.jsonl", [openai_line(1) | {"body": body}])

    estimator = Estimator(CostEngine(), "openai", average_output_tokens=250)
    plan = plan_job(path, InputOptions(), estimator=estimator)

    assert plan.estimate is not None
    assert plan.estimate.models["gpt-4o-mini"].output_tokens == 250
    assert plan.estimate.models["gpt-4o-mini"].output_unknown == 0


def test_estimate_of_unpriced_model(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "input.jsonl", [openai_line(1, model="gpt-imaginary")])

    estimator = Estimator(CostEngine(), "openai", average_output_tokens=None)
    plan = plan_job(path, InputOptions(), estimator=estimator)

    assert plan.estimate is not None
    model = plan.estimate.models["gpt-imaginary"]
    assert model.batch_cost_usd is None
    assert model.standard_cost_usd is None
    assert model.unpriced is not None
    assert "gpt-imaginary" in model.unpriced
