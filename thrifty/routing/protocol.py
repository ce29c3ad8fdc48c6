"""Honest evaluation runs: a router never scores the prompts it was trained on.

Two protocols:

- ``score_with_router``: a router file scores other files; prompts that
  were in its training data are dropped and counted;
- ``score_cross_validated``: the outcomes are split into folds by group
  (for MMLU, whole domains), and each fold is scored by a router trained on
  the other folds only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thrifty.errors import RoutingError
from thrifty.routing.features import FloatArray, HashedNgrams
from thrifty.routing.learned import (
    LearnedRouter,
    TrainingOptions,
    out_of_fold_probabilities,
    prompt_digest,
)
from thrifty.routing.outcomes import PairedOutcomes


@dataclass(frozen=True)
class HeldOutScores:
    """Router scores of outcomes the router never saw, and how they were obtained."""

    paired: PairedOutcomes
    weak_ok: FloatArray
    protocol: dict[str, Any]


def score_with_router(paired: PairedOutcomes, router: LearnedRouter) -> HeldOutScores:
    """Score outcomes with a trained router, dropping its training prompts."""
    seen = router.training.prompt_digests
    kept = [i for i, prompt in enumerate(paired.prompts) if prompt_digest(prompt) not in seen]
    if not kept:
        raise RoutingError(
            "every prompt in these files was in the router's training data; "
            "evaluate on files it was not trained on"
        )
    held_out = paired.subset(kept)
    return HeldOutScores(
        paired=held_out,
        weak_ok=router.weak_ok_probabilities(held_out.prompts),
        protocol={
            "mode": "router file",
            "router_trained_on": list(router.training.sources),
            "router_training_prompts": router.training.prompts,
            "dropped_training_overlap": len(paired) - len(kept),
        },
    )


def score_cross_validated(
    paired: PairedOutcomes, options: TrainingOptions | None = None
) -> HeldOutScores:
    """Score each fold with a router trained on the other folds."""
    options = options or TrainingOptions()
    matrix = HashedNgrams(dimension=options.dimension).matrix(paired.prompts)
    scores = out_of_fold_probabilities(paired, matrix, options)
    group_count = len(set(paired.groups))
    return HeldOutScores(
        paired=paired,
        weak_ok=scores,
        protocol={
            "mode": "cross-validation",
            "folds": options.folds,
            "split": "by group" if group_count >= options.folds else "by prompt position",
        },
    )
