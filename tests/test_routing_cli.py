"""`thrifty route train` and `thrifty route eval` on small outcome files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from thrifty.cli.main import main
from thrifty.routing.learned import LearnedRouter
from thrifty.routing.plots import plots_available


def run_cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["thrifty", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def write_domain(path: Path, start: int, count: int) -> Path:
    """A RouteLLM-format CSV: proofs need the strong model, greetings do not."""
    lines = ["prompt,strong-model,weak-model"]
    for i in range(start, start + count):
        if i % 2 == 0:
            lines.append(f'"Prove lemma {i} about groups",True,False')
        else:
            lines.append(f'"Say hello to person {i}",True,True')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def domains(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "data"
    folder.mkdir()
    return [write_domain(folder / f"d{n}.csv", n * 40, 40) for n in range(4)]


def test_train_then_eval_held_out(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    domains: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    router_path = tmp_path / "router.json"
    code = run_cli(
        monkeypatch,
        "route", "train", str(domains[0]), str(domains[1]),
        "--strong", "strong-model", "--weak", "weak-model",
        "--folds", "2", "-o", str(router_path),
    )  # fmt: skip
    assert code == 0
    output = capsys.readouterr().out
    assert f"wrote {router_path}" in output
    assert "trained on 80 prompts from 2 groups" in output
    assert LearnedRouter.load(router_path).training.sources == ("d0", "d1")

    json_path, png_path = tmp_path / "eval.json", tmp_path / "eval.png"
    code = run_cli(
        monkeypatch,
        "route", "eval", str(domains[2]), str(domains[3]),
        "--router", str(router_path), "--bootstrap", "50",
        "--strong-price", "10,30", "--weak-price", "0.5,1.5",
        "--json-out", str(json_path), "--png", str(png_path),
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "80 held-out prompts in 2 groups, evaluated by router file" in printed
    assert "APGR" in printed

    document = json.loads(json_path.read_text())
    assert document["prompts"] == 80
    assert document["protocol"]["mode"] == "router file"
    assert document["protocol"]["dropped_training_overlap"] == 0
    assert document["methods"]["random"]["apgr"] == 0.5
    # A perfect ranking: every proof first, so the router matches the oracle.
    assert document["methods"]["router"]["apgr"] == document["methods"]["oracle"]["apgr"]
    assert document["methods"]["router"]["apgr"] == 0.75
    assert document["cost_usd"]["all_strong"] is not None
    assert document["cost_usd"]["notes"][0].startswith("strong-model: custom price")
    if plots_available():
        assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cross_validated_json(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    domains: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_cli(
        monkeypatch,
        "route", "eval", *map(str, domains),
        "--strong", "strong-model", "--weak", "weak-model", "--folds", "2",
        "--bootstrap", "20", "--json", "--json-out", str(tmp_path / "e.json"), "--no-png",
        "--strong-provider", "openai", "--weak-provider", "openai",
    )  # fmt: skip
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["protocol"] == {
        "mode": "cross-validation",
        "folds": 2,
        "split": "by group",
        "dropped_contaminated": 0,
    }
    assert document["prompts"] == 160
    # No catalog price for these names, so the cost is unpriced, not $0.
    assert document["cost_usd"]["all_strong"] is None
    assert document["methods"]["router"]["points"][5]["cost_usd"] is None


def test_eval_on_training_data_rejected(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    domains: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    router_path = tmp_path / "router.json"
    train = ["route", "train", str(domains[0]), "--strong", "strong-model"]
    assert run_cli(monkeypatch, *train, "--weak", "weak-model", "-o", str(router_path)) == 0
    capsys.readouterr()
    code = run_cli(
        monkeypatch, "route", "eval", str(domains[0]), "--router", str(router_path),
        "--json-out", str(tmp_path / "e.json"),
    )  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("thrifty: error: every prompt in these files was in the router's")


def test_eval_needs_model_names(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    domains: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_cli(monkeypatch, "route", "eval", str(domains[0]), "--json-out", str(tmp_path / "x"))
    assert code == 2
    assert "name the models with --strong and --weak" in capsys.readouterr().err
