"""Reading outcome files: RouteLLM CSV, MT-Bench judgements, plain JSONL, contamination."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.services import require_shared_data
from thrifty.errors import RoutingError
from thrifty.routing.readers import read_outcomes

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def write_lines(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_csv_reads_models_and_answers(tmp_path: Path) -> None:
    data = tmp_path / "mmlu_toy.csv"
    data.write_text(
        "prompt,big,small,big_response\n"
        '"What is 1+1?\nA. 2",True,False,"A"\n'
        "Leaked question,false,TRUE,B\n",
        encoding="utf-8",
    )
    outcomes = read_outcomes([data])
    assert outcomes.models == ("big", "small")
    assert len(outcomes.outcomes) == 2
    first = outcomes.outcomes[0]
    assert first.prompt == "What is 1+1?\nA. 2"
    assert first.group == "mmlu_toy"
    assert first.scores == {"big": 1.0, "small": 0.0}
    assert first.answers == {"big": "A"}
    assert outcomes.outcomes[1].scores == {"big": 0.0, "small": 1.0}


def test_contaminated_prompts_beside_data_dropped(tmp_path: Path) -> None:
    data = tmp_path / "toy.csv"
    data.write_text("prompt,big,small\nkeep me,True,False\nLeaked,False,True\n", encoding="utf-8")
    write_lines(tmp_path / "contaminated_prompts.jsonl", [{"eval_prompt": "Leaked"}])
    outcomes = read_outcomes([data])
    assert [o.prompt for o in outcomes.outcomes] == ["keep me"]
    assert outcomes.dropped_contaminated == 1
    everything = read_outcomes([data], decontaminate=False)
    assert len(everything.outcomes) == 2


def test_explicit_contamination_list(tmp_path: Path) -> None:
    data = tmp_path / "toy.csv"
    data.write_text("prompt,big,small\na,True,False\nb,False,True\n", encoding="utf-8")
    extra = write_lines(tmp_path / "more.jsonl", [{"eval_prompt": "b"}])
    outcomes = read_outcomes([data], contaminated=[extra])
    assert [o.prompt for o in outcomes.outcomes] == ["a"]


def test_csv_rejects_non_boolean_cell(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("prompt,big\nq,maybe\n", encoding="utf-8")
    with pytest.raises(RoutingError, match=r"bad.csv:2: column 'big' is 'maybe'"):
        read_outcomes([data])


def test_csv_without_prompt_column(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("question,big\nq,True\n", encoding="utf-8")
    with pytest.raises(RoutingError, match="no 'prompt' column"):
        read_outcomes([data])


def test_plain_jsonl_scores_and_costs(tmp_path: Path) -> None:
    data = write_lines(
        tmp_path / "bench.jsonl",
        [
            {"prompt": "p1", "model": "a", "score": 1, "cost": "0.0012"},
            {"prompt": "p1", "model": "b", "score": 0.5, "cost": 0.0001},
            {"prompt": "p1", "model": "b", "score": 1.0, "cost": 0.0003},
            {"prompt": "p2", "model": "a", "score": 0, "group": "other"},
        ],
    )
    outcomes = read_outcomes([data])
    assert outcomes.models == ("a", "b")
    first, second = outcomes.outcomes
    assert first.prompt == "p1"
    assert first.group == "bench"
    assert first.scores == {"a": 1.0, "b": 0.75}
    assert first.costs == {"a": Decimal("0.0012"), "b": Decimal("0.0002")}
    assert second.group == "other"
    assert second.costs == {}


def test_plain_jsonl_rejects_bad_score(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "bad.jsonl", [{"prompt": "p", "model": "a", "score": "high"}])
    with pytest.raises(RoutingError, match=r"bad.jsonl:1: 'score' is 'high'"):
        read_outcomes([data])


def test_plain_jsonl_rejects_negative_cost(tmp_path: Path) -> None:
    data = write_lines(
        tmp_path / "bad.jsonl", [{"prompt": "p", "model": "a", "score": 1, "cost": -1}]
    )
    with pytest.raises(RoutingError, match="'cost' is -1; it must be 0 or more"):
        read_outcomes([data])


def test_mt_bench_means_turn_scores(tmp_path: Path) -> None:
    folder = tmp_path / "mt_bench"
    folder.mkdir()
    write_lines(
        folder / "question.jsonl",
        [{"question_id": 7, "turns": ["First turn", "Second turn"]}],
    )
    write_lines(
        folder / "judgements.jsonl",
        [
            {"question_id": 7, "model": "big", "turn": 1, "score": 10},
            {"question_id": 7, "model": "big", "turn": 2, "score": 7},
            {"question_id": 7, "model": "small", "turn": 1, "score": 4.5},
            {"question_id": 7, "model": "small", "turn": 2, "score": 2},
        ],
    )
    outcomes = read_outcomes([folder])
    (outcome,) = outcomes.outcomes
    assert outcome.prompt == "First turn"
    assert outcome.turns == ("First turn", "Second turn")
    assert outcome.calls == 2
    assert outcome.scores == {"big": 8.5, "small": 3.25}


def test_mt_bench_drops_contaminated_second_turn(tmp_path: Path) -> None:
    folder = tmp_path / "mt_bench"
    folder.mkdir()
    write_lines(folder / "question.jsonl", [{"question_id": 1, "turns": ["a", "b"]}])
    write_lines(folder / "judgements.jsonl", [{"question_id": 1, "model": "m", "score": 5}])
    write_lines(folder / "contaminated_prompts.jsonl", [{"eval_prompt": "b"}])
    outcomes = read_outcomes([folder])
    assert outcomes.outcomes == ()
    assert outcomes.dropped_contaminated == 1


def test_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(RoutingError, match="does not exist"):
        read_outcomes([tmp_path / "nope.csv"])


def test_pair_names_missing_model(tmp_path: Path) -> None:
    data = tmp_path / "toy.csv"
    data.write_text("prompt,big,small\na,True,False\n", encoding="utf-8")
    outcomes = read_outcomes([data])
    with pytest.raises(RoutingError, match="model 'huge' has no scores"):
        outcomes.pair("huge", "small")
    with pytest.raises(RoutingError, match="both 'big'"):
        outcomes.pair("big", "big")


def test_shared_mmlu_folder_decontaminated() -> None:
    outcomes = read_outcomes([require_shared_data("routing/mmlu")])
    assert outcomes.models == (STRONG, WEAK)
    assert len(outcomes.sources) == 29
    # Three of the five listed prompts are in the domains shipped here.
    assert outcomes.dropped_contaminated == 3
    assert len(outcomes.outcomes) == 7655


def test_shared_gsm8k_answers_read() -> None:
    outcomes = read_outcomes([require_shared_data("routing/gsm8k")])
    assert len(outcomes.outcomes) == 889
    assert outcomes.dropped_contaminated == 11
    first = outcomes.outcomes[0]
    assert set(first.answers) == {STRONG, WEAK}
