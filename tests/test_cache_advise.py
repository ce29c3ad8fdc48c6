"""`thrifty cache advise`: repeated prefixes that are not read from the providers' caches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from thrifty.cache.advise import Finding, PromptSample, advise, samples_from_file
from thrifty.cache.prompt_layout import fingerprint
from thrifty.errors import CacheError
from thrifty.pricing.engine import CostEngine

START = datetime(2025, 5, 1, tzinfo=UTC)
MANUAL = "\n".join(
    f"Step {n}: check the cable, then the light, then the switch." for n in range(200)
)
TOOLS = [
    {"type": "function", "function": {"name": f"tool_{n}", "parameters": {"type": "object"}}}
    for n in range(4)
]


def sample(
    number: int,
    body: dict[str, Any],
    *,
    endpoint: str = "chat.completions",
    cache_read: int | None = None,
) -> PromptSample:
    provider = "anthropic" if endpoint == "messages" else "openai"
    return PromptSample(
        started_at=START + timedelta(seconds=number),
        provider=provider,
        endpoint=endpoint,
        model=body["model"],
        feature="support",
        fingerprint=fingerprint(endpoint, body),
        cache_read_tokens=cache_read,
    )


def chat(system: str, question: str, tools: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
    }
    if tools is not None:
        body["tools"] = tools
    return body


def kinds(findings: list[Finding]) -> list[str]:
    return [finding.kind for finding in findings]


def test_timestamp_at_top_is_changing_early() -> None:
    samples = [
        sample(n, chat(f"Now: 2025-05-01T10:{n:02d}:00Z\n{MANUAL}", f"Question {n}?"))
        for n in range(5)
    ]
    findings = advise(samples, CostEngine())
    early = [finding for finding in findings if finding.kind == "changing_early"]
    assert len(early) == 1
    assert early[0].requests == 5
    assert early[0].tokens > 4 * 1500
    assert early[0].saving_usd is not None
    assert early[0].saving_usd > 0
    assert "timestamp" in early[0].detail


def test_reordered_tools_are_found() -> None:
    samples = [
        sample(n, chat(MANUAL, f"Q{n}", TOOLS if n % 2 else list(reversed(TOOLS))))
        for n in range(6)
    ]
    findings = advise(samples, CostEngine())
    assert "reordered" in kinds(findings)
    reordered = next(f for f in findings if f.kind == "reordered")
    assert reordered.requests == 6
    assert "2 different orders" in reordered.detail


def test_short_repeated_prefix_is_below_minimum() -> None:
    samples = [
        sample(n, chat("You are a helpful assistant for the router manual.", f"Q{n}"))
        for n in range(4)
    ]
    findings = advise(samples, CostEngine())
    assert kinds(findings) == ["below_minimum"]
    assert findings[0].requests == 3
    assert "1,024-token minimum" in findings[0].detail


def test_anthropic_prefix_without_breakpoint() -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "system": MANUAL}
    samples = [
        sample(n, {**body, "messages": [{"role": "user", "content": f"Q{n}"}]}, endpoint="messages")
        for n in range(3)
    ]
    findings = advise(samples, CostEngine())
    assert kinds(findings) == ["no_breakpoint"]
    assert findings[0].requests == 2
    assert findings[0].saving_usd is not None
    assert findings[0].saving_usd > 0


def test_openai_repeats_with_few_cache_reads() -> None:
    samples = [sample(n, chat(MANUAL, f"Q{n}"), cache_read=0) for n in range(4)]
    cached = [sample(n, chat(MANUAL + "!", f"Q{n}"), cache_read=3000) for n in range(4)]
    findings = advise(samples + cached, CostEngine())
    uncached = [f for f in findings if f.kind == "uncached_repeats"]
    assert len(uncached) == 1
    assert uncached[0].requests == 3
    assert "prompt_cache_key" in uncached[0].detail


def test_samples_from_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [
        chat(MANUAL, "Q1"),
        {
            "endpoint": "messages",
            "feature": "docs",
            "timestamp": "2025-05-01T10:00:00",
            "body": {"model": "claude-sonnet-4-5", "messages": []},
        },
        {"model": "gpt-4o-mini", "input": "Hello"},
    ]
    path.write_text("\n".join(orjson.dumps(line).decode() for line in lines) + "\n\n")
    samples = list(samples_from_file(path))
    assert [s.endpoint for s in samples] == ["chat.completions", "messages", "responses"]
    assert samples[1].feature == "docs"
    assert samples[1].provider == "anthropic"
    assert samples[1].started_at == datetime(2025, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1]", "is a JSON list; expected an object"),
        ('{"messages": []}', "has no request body with a 'model'"),
        ('{"endpoint": "images", "body": {"model": "m"}}', "has endpoint 'images'"),
    ],
)
def test_bad_request_lines_are_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CacheError) as raised:
        list(samples_from_file(path))
    assert f"{path}:1" in str(raised.value)
    assert message in str(raised.value)
