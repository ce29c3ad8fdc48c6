"""thrifty.track: the official SDKs, wrapped, against the sandbox and a mock transport."""

from __future__ import annotations

import gc
import gzip
import json
import multiprocessing
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

import thrifty
from tests.ledger_support import make_record
from thrifty.errors import ConfigError
from thrifty.integrations.track import Tracker
from thrifty.ledger import Spool, open_ledger
from thrifty.ledger.exports import iter_records
from thrifty.ledger.record import RequestRecord
from thrifty.tokens import count_chat_messages

MILLION = Decimal(1_000_000)
# gpt-4o-mini and claude-sonnet-4-5 list prices per million tokens (genai-prices data).
MINI_INPUT = Decimal("0.15")
MINI_OUTPUT = Decimal("0.6")
SONNET_INPUT = Decimal(3)
SONNET_OUTPUT = Decimal(15)

MESSAGES = [{"role": "user", "content": "Tell me about tide pools."}]


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    tracker = Tracker(f"sqlite:///{tmp_path / 'ledger.db'}", spool_root=tmp_path / "spool")
    yield tracker
    tracker.close()


def recorded(tracker: Tracker) -> list[RequestRecord]:
    """Every record the tracker wrote, oldest first."""
    tracker.flush()
    ledger = open_ledger(tracker.db_url)
    try:
        return list(iter_records(ledger))
    finally:
        ledger.close()


def openai_client(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)


def test_chat_completion_recorded_with_cost(sandbox_url: str, tracker: Tracker) -> None:
    plain = openai_client(sandbox_url)
    tracked = thrifty.track(plain, feature="tides", user="u-1", tracker=tracker)

    reply = tracked.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=12)
    untracked = plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=12)
    [record] = recorded(tracker)

    prompt_tokens = count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert type(reply) is type(untracked)
    assert reply.choices[0].message.content == untracked.choices[0].message.content
    assert reply.usage == untracked.usage
    assert record.provider == "openai"
    assert record.endpoint == "chat.completions"
    assert record.model_requested == "gpt-4o-mini"
    assert record.model_served == reply.model
    assert record.input_tokens == prompt_tokens
    assert record.output_tokens == 12
    assert record.cost_usd == (prompt_tokens * MINI_INPUT + 12 * MINI_OUTPUT) / MILLION
    assert record.http_status == 200
    assert record.streamed is False
    assert record.feature == "tides"
    assert record.user == "u-1"
    assert record.details["track"]["client"] == "openai.OpenAI"
    assert record.details["track"]["provider_request_id"].startswith("req_")


def test_chat_stream_unchanged_and_metered(sandbox_url: str, tracker: Tracker) -> None:
    plain = openai_client(sandbox_url)
    tracked = thrifty.track(plain, tracker=tracker)

    chunks = list(
        tracked.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True
        )
    )
    untracked = list(
        plain.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, stream=True
        )
    )
    [record] = recorded(tracker)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    plain_text = "".join(c.choices[0].delta.content or "" for c in untracked if c.choices)
    assert len(chunks) == len(untracked)
    assert text == plain_text
    assert all(chunk.usage is None for chunk in chunks)
    assert record.streamed is True
    assert record.output_tokens == 20
    assert record.input_tokens == count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert record.usage_estimated is False
    assert record.error_type is None
    assert record.first_token_at is not None


def test_stream_keeps_usage_chunk_caller_asked(sandbox_url: str, tracker: Tracker) -> None:
    tracked = thrifty.track(openai_client(sandbox_url), tracker=tracker)

    chunks = list(
        tracked.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    [record] = recorded(tracker)

    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    assert record.output_tokens == 8
    assert record.usage_estimated is False


def test_stream_closed_early_is_estimated(sandbox_url: str, tracker: Tracker) -> None:
    tracked = thrifty.track(openai_client(sandbox_url), tracker=tracker)

    stream = tracked.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=200, stream=True
    )
    first = next(iter(stream))
    stream.close()
    [record] = recorded(tracker)

    assert first.choices
    assert record.usage_estimated is True
    assert record.error_type == "client_disconnected"
    assert record.input_tokens == count_chat_messages(MESSAGES, "gpt-4o-mini")
    assert record.output_tokens < 200


