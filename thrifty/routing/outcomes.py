"""Per-prompt outcomes: how well each model answered each prompt.

A router is trained and evaluated on outcome files. Each outcome is one
prompt with a quality score per model (1.0 or 0.0 for a right or wrong
answer, or a judge's score) and, where the file records them, what each
model's answer cost and contained.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from thrifty.errors import RoutingError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One prompt and each model's result on it.

    ``prompt`` is the text a router scores: the first user turn of a
    multi-turn conversation, whose user turns are all in ``turns``.
    ``group`` names the file or domain the prompt came from, so that
    evaluation can hold whole groups out of training. ``costs`` and
    ``answers`` hold what the file recorded per model, if anything.
    """

    prompt: str
    group: str
    scores: Mapping[str, float]
    costs: Mapping[str, Decimal] = field(default_factory=dict)
    answers: Mapping[str, str] = field(default_factory=dict)
    turns: tuple[str, ...] = ()

    @property
    def input_text(self) -> str:
        """All the user input the models were sent."""
        return "\n\n".join(self.turns) if self.turns else self.prompt

    @property
    def calls(self) -> int:
        """How many requests a model answered for this outcome: one per turn."""
        return max(len(self.turns), 1)


@dataclass(frozen=True, slots=True)
class OutcomeSet:
    """The outcomes read from a list of files, after decontamination."""

    outcomes: tuple[Outcome, ...]
    models: tuple[str, ...]
    sources: tuple[str, ...]
    dropped_contaminated: int = 0

    def pair(self, strong: str, weak: str) -> PairedOutcomes:
        """Select the outcomes that score both models; raise RoutingError if none do."""
        for model in (strong, weak):
            if model not in self.models:
                raise RoutingError(
                    f"model {model!r} has no scores in {', '.join(self.sources)}; "
                    f"the files score {', '.join(self.models)}"
                )
        if strong == weak:
            raise RoutingError(f"the strong and the weak model are both {strong!r}; name two")
        kept = tuple(o for o in self.outcomes if strong in o.scores and weak in o.scores)
        if not kept:
            raise RoutingError(
                f"no prompt in {', '.join(self.sources)} scores both {strong!r} and {weak!r}"
            )
        return PairedOutcomes(strong=strong, weak=weak, outcomes=kept)


@dataclass(frozen=True)
class PairedOutcomes:
    """Outcomes of one strong and one weak model, with their scores as arrays."""

    strong: str
    weak: str
    outcomes: tuple[Outcome, ...]
    strong_scores: FloatArray = field(init=False, repr=False, compare=False)
    weak_scores: FloatArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strong_scores", _scores(self.outcomes, self.strong))
        object.__setattr__(self, "weak_scores", _scores(self.outcomes, self.weak))

    def __len__(self) -> int:
        return len(self.outcomes)

    @property
    def prompts(self) -> list[str]:
        return [outcome.prompt for outcome in self.outcomes]

    @property
    def groups(self) -> list[str]:
        return [outcome.group for outcome in self.outcomes]

    def strong_needed(self) -> FloatArray:
        """Return 1.0 where the strong model scored higher than the weak one, else 0.0."""
        return (self.strong_scores > self.weak_scores).astype(np.float64)

    def subset(self, indices: Sequence[int]) -> PairedOutcomes:
        return PairedOutcomes(self.strong, self.weak, tuple(self.outcomes[i] for i in indices))


def _scores(outcomes: Sequence[Outcome], model: str) -> FloatArray:
    return np.array([outcome.scores[model] for outcome in outcomes], dtype=np.float64)
