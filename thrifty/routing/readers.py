"""Readers for per-prompt outcome files.

Three formats are read:

- RouteLLM's CSV: a ``prompt`` column, one ``True``/``False`` column per
  model, and optionally a ``<model>_response`` column with each answer;
- MT-Bench judgements: ``judgements.jsonl`` (``question_id``, ``model``,
  ``turn``, ``score``) beside ``question.jsonl`` (``question_id``,
  ``turns``); a question's quality is the mean of its turn scores and a
  router scores only its first turn;
- a plain JSONL file with one line per prompt and model: ``prompt``,
  ``model``, ``score``, and optionally ``cost`` (USD, a number or a decimal
  string) and ``group``.

A folder stands for the outcome files in it. Prompts listed as
``eval_prompt`` in a ``contaminated_prompts.jsonl`` next to a data file (or
in a file passed explicitly) leaked into some router's training data and are
dropped.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeGuard

from thrifty.errors import RoutingError
from thrifty.routing.outcomes import Outcome, OutcomeSet

CONTAMINATED_FILE = "contaminated_prompts.jsonl"
MT_BENCH_JUDGEMENTS = "judgements.jsonl"
MT_BENCH_QUESTIONS = "question.jsonl"
_RESPONSE_SUFFIX = "_response"
_BOOLEANS = {"true": 1.0, "false": 0.0}


def read_outcomes(
    paths: Sequence[Path], *, contaminated: Sequence[Path] = (), decontaminate: bool = True
) -> OutcomeSet:
    """Read outcome files and folders, dropping contaminated prompts.

    ``contaminated`` adds lists to the ``contaminated_prompts.jsonl`` files
    found beside the data; ``decontaminate=False`` keeps every prompt.
    """
    files = _expand(paths)
    excluded: set[str] = set()
    if decontaminate:
        excluded = read_contaminated([*_contamination_lists(files), *contaminated])

    outcomes: list[Outcome] = []
    dropped = 0
    for path in files:
        for outcome in _read_file(path):
            if _is_contaminated(outcome, excluded):
                dropped += 1
            else:
                outcomes.append(outcome)
    models = sorted({model for outcome in outcomes for model in outcome.scores})
    return OutcomeSet(
        outcomes=tuple(outcomes),
        models=tuple(models),
        sources=tuple(str(path) for path in files),
        dropped_contaminated=dropped,
    )


def read_contaminated(paths: Iterable[Path]) -> set[str]:
    """Return the ``eval_prompt`` values of contamination lists."""
    prompts: set[str] = set()
    for path in paths:
        for number, row in _json_lines(path):
            prompt = row.get("eval_prompt")
            if not isinstance(prompt, str):
                raise RoutingError(f"{path}:{number}: a contamination entry needs 'eval_prompt'")
            prompts.add(prompt)
    return prompts


def _expand(paths: Sequence[Path]) -> list[Path]:
    if not paths:
        raise RoutingError("no outcome files given; name at least one CSV, JSONL file or folder")
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(_folder_files(path))
        elif path.is_file():
            files.append(path)
        else:
            raise RoutingError(f"outcome file {path} does not exist")
    return files


def _folder_files(folder: Path) -> list[Path]:
    if (folder / MT_BENCH_JUDGEMENTS).is_file():
        return [folder / MT_BENCH_JUDGEMENTS]
    ignored = {CONTAMINATED_FILE, MT_BENCH_QUESTIONS}
    found = sorted(
        path
        for path in folder.iterdir()
        if path.suffix in (".csv", ".jsonl") and path.name not in ignored
    )
    if not found:
        raise RoutingError(f"folder {folder} has no .csv or .jsonl outcome files")
    return found


def _contamination_lists(files: Iterable[Path]) -> list[Path]:
    folders = sorted({path.parent for path in files})
    return [
        folder / CONTAMINATED_FILE for folder in folders if (folder / CONTAMINATED_FILE).is_file()
    ]


def _is_contaminated(outcome: Outcome, excluded: set[str]) -> bool:
    return outcome.prompt in excluded or any(turn in excluded for turn in outcome.turns)


def _read_file(path: Path) -> list[Outcome]:
    if path.suffix == ".csv":
        return _read_routellm_csv(path)
    if path.name == MT_BENCH_JUDGEMENTS:
        return _read_mt_bench(path)
    if path.suffix == ".jsonl":
        return _read_plain_jsonl(path)
    raise RoutingError(
        f"cannot read outcome file {path}: use a RouteLLM .csv, MT-Bench {MT_BENCH_JUDGEMENTS} "
        "or a .jsonl with prompt, model and score"
    )


def _read_routellm_csv(path: Path) -> list[Outcome]:
    with _open(path) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise RoutingError(f"outcome file {path} has no rows")
    columns = list(rows[0])
    if "prompt" not in columns:
        raise RoutingError(f"{path} has no 'prompt' column; its columns are {', '.join(columns)}")
    models = [c for c in columns if c != "prompt" and not c.endswith(_RESPONSE_SUFFIX)]
    if not models:
        raise RoutingError(f"{path} has no model columns besides 'prompt'")
    return [_csv_outcome(path, number, row, models) for number, row in enumerate(rows, start=2)]


def _csv_outcome(path: Path, number: int, row: Mapping[str, str], models: list[str]) -> Outcome:
    scores: dict[str, float] = {}
    answers: dict[str, str] = {}
    for model in models:
        value = (row.get(model) or "").strip().lower()
        if value not in _BOOLEANS:
            raise RoutingError(
                f"{path}:{number}: column {model!r} is {row.get(model)!r}; use True or False"
            )
        scores[model] = _BOOLEANS[value]
        answer = row.get(model + _RESPONSE_SUFFIX)
        if answer:
            answers[model] = answer
    return Outcome(prompt=row["prompt"], group=path.stem, scores=scores, answers=answers)


def _read_mt_bench(path: Path) -> list[Outcome]:
    questions_path = path.with_name(MT_BENCH_QUESTIONS)
    if not questions_path.is_file():
        raise RoutingError(f"MT-Bench judgements {path} need {questions_path} beside them")
    turns_of = _mt_bench_questions(questions_path)
    scores: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for number, row in _json_lines(path):
        question_id, model, score = row.get("question_id"), row.get("model"), row.get("score")
        if not isinstance(question_id, int) or not isinstance(model, str):
            raise RoutingError(f"{path}:{number}: a judgement needs question_id and model")
        if not _is_number(score) or score < 0:
            raise RoutingError(
                f"{path}:{number}: judge score {score!r} is not a number of 0 or more"
            )
        if question_id not in turns_of:
            raise RoutingError(
                f"{path}:{number}: question {question_id} is not in {questions_path}"
            )
        scores[question_id][model].append(float(score))
    return [
        Outcome(
            prompt=turns_of[qid][0],
            group=path.parent.name or path.stem,
            scores={model: sum(values) / len(values) for model, values in by_model.items()},
            turns=tuple(turns_of[qid]),
        )
        for qid, by_model in sorted(scores.items())
    ]


def _mt_bench_questions(path: Path) -> dict[int, list[str]]:
    questions: dict[int, list[str]] = {}
    for number, row in _json_lines(path):
        question_id, turns = row.get("question_id"), row.get("turns")
        if not isinstance(question_id, int) or not isinstance(turns, list) or not turns:
            raise RoutingError(f"{path}:{number}: a question needs question_id and a turns list")
        questions[question_id] = [str(turn) for turn in turns]
    return questions


def _read_plain_jsonl(path: Path) -> list[Outcome]:
    scores: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    costs: dict[tuple[str, str], dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    for number, row in _json_lines(path):
        prompt, model, score = row.get("prompt"), row.get("model"), row.get("score")
        where = f"{path}:{number}"
        if not isinstance(prompt, str) or not isinstance(model, str) or not model:
            raise RoutingError(f"{where}: a line needs 'prompt' and 'model' strings")
        if not _is_number(score):
            raise RoutingError(f"{where}: 'score' is {score!r}; give a number")
        key = (str(row.get("group") or path.stem), prompt)
        scores[key][model].append(float(score))
        if row.get("cost") is not None:
            costs[key][model].append(_cost(row["cost"], where))
    return [
        Outcome(
            prompt=prompt,
            group=group,
            scores={model: sum(values) / len(values) for model, values in by_model.items()},
            costs={
                model: sum(values, Decimal(0)) / len(values)
                for model, values in costs.get((group, prompt), {}).items()
            },
        )
        for (group, prompt), by_model in scores.items()
    ]


def _cost(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RoutingError(f"{where}: 'cost' is {value!r}; give USD as a number or decimal string")
    try:
        cost = Decimal(str(value))
    except InvalidOperation as exc:
        raise RoutingError(f"{where}: 'cost' {value!r} is not a decimal number") from exc
    if not cost.is_finite() or cost < 0:
        raise RoutingError(f"{where}: 'cost' is {value!r}; it must be 0 or more")
    return cost


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RoutingError(f"{path}:{number}: invalid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                raise RoutingError(f"{path}:{number}: each line must be a JSON object")
            yield number, row


def _open(path: Path) -> Any:
    try:
        return path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise RoutingError(f"cannot read {path}: {exc.strerror}") from exc
