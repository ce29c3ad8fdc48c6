"""The response cache in the gateway: official SDKs as clients, the sandbox upstream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.cache_support import require_local_model
from tests.gateway_support import RunningGateway
from tests.servers import free_port, serve_in_thread
from thrifty.cache.config import parse_cache_config
from thrifty.cache.step import ResponseCacheStep
from thrifty.config import load_config
from thrifty.gateway.app import create_app, gateway_of
from thrifty.gateway.server import with_sandbox
from thrifty.ledger.record import RequestRecord


@dataclass
class CacheGateway:
    gateway: RunningGateway
    step: ResponseCacheStep

    @property
    def url(self) -> str:
        return self.gateway.url

    def record(self, request_id: str) -> RequestRecord:
        return self.gateway.record(request_id)

    def flush(self) -> None:
        """Wait until the cache has stored what the finished requests handed it."""
        self.step.cache.flush()


@contextlib.contextmanager
def cache_gateway(tmp_path: Path, section: dict[str, Any]) -> Iterator[CacheGateway]:
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = with_sandbox(load_config(None, db_url=db_url), "127.0.0.1", port)
    config = replace(
        config, spool_dir=tmp_path / "spool", sections={"cache": parse_cache_config(section)}
    )
    app = create_app(config)
    with serve_in_thread(app, port) as url:
        steps = [s for s in gateway_of(app).steps if isinstance(s, ResponseCacheStep)]
        assert len(steps) == 1
        yield CacheGateway(RunningGateway(url=url, db_url=db_url, config=config), steps[0])
        steps[0].cache.close()


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheGateway]:
    with cache_gateway(tmp_path_factory.mktemp("exact"), {}) as running:
        yield running


def openai_client(running: CacheGateway, key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0)


def chat(question: str) -> list[Any]:
    return [{"role": "user", "content": question}]


def test_chat_hit_has_zero_cost_and_saving(exact: CacheGateway) -> None:
    client = openai_client(exact)
    messages = chat("Name three rivers in Europe.")
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=20
    )
    first_id = first.headers["x-thrifty-request-id"]
    exact.flush()
    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=20
    )

    original = exact.record(first_id)
    hit = exact.record(second.headers["x-thrifty-request-id"])
    assert original.cache_status == "miss"
    assert original.details["cache"]["stored"] is True
    assert original.cost_usd is not None
    assert original.cost_usd > 0
    assert second.headers["x-thrifty-cache"] == "hit"
    assert second.headers["x-thrifty-cost-usd"] == "0"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert hit.cache_status == "hit"
    assert hit.cost_usd == Decimal(0)
    assert hit.unpriced is False
    assert hit.input_tokens == 0
    assert hit.output_tokens == 0
    assert hit.details["cache"]["original_request_id"] == first_id
    assert Decimal(hit.details["cache"]["saved_usd"]) == original.cost_usd
    assert hit.details["cache"]["saved_output_tokens"] == 20


def test_streamed_request_gets_cached_answer_as_stream(exact: CacheGateway) -> None:
    client = openai_client(exact)
    messages = chat("Describe a lighthouse in one sentence.")
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=15
    )
    exact.flush()
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=messages,
        temperature=0,
        max_tokens=15,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        request_id = response.headers["x-thrifty-request-id"]
        status = response.headers["x-thrifty-cache"]
        chunks = list(response.parse())

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert status == "hit"
    assert text == first.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 15
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    record = exact.record(request_id)
    assert record.streamed is True
    assert record.cache_status == "hit"
    assert record.cost_usd == Decimal(0)


def test_streamed_miss_is_stored_for_the_next_request(exact: CacheGateway) -> None:
    client = openai_client(exact)
    messages = chat("Name one use of a compass.")
    first = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=12, stream=True
    )
    streamed_text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    exact.flush()
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=12
    )
    assert raw.headers["x-thrifty-cache"] == "hit"
    assert raw.parse().choices[0].message.content == streamed_text


def test_anthropic_hit_buffered_and_streamed(exact: CacheGateway) -> None:
    claude = anthropic.Anthropic(base_url=exact.url, api_key="sk-ant-test", max_retries=0)
    request: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 18,
        # This SDK version has no temperature argument; the API still takes it.
        "extra_body": {"temperature": 0},
        "system": "You answer briefly.",
        "messages": chat("What is a fjord?"),
    }
    first = claude.messages.with_raw_response.create(**request)
    exact.flush()
    second = claude.messages.with_raw_response.create(**request)
    with claude.messages.stream(**request) as stream:
        streamed_text = stream.get_final_text()
        final = stream.get_final_message()

    first_text = first.parse().content[0].text  # type: ignore[union-attr]
    assert second.headers["x-thrifty-cache"] == "hit"
    assert second.parse().content[0].text == first_text  # type: ignore[union-attr]
    assert streamed_text == first_text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 18
    hit = exact.record(second.headers["x-thrifty-request-id"])
    assert hit.cost_usd == Decimal(0)
    assert hit.provider == "anthropic"
    assert hit.details["cache"]["original_request_id"] == first.headers["x-thrifty-request-id"]


def test_responses_api_hit_streamed(exact: CacheGateway) -> None:
    client = openai_client(exact)
    first = client.responses.create(
        model="gpt-4o-mini", input="List two kinds of clouds.", temperature=0, max_output_tokens=16
    )
    exact.flush()
    with client.responses.stream(
        model="gpt-4o-mini", input="List two kinds of clouds.", temperature=0, max_output_tokens=16
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == first.output_text
    assert final.output_text == first.output_text
    assert final.id == first.id


def test_sampled_request_is_not_cached(exact: CacheGateway) -> None:
    client = openai_client(exact)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=chat("Tell me a surprising fact."), max_tokens=5
    )
    record = exact.record(raw.headers["x-thrifty-request-id"])
    assert record.cache_status is None
    assert "cache" not in record.details


def test_no_cache_and_no_store_headers(exact: CacheGateway) -> None:
    client = openai_client(exact)
    messages = chat("What colour is saffron?")
    stored = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
    )
    exact.flush()
    bypass = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,
        temperature=0,
        max_tokens=5,
        extra_headers={"Cache-Control": "no-cache"},
    )
    unstored_messages = chat("What colour is turmeric?")
    unstored = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=unstored_messages,
        temperature=0,
        max_tokens=5,
        extra_headers={"X-Thrifty-Cache-Control": "no-store"},
    )
    exact.flush()
    again = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=unstored_messages, temperature=0, max_tokens=5
    )

    assert exact.record(stored.headers["x-thrifty-request-id"]).cache_status == "miss"
    assert bypass.headers["x-thrifty-cache"] == "miss"
    assert exact.record(bypass.headers["x-thrifty-request-id"]).cache_status == "miss"
    unstored_record = exact.record(unstored.headers["x-thrifty-request-id"])
    assert unstored_record.details["cache"]["stored"] is False
    assert exact.record(again.headers["x-thrifty-request-id"]).cache_status == "miss"


def test_other_key_never_sees_entries(exact: CacheGateway) -> None:
    messages = chat("Which planet has the most moons?")
    openai_client(exact, "sk-tenant-a").chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
    )
    exact.flush()
    other = openai_client(exact, "sk-tenant-b").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
    )
    same = openai_client(exact, "sk-tenant-a").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
    )
    assert other.headers["x-thrifty-cache"] == "miss"
    assert same.headers["x-thrifty-cache"] == "hit"


def test_invalid_cache_header_is_rejected(exact: CacheGateway) -> None:
    response = httpx.post(
        f"{exact.url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": chat("Hi"), "temperature": 0},
        headers={"X-Thrifty-Cache-TTL": "soon"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "X-Thrifty-Cache-TTL" in response.json()["error"]["message"]


def test_disabled_rule_turns_cache_off_for_feature(tmp_path: Path) -> None:
    section = {"rules": [{"match": {"feature": "drafts"}, "enabled": False}]}
    with cache_gateway(tmp_path, section) as running:
        client = openai_client(running)
        messages = chat("Suggest a title.")
        for _ in range(2):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=messages,
                temperature=0,
                max_tokens=5,
                extra_headers={"X-Thrifty-Feature": "drafts"},
            )
            running.flush()
        record = running.record(raw.headers["x-thrifty-request-id"])
    assert record.cache_status is None


def test_semantic_hit_with_gateway_embedder(tmp_path: Path) -> None:
    pytest.importorskip("numpy", reason="the semantic cache's index needs numpy")
    section = {"mode": "semantic", "semantic": {"embedder": "gateway"}}
    with cache_gateway(tmp_path, section) as running:
        client = openai_client(running)
        headers = {"X-Thrifty-Feature": "faq"}
        first = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=chat("How long is the Danube?"),
            temperature=0,
            max_tokens=8,
            extra_headers=headers,
        )
        running.flush()
        # Only whitespace differs, so the exact keys differ and the embeddings match.
        second = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=chat("How long is  the Danube? "),
            temperature=0,
            max_tokens=8,
            extra_headers=headers,
        )
        hit = running.record(second.headers["x-thrifty-request-id"])
        embedding = running.record(hit.details["cache"]["embedding_request_id"])

    assert second.headers["x-thrifty-cache"] == "semantic-hit"
    assert float(second.headers["x-thrifty-cache-similarity"]) > 0.999
    assert hit.cache_status == "semantic-hit"
    assert hit.cost_usd == Decimal(0)
    assert hit.details["cache"]["original_request_id"] == first.headers["x-thrifty-request-id"]
    assert embedding.endpoint == "embeddings"
    assert embedding.tags == {"thrifty_cache": "embedding"}
    assert embedding.feature == "faq"
    assert embedding.cost_usd is not None
    assert embedding.cost_usd > 0


def test_semantic_hit_with_local_model(tmp_path: Path) -> None:
    require_local_model()
    from thrifty.cache.embedders import load_local_model

    # Loaded once per process: loading it here keeps the gateway's start-up
    # within the test server's start deadline on a busy machine.
    load_local_model()
    section = {"mode": "semantic"}
    with cache_gateway(tmp_path, section) as running:
        client = openai_client(running)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=chat("How can I become physically strong?"),
            temperature=0,
            max_tokens=8,
        )
        running.flush()
        paraphrase = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=chat("How do I become physically strong?"),
            temperature=0,
            max_tokens=8,
        )
        different = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=chat("How can I become mentally strong?"),
            temperature=0,
            max_tokens=8,
        )
    assert paraphrase.headers["x-thrifty-cache"] == "semantic-hit"
    assert different.headers["x-thrifty-cache"] == "miss"


def test_entries_expire_after_ttl(tmp_path: Path) -> None:
    with cache_gateway(tmp_path, {"ttl_s": 1}) as running:
        client = openai_client(running)
        messages = chat("Spell 'cache' backwards.")
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
        )
        running.flush()
        stored_at = datetime.now(UTC)
        running.step.cache.clock = lambda: stored_at + timedelta(seconds=2)
        later = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, temperature=0, max_tokens=5
        )
    assert later.headers["x-thrifty-cache"] == "miss"
