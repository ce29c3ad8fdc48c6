"""The sandbox's OpenAI endpoints, driven by the official openai SDK over loopback."""

from __future__ import annotations

import base64
import math
import struct
import uuid
import warnings
from typing import Any

import httpx
import openai
import pytest

from tests.test_tokens import COOKBOOK_MESSAGES
from thrifty.sandbox.filler import FILLER_PASSAGE
from thrifty.tokens import count_chat_messages

# An independent tokenizer (bpe-openai's Rust implementation), so expected
# counts do not come from the code under test. bpe-openai warns about its own
# use of importlib.resources when imported.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import bpe_openai

    O200K = bpe_openai.get_encoding("o200k_base")
    CL100K = bpe_openai.get_encoding("cl100k_base")


def expected_chat_tokens(messages: list[dict[str, str]], encoding: Any = O200K) -> int:
    """OpenAI's documented chat overhead: 3 tokens per message, 3 to prime the reply."""
    total = 3
    for message in messages:
        total += (
            3 + len(encoding.encode(message["role"])) + len(encoding.encode(message["content"]))
        )
    return total


def unique_messages() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"Describe the sea, request {uuid.uuid4().hex[:8]}."},
    ]


@pytest.fixture
def client(sandbox_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)


@pytest.fixture
def async_client(sandbox_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{sandbox_url}/v1", api_key="sk-test", max_retries=0)


def test_chat_completion_usage_is_exact(client: openai.OpenAI) -> None:
    messages = unique_messages()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=12)  # type: ignore[arg-type]

    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == expected_chat_tokens(messages)
    assert reply.usage.prompt_tokens == count_chat_messages(messages, "gpt-4o-mini")
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_chat_text_is_labelled_filler_of_exact_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o",
        messages=unique_messages(),
        max_tokens=40,  # type: ignore[arg-type]
    )
    text = reply.choices[0].message.content
    assert text is not None
    assert text.startswith("This is sandbox filler text")
    assert len(O200K.encode(text)) == 40
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.role == "assistant"


def test_chat_counts_with_cl100k_for_gpt_4(client: openai.OpenAI) -> None:
    messages = unique_messages()
    reply = client.chat.completions.create(model="gpt-4", messages=messages, max_tokens=30)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == expected_chat_tokens(messages, CL100K)
    text = reply.choices[0].message.content
    assert text is not None
    assert len(CL100K.encode(text)) == 30


def test_chat_default_length_stops_naturally(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=unique_messages())  # type: ignore[arg-type]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 16
    assert reply.choices[0].finish_reason == "stop"


def test_chat_max_completion_tokens_wins(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=unique_messages(),  # type: ignore[arg-type]
        max_completion_tokens=5,
        max_tokens=50,
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5


def test_chat_several_choices_multiply_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=unique_messages(),
        max_tokens=6,
        n=3,  # type: ignore[arg-type]
    )
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 18


def test_name_field_adds_one_token_plus_the_name(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Hello", "name": "alice"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    expected = (
        3
        + 3
        + len(O200K.encode("user"))
        + len(O200K.encode("Hello"))
        + 1
        + len(O200K.encode("alice"))
    )
    assert reply.usage.prompt_tokens == expected


