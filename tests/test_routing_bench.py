"""`thrifty bench models` end to end through a gateway with the sandbox upstream.

The sandbox answers with filler text, so grades say nothing about the
models here; these tests check the mechanics: every answer is sent, graded,
priced, timed, summarized and stored with its ledger record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.gateway_support import running_gateway
from tests.ledger_support import BACKENDS, ledger_db_url, make_record
from thrifty.cli.main import main
from thrifty.errors import RoutingError
from thrifty.ledger import open_ledger
from thrifty.routing.bench import BenchRun, run_benchmark
from thrifty.routing.bench.evalset import read_eval_set
from thrifty.routing.bench.grading import grade_answer
from thrifty.routing.bench.results import BenchResult, pareto_frontier, summarize
from thrifty.routing.plots import plots_available
from thrifty.routing.readers import read_outcomes

MODELS = ("gpt-4o-mini", "gpt-4o")
ITEMS = [
    {"id": "sum", "prompt": "What is 2 + 2? Answer with a number.", "expected": "4"},
    {"id": "colour", "prompt": "Name a colour.", "grader": {"type": "regex", "pattern": "(?i)\\w"}},
    {
        "id": "json",
        "prompt": "Reply with a JSON object with a key 'a'.",
        "grader": {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
        "max_tokens": 40,
    },
    {"id": "essay", "prompt": "Explain tides briefly.", "grader": "judge", "max_tokens": 30},
]


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def write_eval_set(path: Path, items: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return path


def test_bench_models_through_gateway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_set = write_eval_set(tmp_path / "eval.jsonl", ITEMS)
    output_dir = tmp_path / "out"
    with running_gateway(tmp_path) as gateway:
        code = run_cli(
            monkeypatch,
            "bench", "models", str(eval_set), "--models", ",".join(MODELS),
            "--gateway", gateway.url, "--judge-model", "gpt-4o-mini",
            "--db", gateway.db_url, "--output-dir", str(output_dir), "--json",
        )  # fmt: skip
        assert code == 0
        document = json.loads(capsys.readouterr().out)
        results = [
            json.loads(line) for line in (output_dir / "results.jsonl").read_text().splitlines()
        ]
        records = {r["request_id"]: gateway.record(r["request_id"]) for r in results}
        ledger = gateway.ledger()
        try:
            total_records = ledger.count()
        finally:
            ledger.close()

    assert document["items"] == 4
    assert document["annotated_records"] == 8
    summaries = {entry["model"]: entry for entry in document["models"]}
    assert list(summaries) == list(MODELS)
    for entry in summaries.values():
        assert entry["requests"] == 4
        assert entry["errors"] == 0
        # The judge's filler reply has no rating, so the essay stays ungraded.
        assert entry["graded"] == 3
        assert 0.0 <= entry["quality"] <= 1.0
        assert Decimal(entry["cost_per_1000_usd"]) > 0
        assert entry["latency_p50_ms"] > 0
    assert any(entry["on_frontier"] for entry in summaries.values())

    assert len(results) == 8
    for result in results:
        record = records[result["request_id"]]
        assert record.model_requested == result["model"]
        assert record.feature == "bench"
        assert record.tags["bench_run"] == document["run_id"]
        assert record.tags["bench_item"] == result["item_id"]
        assert record.cost_usd == Decimal(result["cost_usd"])
        assert record.details["bench"]["score"] == result["score"]
        assert record.details["bench"]["item"] == result["item_id"]
        assert record.input_tokens == result["input_tokens"]
        assert record.output_tokens == result["output_tokens"]
    # Eight answers and one judge call per model for the essay.
    assert total_records == 10
    essay = [r for r in results if r["item_id"] == "essay"]
    assert [r["grade_detail"] for r in essay] == ["the judge's reply has no 'Rating: [[N]]'"] * 2

    outcomes = read_outcomes([output_dir / "outcomes.jsonl"])
    assert outcomes.models == ("gpt-4o", "gpt-4o-mini")
    assert len(outcomes.outcomes) == 3
    assert all(set(o.costs) == set(MODELS) for o in outcomes.outcomes)
    html = (output_dir / "pareto.html").read_text()
    assert "<svg" in html
    assert "gpt-4o-mini" in html
    if plots_available():
        assert (output_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_unpriced_model_off_frontier(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eval_set = write_eval_set(tmp_path / "eval.jsonl", ITEMS[:1])
    with running_gateway(tmp_path) as gateway:
        code = run_cli(
            monkeypatch,
            "bench", "models", str(eval_set), "--models", "gpt-4o-mini,no-such-model-x",
            "--gateway", gateway.url, "--output-dir", str(tmp_path / "out"), "--json",
        )  # fmt: skip
        assert code == 0
        summaries = {m["model"]: m for m in json.loads(capsys.readouterr().out)["models"]}
        code = run_cli(
            monkeypatch,
            "bench", "models", str(eval_set), "--models", "no-such-model-x",
            "--gateway", gateway.url, "--output-dir", str(tmp_path / "table"),
            "--header", "X-Sandbox-Latency: ttft_ms=1",
        )  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "Model benchmark bench_" in table
    assert "no-such-model-x" in table
    assert "unpriced" in table
    unknown = summaries["no-such-model-x"]
    assert unknown["errors"] == 0
    assert unknown["unpriced"] == 1
    assert unknown["cost_per_1000_usd"] is None
    assert unknown["on_frontier"] is False
    assert summaries["gpt-4o-mini"]["on_frontier"] is True


async def test_bench_counts_failed_requests(tmp_path: Path) -> None:
    items = read_eval_set(write_eval_set(tmp_path / "eval.jsonl", ITEMS[:2]))
    with running_gateway(tmp_path) as gateway:
        run = BenchRun(
            gateway_url=gateway.url,
            models=["gpt-4o-mini"],
            extra_headers={"X-Sandbox-Fault": "status=503"},
        )
        results = await run_benchmark(items, run)
        assert [r.request_id is not None for r in results] == [True, True]
        records = [gateway.record(r.request_id or "") for r in results]
    assert [r.error is not None for r in results] == [True, True]
    assert all(r.score is None for r in results)
    assert [record.http_status for record in records] == [503, 503]
    (summary,) = summarize(results, ["gpt-4o-mini"])
    assert summary.errors == 2
    assert summary.quality is None
    assert summary.cost_per_1000_usd is None
    assert summary.latency_p50_ms is None


async def test_graders_score_answers(tmp_path: Path) -> None:
    items = read_eval_set(
        write_eval_set(
            tmp_path / "e.jsonl",
            [
                {"prompt": "2+2?", "expected": ["4", "four"]},
                {"prompt": "x", "grader": {"type": "regex", "pattern": "^yes"}},
                {"prompt": "y", "grader": {"type": "json_schema", "schema": {"type": "array"}}},
                {"prompt": "z", "expected": "Paris", "grader": {"type": "judge"}},
            ],
        )
    )
    exact, regex, schema, judged = items
    assert (await grade_answer(exact, "  Four. ")).score == 1.0
    assert (await grade_answer(exact, "5")).score == 0.0
    assert (await grade_answer(regex, "yes indeed")).score == 1.0
    assert (await grade_answer(regex, "no")).score == 0.0
    assert (await grade_answer(schema, "```json\n[1, 2]\n```")).score == 1.0
    assert (await grade_answer(schema, '{"a": 1}')).score == 0.0

    prompts: list[str] = []

    async def judge(prompt: str) -> str:
        prompts.append(prompt)
        return "Accurate and short. Rating: [[8]]"

    grade = await grade_answer(judged, "Paris", judge)
    assert grade.score == 0.8
    assert grade.detail == "judge rating 8 of 10"
    assert "[Reference answer]\nParis" in prompts[0]
    assert (await grade_answer(judged, "Paris")).score is None


def test_eval_set_errors(tmp_path: Path) -> None:
    cases = [
        ({"prompt": "x"}, "no valid grader"),
        ({"expected": "4"}, "give either 'prompt'"),
        ({"prompt": "x", "grader": {"type": "regex", "pattern": "("}}, "not a valid regular"),
        ({"prompt": "x", "grader": {"type": "json_schema", "schema": {"type": 5}}}, "invalid"),
        ({"prompt": "x", "expected": "y", "max_tokens": 0}, "max_tokens is 0"),
    ]
    for number, (item, message) in enumerate(cases):
        path = write_eval_set(tmp_path / f"bad{number}.jsonl", [item])
        with pytest.raises(RoutingError, match=message):
            read_eval_set(path)
    duplicate = write_eval_set(
        tmp_path / "dup.jsonl", [{"id": "a", "prompt": "x", "expected": "y"}] * 2
    )
    with pytest.raises(RoutingError, match="id 'a' is used twice"):
        read_eval_set(duplicate)


def result(model: str, score: float, cost: str) -> BenchResult:
    return BenchResult("i", model, "p", "a", score, "", Decimal(cost), 10.0, "req")


def test_pareto_frontier_marks_undominated() -> None:
    results = [
        result("cheap", 0.6, "0.001"),
        result("mid", 0.8, "0.005"),
        result("dominated", 0.7, "0.006"),
        result("best", 0.9, "0.02"),
    ]
    summaries = summarize(results, ["cheap", "mid", "dominated", "best"])
    assert pareto_frontier(summaries) == {"cheap", "mid", "best"}
    assert [s.on_frontier for s in summaries] == [True, True, False, True]
    assert summaries[0].cost_per_1000_usd == Decimal("1.000000")


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from ledger_db_url(request, tmp_path)


def test_ledger_annotate_merges_details(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    try:
        ledger.write([make_record("req_a", details={"cache": {"status": "miss"}})])
        assert ledger.annotate("req_a", "bench", {"score": 1.0, "item": "q1"})
        assert not ledger.annotate("req_missing", "bench", {"score": 0.0})
        record = ledger.get("req_a")
        assert record is not None
        assert record.details == {
            "cache": {"status": "miss"},
            "bench": {"score": 1.0, "item": "q1"},
        }
        assert ledger.annotate("req_a", "bench", {"score": 0.5})
        again = ledger.get("req_a")
        assert again is not None
        assert again.details["bench"] == {"score": 0.5}
        assert ledger.count() == 1
    finally:
        ledger.close()