async def test_async_responses_stream(sandbox_url: str, tracker: Tracker) -> None:
    plain = openai.AsyncOpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)
    tracked = thrifty.track(plain, project="atlas", tracker=tracker)

    stream = await tracked.responses.create(
        model="gpt-4o-mini", input="Name three tide pool animals.", stream=True
    )
    events = [event async for event in stream]
    await tracker.aflush()
    [record] = recorded(tracker)

    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.usage is not None
    assert record.endpoint == "responses"
    assert record.streamed is True
    assert record.input_tokens == completed.response.usage.input_tokens
    assert record.output_tokens == completed.response.usage.output_tokens
    assert record.project == "atlas"
    assert record.details["track"]["client"] == "openai.AsyncOpenAI"


async def test_async_embeddings(sandbox_url: str, tracker: Tracker) -> None:
    plain = openai.AsyncOpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)
    tracked = thrifty.track(plain, tracker=tracker)

    result = await tracked.embeddings.create(model="text-embedding-3-small", input=["rock", "pool"])
    [record] = recorded(tracker)

    assert record.endpoint == "embeddings"
    assert record.input_tokens == result.usage.prompt_tokens
    assert record.output_tokens == 0
    assert record.cost_usd == result.usage.prompt_tokens * Decimal("0.02") / MILLION


def test_anthropic_message_and_stream(sandbox_url: str, tracker: Tracker) -> None:
    plain = anthropic.Anthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)
    tracked = thrifty.track(plain, team="marine", tracker=tracker)

    message = tracked.messages.create(model="claude-sonnet-4-5", max_tokens=9, messages=MESSAGES)
    with tracked.messages.stream(
        model="claude-sonnet-4-5", max_tokens=9, messages=MESSAGES
    ) as stream:
        final = stream.get_final_message()
    buffered, streamed = recorded(tracker)

    expected_cost = (message.usage.input_tokens * SONNET_INPUT + 9 * SONNET_OUTPUT) / MILLION
    assert buffered.endpoint == "messages"
    assert buffered.input_tokens == message.usage.input_tokens
    assert buffered.output_tokens == 9
    assert buffered.cost_usd == expected_cost
    assert buffered.team == "marine"
    assert streamed.streamed is True
    assert streamed.input_tokens == final.usage.input_tokens
    assert streamed.output_tokens == final.usage.output_tokens
    assert streamed.cost_usd == expected_cost
    assert streamed.usage_estimated is False


async def test_async_anthropic_stream(sandbox_url: str, tracker: Tracker) -> None:
    plain = anthropic.AsyncAnthropic(base_url=sandbox_url, api_key="sk-ant-test", max_retries=0)
    tracked = thrifty.track(plain, tracker=tracker)

    stream = await tracked.messages.create(
        model="claude-sonnet-4-5", max_tokens=6, messages=MESSAGES, stream=True
    )
    kinds = [event.type async for event in stream]
    [record] = recorded(tracker)

    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert record.output_tokens == 6
    assert record.streamed is True
    assert record.details["track"]["client"] == "anthropic.AsyncAnthropic"


def test_unmetered_call_leaves_no_record(sandbox_url: str, tracker: Tracker) -> None:
    tracked = thrifty.track(openai_client(sandbox_url), tracker=tracker)

    models = tracked.models.list()

    assert len(models.data) > 0
    assert recorded(tracker) == []


class Upstream:
    """A mock transport handler: stores each request and returns ``reply``."""

    def __init__(self, reply: httpx2.Response) -> None:
        self.reply = reply
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.reply

    def client(self) -> openai.OpenAI:
        http_client = httpx2.Client(transport=httpx2.MockTransport(self))
        return openai.OpenAI(
            base_url="http://127.0.0.1:9/v1",
            api_key="sk-test",
            max_retries=0,
            http_client=http_client,
        )