@pytest.mark.parametrize(
    ("model", "limit", "reasoning"),
    [("o3", 21, 10), ("gpt-5-mini", 40, 20), ("o4-mini", 1, 0), ("gpt-4.1", 40, 0)],
)
def test_reasoning_models_report_half_as_reasoning(
    client: openai.OpenAI, model: str, limit: int, reasoning: int
) -> None:
    reply = client.chat.completions.create(
        model=model,
        messages=unique_messages(),
        max_completion_tokens=limit,  # type: ignore[arg-type]
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == limit
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == reasoning
    text = reply.choices[0].message.content
    assert text is not None
    assert len(O200K.encode(text)) == limit - reasoning


@pytest.mark.parametrize(
    ("requested", "served"),
    [
        (None, "default"),
        ("auto", "default"),
        ("default", "default"),
        ("flex", "flex"),
        ("priority", "priority"),
        ("scale", "scale"),
    ],
)
def test_service_tier_is_echoed(client: openai.OpenAI, requested: str | None, served: str) -> None:
    extra: dict[str, Any] = {} if requested is None else {"service_tier": requested}
    reply = client.chat.completions.create(
        model="gpt-5-mini",
        messages=unique_messages(),
        max_completion_tokens=4,
        **extra,  # type: ignore[arg-type]
    )
    assert reply.service_tier == served


async def test_stream_with_usage_ends_with_usage_chunk(async_client: openai.AsyncOpenAI) -> None:
    messages = unique_messages()
    stream = await async_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens == expected_chat_tokens(messages)
    assert usage.completion_tokens == 10
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "length"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(O200K.encode(text)) == 10
    assert text.startswith("This is sandbox filler")


def test_stream_arrives_in_several_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=unique_messages(),
        max_tokens=10,
        stream=True,  # type: ignore[arg-type]
    )
    chunks = list(stream)
    content_chunks = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    # 10 tokens in deltas of 4 tokens: 4, 4 and 2.
    assert len(content_chunks) == 3
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)


def test_stream_without_usage_omits_the_field(sandbox_url: str) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": True,
    }
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}
    )
    events = [line for line in response.text.split("\n\n") if line]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    assert all('"usage"' not in event for event in events)


def test_stream_usage_null_until_last(sandbox_url: str) -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx.post(
        f"{sandbox_url}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}
    )
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all('"usage":null' in event for event in events[:-2])
    assert '"choices":[]' in events[-2]
    assert '"completion_tokens":3' in events[-2]


def test_responses_string_input(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="gpt-4o-mini", input="Tell me a fact.", max_output_tokens=20
    )

    assert reply.object == "response"
    assert reply.status == "completed"
    assert reply.usage is not None
    assert reply.usage.input_tokens == expected_chat_tokens(
        [{"role": "user", "content": "Tell me a fact."}]
    )
    assert reply.usage.output_tokens == 20
    assert reply.usage.total_tokens == reply.usage.input_tokens + 20
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert reply.usage.output_tokens_details.reasoning_tokens == 0
    assert len(O200K.encode(reply.output_text)) == 20
    assert reply.service_tier == "default"


def test_responses_item_list_and_instructions(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="gpt-4.1",
        instructions="Answer in French.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Good morning"}]},
            {"type": "message", "role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "And good night?"},
        ],
        max_output_tokens=16,
    )
    expected = expected_chat_tokens(
        [
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Good morning"},
            {"role": "assistant", "content": "Bonjour"},
            {"role": "user", "content": "And good night?"},
        ]
    )
    assert reply.usage is not None
    assert reply.usage.input_tokens == expected
    assert reply.instructions == "Answer in French."


def test_responses_reasoning_model_has_reasoning_item(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model="o3", input="Think.", max_output_tokens=30, service_tier="flex"
    )
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert reply.usage is not None
    assert reply.usage.output_tokens == 30
    assert reply.usage.output_tokens_details.reasoning_tokens == 15
    assert len(O200K.encode(reply.output_text)) == 15
    assert reply.service_tier == "flex"


async def test_responses_stream_events_in_order(async_client: openai.AsyncOpenAI) -> None:
    stream = await async_client.responses.create(
        model="gpt-4o-mini", input="Tell me a fact.", max_output_tokens=16, stream=True
    )
    events = [event async for event in stream]
    types = [event.type for event in events]

    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 4
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens == 16
    text = "".join(event.delta for event in deltas)  # type: ignore[union-attr]
    assert final.response.output_text == text
    assert len(O200K.encode(text)) == 16


