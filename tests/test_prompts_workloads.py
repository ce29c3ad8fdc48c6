"""Realistic request sets for the prompt optimization tests and benchmark, and API validity checks.

The builders make the requests these workloads send: support chats with
tool calls (OpenAI chat and the same conversations as Anthropic messages),
RAG prompts that re-send overlapping passages every turn, and few-shot
prompts built from GSM8K problems with GPT-4's answers. The validity checks
apply the rules each API enforces on a conversation; the tests at the end
check that the builders themselves produce valid requests.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSM8K_CSV = DATA_DIR / "routing" / "gsm8k" / "gsm8k_responses.csv"

SUPPORT_SYSTEM = """
    You are the support assistant of Northwind Outfitters.
    Today is {date}.

    Answer   questions about orders, returns and shipping.
    Use the tools to look up orders; never guess an order's status.
    Keep answers short:   two or three sentences.
"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": """Look up one order by its id.

            Returns the order's status, items, shipping address and
            estimated delivery date.""",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "description": "The order id."}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "list_returns",
            "description": """List the return requests of a customer.

            Args:
                customer_id: the customer's id""",
            "parameters": {
                "type": "object",
                "properties": {"customer_id": {"type": "string"}},
                "required": ["customer_id"],
            },
        },
    },
]

QUESTIONS = [
    "Where is my order {order}?",
    "Can you check order {order} for me?",
    "Has order {order} shipped yet?",
    "What is in order {order}?",
]
PASSAGES = [
    "Orders ship from the Lyon warehouse within two business days. Express orders leave "
    "the same day when they are placed before noon. Orders placed on a weekend ship on "
    "the following Monday, and the tracking link is sent by email once the parcel leaves.",
    "Returns are accepted for 30 days after delivery. The item must be unused and in its "
    "original packaging, with its labels attached. Start a return from the order page; "
    "the prepaid return label is valid for fourteen days.",
    "Refunds are paid to the original payment method within five business days of the "
    "return arriving at the warehouse. Shipping costs are refunded only when the item was "
    "faulty or the wrong item was sent.",
    "Gift cards cannot be refunded or exchanged for cash. Lost gift cards can be replaced "
    "with proof of purchase. A gift card is valid for three years from the day it was "
    "bought and can be used for several orders.",
    "Shipping to Switzerland and Norway adds customs duties, which the customer pays on "
    "delivery. Orders to the United Kingdom include duties in the price shown at checkout, "
    "so nothing is due when the parcel arrives.",
    "Loyalty members earn one point per euro spent. Points expire two years after they "
    "were earned. One hundred points give a five euro voucher, which is sent by email and "
    "can be combined with sale prices.",
    "Damaged items must be reported within 48 hours of delivery, with photos of the item "
    "and of the box. The support team then sends a replacement or a refund, whichever the "
    "customer prefers.",
    "The customer service team answers calls from 8 am to 6 pm, Monday to Friday. Chat "
    "support is open every day from 9 am to 9 pm, and emails are answered within one "
    "business day.",
]
RAG_QUESTIONS = [
    ("How long do I have to return an item?", 1),
    ("When will I get my refund?", 2),
    ("Do I pay customs when shipping to Norway?", 4),
    ("When do loyalty points expire?", 5),
    ("How soon must I report a damaged item?", 6),
]


def support_chat(rng: random.Random, turns: int) -> dict[str, Any]:
    """Return an OpenAI chat request: a support conversation with tool calls."""
    date = f"2025-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SUPPORT_SYSTEM.format(date=date)}
    ]
    orders = [f"NW-{rng.randint(10000, 99999)}" for _ in range(3)]
    for turn in range(turns):
        order = orders[turn % len(orders)]
        messages.append({"role": "user", "content": rng.choice(QUESTIONS).format(order=order)})
        call_id = f"call_{turn}_{rng.randint(1000, 9999)}"
        arguments = json.dumps({"order_id": order}, indent=2)
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "get_order", "arguments": arguments},
                    }
                ],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": _order_json(order, rng)}
        )
        messages.append(
            {
                "role": "assistant",
                "content": f"Order {order} is on its way.  It should arrive within "
                f"{rng.randint(1, 5)} days.\n\n\nAnything else?  ",
            }
        )
    messages.append({"role": "user", "content": "Thanks!   And   how do returns work?"})
    return {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS}


def _order_json(order: str, rng: random.Random) -> str:
    items = [
        {"sku": f"SKU-{rng.randint(100, 999)}", "name": name, "quantity": rng.randint(1, 3)}
        for name in rng.sample(["rain jacket", "hiking boots", "wool socks", "tent"], 2)
    ]
    return json.dumps(
        {
            "order_id": order,
            "status": rng.choice(["shipped", "processing", "delivered"]),
            "items": items,
            "shipping_address": {"city": "Lyon", "postal_code": "69002", "country": "FR"},
            "estimated_delivery": "2025-06-03",
        },
        indent=2,
    )


def to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """Return the same conversation as an Anthropic messages request."""
    system = [m["content"] for m in body["messages"] if m["role"] == "system"]
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message["role"]
        if role == "system":
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": message["content"],
            }
            if messages and messages[-1]["role"] == "user":
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": "user", "content": [block]})
            continue
        blocks: list[dict[str, Any]] = []
        if message.get("content"):
            blocks.append({"type": "text", "text": message["content"]})
        for call in message.get("tool_calls", []):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call["id"],
                    "name": call["function"]["name"],
                    "input": json.loads(call["function"]["arguments"]),
                }
            )
        messages.append({"role": role, "content": blocks or message.get("content", "")})
    tools = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"]["description"],
            "input_schema": tool["function"]["parameters"],
        }
        for tool in body.get("tools", [])
    ]
    result: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": messages,
    }
    if system:
        result["system"] = "\n\n".join(system)
    if tools:
        result["tools"] = tools
    return result