def completion(prompt_tokens: int = 30, completion_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Anemones."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def test_headers_attribution_override_defaults(tracker: Tracker) -> None:
    upstream = Upstream(httpx2.Response(200, json=completion()))
    tracked = thrifty.track(
        upstream.client(), feature="default-feature", tags={"env": "dev"}, tracker=tracker
    )

    tracked.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"X-Thrifty-Feature": "summaries", "X-Thrifty-Tags": "env=prod,tier=gold"},
        user="customer-9",
    )
    [record] = recorded(tracker)
    [sent] = upstream.requests

    assert record.feature == "summaries"
    assert record.user == "customer-9"
    assert record.tags == {"env": "prod", "tier": "gold"}
    assert "x-thrifty-feature" not in sent.headers
    assert "x-thrifty-tags" not in sent.headers
    assert sent.headers["accept-encoding"] == "identity"
    assert json.loads(sent.content)["messages"] == MESSAGES


def test_gzip_response_decoded_for_metering(tracker: Tracker) -> None:
    body = gzip.compress(json.dumps(completion(50, 5)).encode())
    # A stream, not content: the response reaches the wrapper unread, as from a server.
    reply = httpx2.Response(
        200,
        stream=httpx2.ByteStream(body),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    tracked = thrifty.track(Upstream(reply).client(), tracker=tracker)

    result = tracked.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [record] = recorded(tracker)

    assert result.choices[0].message.content == "Anemones."
    assert record.input_tokens == 50
    assert record.output_tokens == 5
    assert record.cost_usd == (50 * MINI_INPUT + 5 * MINI_OUTPUT) / MILLION


def test_error_response_raises_and_is_recorded(tracker: Tracker) -> None:
    error = {"error": {"message": "slow down", "type": "rate_limit_error", "code": None}}
    tracked = thrifty.track(Upstream(httpx2.Response(429, json=error)).client(), tracker=tracker)

    with pytest.raises(openai.RateLimitError):
        tracked.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [record] = recorded(tracker)

    assert record.http_status == 429
    assert record.error_type == "rate_limit_error"
    assert record.input_tokens == 0
    assert record.cost_usd == Decimal(0)


def test_connection_failure_is_recorded(tracker: Tracker) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    http_client = httpx2.Client(transport=httpx2.MockTransport(refuse))
    plain = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0, http_client=http_client
    )
    tracked = thrifty.track(plain, tracker=tracker)

    with pytest.raises(openai.APIConnectionError):
        tracked.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    [record] = recorded(tracker)

    assert record.http_status == 0
    assert record.error_type == "upstream_unreachable"


def test_provider_override_prices_other_provider(tracker: Tracker) -> None:
    upstream = Upstream(httpx2.Response(200, json=completion()))
    tracked = thrifty.track(upstream.client(), provider="groq", tracker=tracker)

    tracked.chat.completions.create(model="not-a-groq-model", messages=MESSAGES)
    [record] = recorded(tracker)

    assert record.provider == "groq"
    assert record.unpriced is True
    assert record.cost_usd is None


def test_track_rejects_other_objects(tracker: Tracker) -> None:
    with pytest.raises(ConfigError, match=r"openai\.OpenAI, openai\.AsyncOpenAI"):
        thrifty.track(object(), tracker=tracker)


def test_orphaned_spool_replayed_at_start(tmp_path: Path) -> None:
    spool_root = tmp_path / "spool"
    orphan = Spool(spool_root / "999999999")
    orphan.append(make_record("left-behind"))
    orphan.close()

    tracker = Tracker(f"sqlite:///{tmp_path / 'ledger.db'}", spool_root=spool_root)
    try:
        records = recorded(tracker)
    finally:
        tracker.close()

    assert [record.request_id for record in records] == ["left-behind"]
    assert not (spool_root / "999999999").exists()


def test_dropped_stream_recorded_when_collected(sandbox_url: str, tracker: Tracker) -> None:
    tracked = thrifty.track(openai_client(sandbox_url), tracker=tracker)

    stream = tracked.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=100, stream=True
    )
    next(iter(stream))
    del stream
    gc.collect()
    [record] = recorded(tracker)

    assert record.error_type == "client_disconnected"
    assert record.usage_estimated is True


def test_tracker_writes_from_forked_child(tracker: Tracker) -> None:
    def child() -> None:
        tracker.submit(make_record("from-child"))
        tracker.flush()
        tracker.close()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)

    assert process.exitcode == 0
    assert [record.request_id for record in recorded(tracker)] == ["from-child"]
