"""Prompt optimization: tokens each transform saves, compression recall, and latency.

Three measurements, printed as Markdown tables:

1. tokens saved by each lossless transform and by trimming, each run alone
   on the original requests. The request sets come from the test helpers:
   support chats with tool calls (OpenAI chat and Anthropic messages), RAG
   chats that re-send overlapping passages, and few-shot prompts of GSM8K
   problems with GPT-4's solutions;
2. the extractive compressor's kept-token ratio against the share of
   answer-bearing and protected sentences it keeps, on RAG prompts whose
   documents are GSM8K problems and whose question is one problem's;
3. each transform's latency per request on a request of about 4,000 tokens,
   with and without the token counting the report needs.

Usage: .venv/bin/python bench/bench_prompts.py [--requests N] [--runs N]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_prompts_workloads import (
    GSM8K_CSV,
    few_shot,
    rag_chats,
    support_chat,
    support_chats,
    to_anthropic,
)
from thrifty.prompts.compress import split_sentences
from thrifty.prompts.counting import TokenCounter
from thrifty.prompts.dialect import detect_api, dialect_for
from thrifty.prompts.pipeline import optimize, transform_named
from thrifty.prompts.protect import Protection
from thrifty.prompts.settings import (
    LOSSLESS_TRANSFORMS,
    CompressSettings,
    Settings,
    TrimSettings,
)
from thrifty.prompts.transform import Context

SAVING_TRANSFORMS = (*LOSSLESS_TRANSFORMS, "trim")


def read_gsm8k() -> list[dict[str, str]]:
    import csv

    if not GSM8K_CSV.exists():
        sys.exit(f"the GSM8K responses file is not at {GSM8K_CSV}")
    with GSM8K_CSV.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def request_sets(count: int, rows: list[dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    few_shots = []
    for number in range(count):
        start = (number * 9) % (len(rows) - 9)
        shots = rows[start : start + 8]
        few_shots.append(few_shot(shots, 8, rows[start + 8]["prompt"]))
    chats = list(support_chats(count, turns=6))
    return {
        "support chats, OpenAI chat": chats,
        "support chats, Anthropic messages": [to_anthropic(body) for body in chats],
        "RAG chats, OpenAI chat": list(rag_chats(count, turns=4)),
        "few-shot GSM8K, OpenAI chat": few_shots,
    }


def savings_table(sets: dict[str, list[dict[str, Any]]], budget_share: float) -> None:
    print(f"\n| request set | requests | input tokens | {' | '.join(SAVING_TRANSFORMS)} | all |")
    print(f"| --- | --- | --- |{' --- |' * (len(SAVING_TRANSFORMS) + 1)}")
    for name, bodies in sets.items():
        total = 0
        saved = dict.fromkeys((*SAVING_TRANSFORMS, "all"), 0)
        for body in bodies:
            tokens = optimize(body, Settings(transforms=())).input_tokens_before
            trim = TrimSettings(max_input_tokens=int(tokens * budget_share))
            total += tokens
            for transform in SAVING_TRANSFORMS:
                settings = Settings(transforms=(transform,), trim=trim)
                saved[transform] += optimize(body, settings).saved_tokens
            combined = Settings(transforms=SAVING_TRANSFORMS, trim=trim)
            saved["all"] += optimize(body, combined).saved_tokens
        cells = " | ".join(f"{saved[t]:,} ({saved[t] / total:.1%})" for t in saved)
        print(f"| {name} | {len(bodies)} | {total:,} | {cells} |")


def compression_prompts(
    rows: list[dict[str, str]], count: int, documents: int
) -> list[tuple[dict[str, Any], list[str], str]]:
    """Return (body, answer-bearing sentences, question) for RAG prompts over GSM8K problems."""
    rng = random.Random(5)
    prompts = []
    for _ in range(count):
        chosen = rng.sample(rows, documents)
        target = rng.randrange(documents)
        facts = []
        for row in chosen:
            text = row["prompt"]
            spans = split_sentences(text)
            question_start = spans[-1][0]
            facts.append(text[:question_start].strip())
        question = chosen[target]["prompt"][split_sentences(chosen[target]["prompt"])[-1][0] :]
        answer = [facts[target][s:e] for s, e, _ in split_sentences(facts[target])]
        blocks = "\n".join(f"<document>\n{fact}\n</document>" for fact in facts)
        body = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Solve the problem the question is about."},
                {"role": "user", "content": f"<documents>\n{blocks}\n</documents>"},
                {"role": "assistant", "content": "I have read the documents."},
                {"role": "user", "content": question},
            ],
        }
        prompts.append((body, answer, question))
    return prompts


def compression_table(rows: list[dict[str, str]], count: int) -> None:
    prompts = compression_prompts(rows, count, documents=8)
    print(
        "\n| target ratio | kept tokens / compressible | answer-bearing sentences kept "
        "| protected question kept |"
    )
    print("| --- | --- | --- | --- |")
    for ratio in (0.2, 0.3, 0.5, 0.7):
        kept_tokens = compressible = answer_total = answer_kept = protected = 0
        settings = Settings(
            transforms=("compress",),
            compress=CompressSettings(ratio=ratio, min_tokens=16),
            protect=Protection(),
        )
        for body, answer, question in prompts:
            result = optimize(body, settings)
            changes = result.transforms[0].changes
            compressible += changes["compressible_tokens"]
            kept_tokens += changes["kept_tokens"]
            context = result.body["messages"][1]["content"]
            answer_total += len(answer)
            answer_kept += sum(sentence in context for sentence in answer)
            protected += result.body["messages"][3]["content"] == question
        print(
            f"| {ratio:.1f} | {kept_tokens / compressible:.1%} | {answer_kept / answer_total:.1%} "
            f"| {protected}/{len(prompts)} |"
        )


def latency_request() -> dict[str, Any]:
    """Return a support chat of about 4,000 input tokens."""
    return support_chat(random.Random(1), 20)


def time_runs(function: Callable[[], object], runs: int) -> tuple[float, float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def latency_table(runs: int) -> None:
    for name, body in (
        ("OpenAI chat", latency_request()),
        ("Anthropic messages", to_anthropic(latency_request())),
    ):
        api = detect_api(body)
        dialect = dialect_for(api)
        counter = TokenCounter(dialect, body["model"])
        tokens = counter.body(body)
        settings = Settings(
            transforms=(*LOSSLESS_TRANSFORMS, "layout", "compress", "trim"),
            trim=TrimSettings(max_input_tokens=tokens // 2),
            compress=CompressSettings(ratio=0.5, roles=("user", "tool", "assistant")),
        )
        context = Context(dialect, counter, settings.protect, settings)
        print(f"\n{name}, {tokens:,} input tokens, {runs} runs (after a warm-up run each)")
        print("\n| transform | p50 | p99 |")
        print("| --- | --- | --- |")
        for transform_name in settings.ordered_transforms():
            transform = transform_named(transform_name, settings, None)
            copies = [copy.deepcopy(body) for _ in range(runs + 1)]
            iterator = iter(copies)
            transform.apply(next(iterator), context)
            p50, p99 = time_runs(
                lambda t=transform, it=iterator, c=context: t.apply(next(it), c), runs
            )
            print(f"| {transform_name} | {p50:.3f} ms | {p99:.3f} ms |")
        lossless = replace(settings, transforms=LOSSLESS_TRANSFORMS)
        optimize(body, lossless)
        p50, p99 = time_runs(lambda s=lossless, b=body: optimize(b, s), runs)
        print(f"| all lossless, with copy and token counts | {p50:.3f} ms | {p99:.3f} ms |")
        optimize(body, settings)
        p50, p99 = time_runs(lambda s=settings, b=body: optimize(b, s), runs)
        print(f"| all seven, with copy and token counts | {p50:.3f} ms | {p99:.3f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per set")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per transform")
    args = parser.parse_args()
    rows = read_gsm8k()

    print("## Tokens saved, each transform alone (trim budget: 60% of each request)")
    savings_table(request_sets(args.requests, rows), budget_share=0.6)
    print("\n## Extractive compression on RAG prompts of 8 GSM8K problems")
    compression_table(rows, args.requests)
    print("\n## Latency per request")
    latency_table(args.runs)


if __name__ == "__main__":
    main()
