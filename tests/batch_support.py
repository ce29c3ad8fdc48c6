"""Input files, sandboxes and managers for the batch tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from thrifty.batch.manager import BatchManager
from thrifty.config import ProviderConfig


class ManualClock:
    """A clock the test moves by hand, so sandbox batches step through their states on cue."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def openai_line(
    index: int, *, model: str = "gpt-4o-mini", content: str | None = None, **body: Any
) -> dict[str, Any]:
    return {
        "custom_id": f"req-{index}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "messages": [{"role": "user", "content": content or f"q{index}"}],
            "max_tokens": 2,
            **body,
        },
    }


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    with path.open("wb") as handle:
        for line in lines:
            handle.write(orjson.dumps(line) + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def sandbox_provider(url: str, kind: str = "openai") -> ProviderConfig:
    """A provider at a sandbox, keyed from the variable the tests set."""
    assert kind in ("openai", "anthropic")
    return ProviderConfig(kind, kind, url, "THRIFTY_TEST_BATCH_KEY")  # type: ignore[arg-type]


def manager_at(db_url: str, root: Path) -> BatchManager:
    return BatchManager(db_url, root=root)