def rag_chat(rng: random.Random, turns: int, passages: list[str] | None = None) -> dict[str, Any]:
    """Return an OpenAI chat RAG request: each turn re-sends the passages retrieved for it."""
    corpus = passages or PASSAGES
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "Answer from the documents in the user's message. Quote the document "
            "you used. If the documents do not answer the question, say so.",
        }
    ]
    for turn in range(turns):
        question, answer_index = RAG_QUESTIONS[turn % len(RAG_QUESTIONS)]
        retrieved = _retrieve(rng, corpus, answer_index % len(corpus))
        documents = "\n\n".join(
            f'<document index="{n}">\n{text}\n</document>' for n, text in enumerate(retrieved, 1)
        )
        content = f"<documents>\n{documents}\n</documents>\n\n{question}"
        messages.append({"role": "user", "content": content})
        if turn < turns - 1:
            messages.append(
                {"role": "assistant", "content": f"According to the documents: {retrieved[0]}"}
            )
    return {"model": "gpt-4o", "messages": messages}


def _retrieve(rng: random.Random, corpus: list[str], answer: int) -> list[str]:
    # The answer passage plus two neighbours: successive turns overlap, as
    # retrieval for related questions does.
    others = [i for i in range(len(corpus)) if i != answer]
    chosen = [answer, *rng.sample(others, min(2, len(others)))]
    return [corpus[i] for i in chosen]


def gsm8k_rows(limit: int | None = None) -> list[dict[str, str]]:
    """Return GSM8K rows (prompt, GPT-4 response); skip the test when the data is absent."""
    if not GSM8K_CSV.exists():
        pytest.skip(f"the GSM8K responses file is not at {GSM8K_CSV}")
    with GSM8K_CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[:limit] if limit else rows


def few_shot(rows: list[dict[str, str]], shots: int, question: str) -> dict[str, Any]:
    """Return an OpenAI chat few-shot prompt: ``shots`` solved problems, then the question."""
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": "Solve the grade-school math problem.  Show your steps, then give the "
            "final answer on its own line.\n\n\n",
        }
    ]
    for row in rows[:shots]:
        messages.append({"role": "user", "content": row["prompt"]})
        messages.append({"role": "assistant", "content": row["gpt-4-1106-preview_response"]})
    messages.append({"role": "user", "content": question})
    return {"model": "gpt-4o-mini", "messages": messages}


def support_chats(count: int, seed: int = 7, turns: int = 4) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield support_chat(rng, turns)


def rag_chats(count: int, seed: int = 11, turns: int = 3) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield rag_chat(rng, turns)


# The rules each API enforces on a conversation.


def openai_chat_problems(body: dict[str, Any]) -> list[str]:
    """Return what makes an OpenAI chat conversation invalid (empty when it is valid)."""
    problems: list[str] = []
    pending: set[str] = set()
    for index, message in enumerate(body["messages"]):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in pending:
                problems.append(f"messages[{index}] answers unknown tool call {call_id!r}")
            pending.discard(call_id)
            continue
        if pending:
            problems.append(f"messages[{index}] comes before tool calls {sorted(pending)} end")
            pending = set()
        if role == "assistant":
            pending = {call["id"] for call in message.get("tool_calls", [])}
        elif role not in ("system", "developer", "user"):
            problems.append(f"messages[{index}] has invalid role {role!r}")
    if pending:
        problems.append(f"tool calls {sorted(pending)} have no result")
    return problems


def anthropic_problems(body: dict[str, Any]) -> list[str]:
    """Return what makes an Anthropic messages conversation invalid (empty when it is valid)."""
    problems: list[str] = []
    messages = body["messages"]
    if not messages or messages[0]["role"] != "user":
        problems.append("the first message is not a user message")
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if index and message["role"] == messages[index - 1]["role"]:
            problems.append(f"messages[{index}] repeats the role {message['role']}")
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not blocks:
            problems.append(f"messages[{index}] has no content")
        results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
        if set(results) != pending:
            problems.append(f"messages[{index}] answers {results}, expected {sorted(pending)}")
        leading = [b.get("type") == "tool_result" for b in blocks[: len(results)]]
        if not all(leading):
            problems.append(f"messages[{index}] does not put its tool results first")
        for block in blocks:
            if block.get("type") == "text" and not block["text"].strip():
                problems.append(f"messages[{index}] has an empty text block")
        pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    if pending:
        problems.append(f"tool uses {sorted(pending)} have no result")
    return problems


def test_support_chat_is_valid() -> None:
    for body in support_chats(3):
        assert openai_chat_problems(body) == []
        assert anthropic_problems(to_anthropic(body)) == []


def test_rag_chat_is_valid() -> None:
    for body in rag_chats(3):
        assert openai_chat_problems(body) == []
        assert anthropic_problems(to_anthropic(body)) == []


def test_validators_catch_broken_conversations() -> None:
    body = next(support_chats(1))
    without_result = {**body, "messages": [m for m in body["messages"] if m["role"] != "tool"]}
    assert openai_chat_problems(without_result) != []
    anthropic = to_anthropic(body)
    anthropic["messages"] = anthropic["messages"][1:]
    assert anthropic_problems(anthropic) != []


def test_few_shot_from_gsm8k() -> None:
    rows = gsm8k_rows(6)
    body = few_shot(rows, 5, rows[5]["prompt"])
    assert len(body["messages"]) == 12
    assert body["messages"][-1]["content"] == rows[5]["prompt"]
    assert openai_chat_problems(body) == []
