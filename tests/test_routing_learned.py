"""The learned router: training, its file, thresholds, and held-out MMLU quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.services import require_shared_data
from thrifty.errors import RoutingError
from thrifty.routing.evaluation import evaluate
from thrifty.routing.features import HashedNgrams
from thrifty.routing.learned import (
    LearnedRouter,
    TrainingOptions,
    fold_of_each,
    prompt_digest,
    train_router,
)
from thrifty.routing.outcomes import Outcome, OutcomeSet, PairedOutcomes
from thrifty.routing.protocol import score_cross_validated, score_with_router
from thrifty.routing.readers import read_outcomes

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def toy_outcomes(count: int = 120) -> PairedOutcomes:
    """Prompts about calculus need the strong model; prompts about colours do not."""
    outcomes = []
    for i in range(count):
        hard = i % 2 == 0
        prompt = f"Integrate the function number {i} by parts" if hard else f"Name colour {i}"
        scores = {"big": 1.0, "small": 0.0 if hard else 1.0}
        outcomes.append(Outcome(prompt=prompt, group=f"g{i % 4}", scores=scores))
    models = ("big", "small")
    return OutcomeSet(tuple(outcomes), models, ("toy",)).pair("big", "small")


def test_features_stable_and_normalized() -> None:
    features = HashedNgrams(dimension=1 << 10)
    indices, values = features.transform("The cat sat. The cat!")
    again_indices, again_values = features.transform("The cat sat. The cat!")
    assert indices.tolist() == again_indices.tolist()
    assert values.tolist() == again_values.tolist()
    assert float(np.dot(values, values)) == pytest.approx(1.0)
    assert indices.max() < 1 << 10


def test_features_clip_long_prompt() -> None:
    features = HashedNgrams(max_chars=100)
    long_text = "alpha " * 1000
    assert features._clip(long_text).count("alpha") < 30


def test_router_learns_toy_signal() -> None:
    paired = toy_outcomes()
    router = train_router(paired, TrainingOptions(folds=4, dimension=1 << 12))
    hard = router.weak_ok_probability("Integrate the function number 999 by parts")
    easy = router.weak_ok_probability("Name colour 999")
    assert hard < 0.3
    assert easy > 0.7
    assert router.training.prompts == 120
    assert router.training.sources == ("g0", "g1", "g2", "g3")
    assert router.training.cross_validated_apgr is not None
    assert router.training.cross_validated_apgr > 0.7


def test_router_file_round_trip(tmp_path: Path) -> None:
    paired = toy_outcomes()
    router = train_router(paired, TrainingOptions(folds=2, dimension=1 << 12))
    path = tmp_path / "router.json"
    router.save(path)
    loaded = LearnedRouter.load(path)
    prompts = ["Integrate x by parts", "Name colour teal", "something else"]
    assert loaded.weak_ok_probabilities(prompts).tolist() == (
        router.weak_ok_probabilities(prompts).tolist()
    )
    assert loaded.weak_ok_probability(prompts[0]) == pytest.approx(
        router.weak_ok_probability(prompts[0]), rel=1e-12
    )
    assert loaded.strong == "big"
    assert loaded.weak == "small"
    assert loaded.calibration == router.calibration
    assert prompt_digest(paired.prompts[0]) in loaded.training.prompt_digests


def test_router_file_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    path.write_text(json.dumps({"format": "something"}))
    with pytest.raises(RoutingError, match="is not a Thrifty router file"):
        LearnedRouter.load(path)


def test_router_file_damaged(tmp_path: Path) -> None:
    paired = toy_outcomes()
    router = train_router(paired, TrainingOptions(folds=2, dimension=1 << 12))
    path = tmp_path / "router.json"
    router.save(path)
    raw = json.loads(path.read_text())
    del raw["bias"]
    path.write_text(json.dumps(raw))
    with pytest.raises(RoutingError, match="is damaged"):
        LearnedRouter.load(path)


def test_threshold_for_targets() -> None:
    paired = toy_outcomes()
    router = train_router(paired, TrainingOptions(folds=4, dimension=1 << 12))
    table = router.calibration
    assert table[0].strong_share == 0.0
    assert table[0].threshold == 0.0
    assert table[-1].strong_share == 1.0
    assert table[-1].threshold == 1.0
    # Half the prompts need the strong model: sending the hardest half there
    # recovers the whole gap.
    threshold = router.threshold_for(target_quality=0.95)
    share_point = next(p for p in table if p.threshold == threshold)
    assert share_point.gap_recovered >= 0.95
    assert share_point.strong_share <= 0.55
    assert router.threshold_for(strong_share=0.0) == 0.0
    with pytest.raises(RoutingError, match="exactly one"):
        router.threshold_for()
    with pytest.raises(RoutingError, match="from 0 to 1"):
        router.threshold_for(target_quality=1.5)


def test_training_needs_both_labels() -> None:
    outcomes = tuple(Outcome(f"p{i}", "g", {"big": 1.0, "small": 1.0}) for i in range(10))
    paired = OutcomeSet(outcomes, ("big", "small"), ("toy",)).pair("big", "small")
    with pytest.raises(RoutingError, match="nothing to learn"):
        train_router(paired)


def test_folds_whole_groups() -> None:
    groups = ["b", "a", "c", "a", "d"]
    assert fold_of_each(groups, 2) == [1, 0, 0, 0, 1]
    assert fold_of_each(["x", "x", "x"], 2) == [0, 1, 0]


def test_score_with_router_drops_training_prompts() -> None:
    paired = toy_outcomes()
    router = train_router(paired.subset(range(60)), TrainingOptions(folds=0, dimension=1 << 12))
    held_out = score_with_router(paired, router)
    assert len(held_out.paired) == 60
    assert held_out.protocol["dropped_training_overlap"] == 60
    with pytest.raises(RoutingError, match="every prompt"):
        score_with_router(paired.subset(range(10)), router)


def test_cross_validated_scores_held_out() -> None:
    paired = toy_outcomes()
    held_out = score_cross_validated(paired, TrainingOptions(folds=4, dimension=1 << 12))
    assert held_out.protocol == {"mode": "cross-validation", "folds": 4, "split": "by group"}
    needs_strong = paired.strong_needed() == 1.0
    assert held_out.weak_ok[needs_strong].max() < held_out.weak_ok[~needs_strong].min()


def test_router_beats_random_held_out_domains() -> None:
    """Trained on every other MMLU domain, evaluated on the rest.

    Every evaluation domain is one the router never saw; the 95% bootstrap
    interval of its APGR must exclude random routing's 0.5.
    """
    domains = sorted(require_shared_data("routing/mmlu").glob("mmlu_*.csv"))
    training = read_outcomes(domains[0::2]).pair(STRONG, WEAK)
    held_out_data = read_outcomes(domains[1::2]).pair(STRONG, WEAK)
    assert not set(training.groups) & set(held_out_data.groups)

    router = train_router(training, TrainingOptions(folds=0))
    held_out = score_with_router(held_out_data, router)
    assert held_out.protocol["dropped_training_overlap"] == 0
    evaluation = evaluate(held_out.paired, held_out.weak_ok, bootstrap=1000, seed=0)
    learned = evaluation.method("router")
    assert learned.apgr_interval is not None
    assert learned.apgr_interval.low > 0.5
    assert learned.apgr > evaluation.method("random").apgr
    assert learned.calls_to_recover[0.5] is not None
    assert learned.calls_to_recover[0.5] < 0.5