def test_embeddings_default_base64_decodes(client: openai.OpenAI) -> None:
    # The SDK requests base64 when no encoding_format is set, and decodes it.
    reply = client.embeddings.create(model="text-embedding-3-small", input=["first text", "second"])
    assert [item.index for item in reply.data] == [0, 1]
    assert len(reply.data[0].embedding) == 1536
    assert math.isclose(math.fsum(v * v for v in reply.data[0].embedding), 1.0, rel_tol=1e-5)
    assert reply.usage.prompt_tokens == len(CL100K.encode("first text")) + len(
        CL100K.encode("second")
    )
    assert reply.usage.total_tokens == reply.usage.prompt_tokens


def test_embeddings_are_deterministic_per_text(client: openai.OpenAI) -> None:
    first = client.embeddings.create(
        model="text-embedding-3-small", input="same", encoding_format="float"
    )
    second = client.embeddings.create(
        model="text-embedding-3-small", input=["other", "same"], encoding_format="float"
    )
    assert first.data[0].embedding == second.data[1].embedding
    assert first.data[0].embedding != second.data[0].embedding


def test_embeddings_dimensions_shorten_the_vector(client: openai.OpenAI) -> None:
    full = client.embeddings.create(
        model="text-embedding-3-large", input="text", encoding_format="float"
    )
    short = client.embeddings.create(
        model="text-embedding-3-large", input="text", dimensions=256, encoding_format="float"
    )
    assert len(full.data[0].embedding) == 3072
    assert len(short.data[0].embedding) == 256
    assert math.isclose(math.fsum(v * v for v in short.data[0].embedding), 1.0, rel_tol=1e-9)
    # The shortened vector points the same way as the full one's prefix.
    prefix = full.data[0].embedding[:256]
    norm = math.sqrt(math.fsum(v * v for v in prefix))
    assert all(
        math.isclose(a, b / norm, abs_tol=1e-12)
        for a, b in zip(short.data[0].embedding, prefix, strict=True)
    )


def test_embeddings_accept_token_arrays(client: openai.OpenAI) -> None:
    tokens = CL100K.encode("hello world")
    one = client.embeddings.create(
        model="text-embedding-3-small", input=tokens, encoding_format="float"
    )
    many = client.embeddings.create(
        model="text-embedding-3-small", input=[tokens, [1, 2, 3]], encoding_format="float"
    )
    text = client.embeddings.create(
        model="text-embedding-3-small", input="hello world", encoding_format="float"
    )
    assert one.usage.prompt_tokens == len(tokens)
    assert many.usage.prompt_tokens == len(tokens) + 3
    assert one.data[0].embedding == text.data[0].embedding


def test_embeddings_base64_is_little_endian_float32(sandbox_url: str) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": "abc",
        "dimensions": 4,
        "encoding_format": "base64",
    }
    response = httpx.post(
        f"{sandbox_url}/v1/embeddings", json=body, headers={"authorization": "Bearer k"}
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    values = struct.unpack("<4f", raw)
    assert len(raw) == 16
    assert math.isclose(math.fsum(v * v for v in values), 1.0, rel_tol=1e-5)


def test_embeddings_reject_dimensions_on_ada(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    assert caught.value.status_code == 400
    assert "dimensions" in caught.value.message


def test_embeddings_reject_empty_input(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="")
    assert caught.value.status_code == 400


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    assert "gpt-4o-mini" in listed
    assert "text-embedding-3-small" in listed
    assert "claude-sonnet-4-5" in listed
    assert listed["gpt-4o-mini"].owned_by == "openai"
    assert client.models.retrieve("o3").id == "o3"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-imaginary")
    assert caught.value.code == "model_not_found"


def test_filler_passage_says_it_is_filler() -> None:
    assert "sandbox filler" in FILLER_PASSAGE
    assert "not a model answer" in FILLER_PASSAGE


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-4o", 124)])
def test_prompt_tokens_match_published_api_counts(
    client: openai.OpenAI, model: str, expected: int
) -> None:
    # OpenAI's cookbook ("How to count tokens with tiktoken") reports these
    # prompt_tokens from the real API for this conversation.
    reply = client.chat.completions.create(model=model, messages=COOKBOOK_MESSAGES, max_tokens=1)  # type: ignore[arg-type]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == expected
