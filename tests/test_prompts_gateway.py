"""Prompt optimization in the gateway: usage drops by what `prompts analyze` predicted.

Each request is sent twice with the official SDKs: straight to the sandbox
mounted in the gateway (the original prompt), and through the gateway with
the prompts step on. The difference in the input tokens the sandbox bills
must equal the saving `thrifty prompts analyze` predicts from the same file.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from tests.gateway_support import RunningGateway, running_gateway
from tests.test_prompts_cli import run_main
from tests.test_prompts_workloads import rag_chats, support_chats, to_anthropic
from thrifty.prompts.config import parse_prompts_config

PROMPTS_SECTION: dict[str, Any] = {
    "transforms": ["lossless", "layout"],
    "features": {
        "support": {
            "transforms": ["lossless", "layout", "trim"],
            "trim": {"max_input_tokens": 700, "tool_result_tokens": 20},
        },
        "rag": {
            "transforms": ["lossless", "compress"],
            "compress": {"ratio": 0.5, "min_tokens": 32},
        },
    },
}


def openai_requests() -> list[tuple[str, dict[str, Any]]]:
    """OpenAI chat requests without tool calls: the sandbox bills only message text."""
    rag = [("rag", body) for body in rag_chats(2, turns=3)]
    plain = []
    for body in support_chats(2, turns=3, seed=5):
        messages = [m for m in body["messages"] if m["role"] != "tool" and not m.get("tool_calls")]
        messages.insert(2, dict(messages[1]))  # the first question sent twice
        plain.append(("chat", {"model": body["model"], "messages": messages, "max_tokens": 8}))
    return [*rag, *plain]


def anthropic_requests() -> list[tuple[str, dict[str, Any]]]:
    requests = []
    for body in support_chats(2, turns=5, seed=9):
        converted = to_anthropic(body)
        converted["max_tokens"] = 8
        requests.append(("support", converted))
    return requests


def predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    config = tmp_path / "thrifty.yaml"
    config.write_text(yaml.safe_dump({"prompts": PROMPTS_SECTION}))
    requests = tmp_path / "requests.jsonl"
    lines = [{"feature": f, "body": b} for f, b in [*openai_requests(), *anthropic_requests()]]
    requests.write_text("".join(json.dumps(line) + "\n" for line in lines))
    status, out, err = run_main(
        capsys,
        monkeypatch,
        "prompts",
        "analyze",
        str(requests),
        "--config",
        str(config),
        "--format",
        "json",
    )
    assert status == 0, err
    result = json.loads(out)
    assert isinstance(result, dict)
    return result


def send_openai(gateway: RunningGateway) -> list[tuple[int, int, str]]:
    direct = openai.OpenAI(base_url=f"{gateway.url}/sandbox/v1", api_key="sk-test", max_retries=0)
    proxied = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
    sent = []
    for feature, body in openai_requests():
        original = direct.chat.completions.create(**body)
        raw = proxied.chat.completions.with_raw_response.create(
            **body, extra_headers={"X-Thrifty-Feature": feature}
        )
        optimized = raw.parse()
        assert original.usage is not None
        assert optimized.usage is not None
        sent.append(
            (
                original.usage.prompt_tokens,
                optimized.usage.prompt_tokens,
                raw.headers["x-thrifty-request-id"],
            )
        )
    return sent


def send_anthropic(gateway: RunningGateway) -> list[tuple[int, int, str]]:
    direct = anthropic.Anthropic(
        base_url=f"{gateway.url}/sandbox", api_key="sk-ant-test", max_retries=0
    )
    proxied = anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test", max_retries=0)
    sent = []
    for feature, body in anthropic_requests():
        original = direct.messages.create(**body)
        raw = proxied.messages.with_raw_response.create(
            **body, extra_headers={"X-Thrifty-Feature": feature}
        )
        optimized = raw.parse()
        sent.append(
            (
                original.usage.input_tokens,
                optimized.usage.input_tokens,
                raw.headers["x-thrifty-request-id"],
            )
        )
    return sent


def test_usage_drops_by_predicted_saving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prediction = predict(tmp_path, capsys, monkeypatch)
    sections = {"prompts": parse_prompts_config(PROMPTS_SECTION)}
    with running_gateway(tmp_path, sections=sections) as gateway:
        sent = send_openai(gateway) + send_anthropic(gateway)
        records = [gateway.record(request_id) for _, _, request_id in sent]

    before = sum(original for original, _, _ in sent)
    after = sum(optimized for _, optimized, _ in sent)
    assert prediction["requests"] == len(sent)
    assert prediction["input_tokens"] == before
    assert prediction["input_tokens_after"] == after
    assert prediction["saved_tokens"] == before - after
    assert before - after > before // 10

    for (original, optimized, _), record in zip(sent, records, strict=True):
        annotation = record.details["prompts"]
        assert record.input_tokens == optimized
        assert annotation["input_tokens_before"] == original
        assert annotation["input_tokens_after"] == optimized
        transforms = annotation["transforms"]
        assert sum(t["saved_tokens"] for t in transforms.values()) == original - optimized
        assert Decimal(annotation["saved_usd"]) >= 0

    features = {row["feature"]: row for row in prediction["features"]}
    assert set(features) == {"chat", "rag", "support"}
    assert all(row["saved_tokens"] > 0 for row in features.values())


def test_gateway_records_saving_at_input_price(tmp_path: Path) -> None:
    sections = {"prompts": parse_prompts_config({"transforms": ["whitespace"]})}
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be    brief.\n\n\n\n" + "Answer   now.  " * 40},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 4,
    }
    with running_gateway(tmp_path, sections=sections) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(**body)
        record = gateway.record(raw.headers["x-thrifty-request-id"])
        api_record = gateway.api_record(record.request_id)

    annotation = record.details["prompts"]
    saved = annotation["input_tokens_before"] - annotation["input_tokens_after"]
    assert saved > 0
    assert annotation["settings"] == "default"
    # gpt-4o-mini costs $0.15 per million input tokens (genai-prices data).
    assert Decimal(annotation["saved_usd"]) == Decimal("0.15") * saved / Decimal(1_000_000)
    assert api_record["details"]["prompts"] == annotation


def test_gateway_without_section_forwards_unchanged(tmp_path: Path) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi   there"}]}
    with running_gateway(tmp_path) as gateway:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(**body, max_tokens=4)
        record = gateway.record(raw.headers["x-thrifty-request-id"])
    assert "prompts" not in record.details
