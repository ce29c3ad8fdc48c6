"""The learned router: logistic regression over hashed n-grams of the prompt.

It estimates the probability that the weak (cheaper) model's answer is good
enough, meaning that the strong model would not have scored higher. It is
trained with full-batch AdaGrad on the L2-regularized log loss, with NumPy on
the CPU, and saved as one JSON file; scoring needs no network and no model
download.

Training also cross-validates on the training data alone (whole groups held
out, so for MMLU whole domains) and stores, for each share of strong calls,
the score threshold that gives it and the quality gap it recovered. A route
then picks its threshold for a target quality or a target share of strong
calls from that table.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.errors import RoutingError
from thrifty.routing.curve import Ranking, RoutingCurve
from thrifty.routing.features import FloatArray, HashedNgrams, SparseRows
from thrifty.routing.outcomes import PairedOutcomes

logger = logging.getLogger(__name__)

ROUTER_FORMAT = "thrifty-router"
ROUTER_VERSION = 1
ROUTER_KIND = "hashed-ngram-logistic"
DEFAULT_FOLDS = 5
_CALIBRATION_STEPS = 100
# Probabilities are kept inside (0, 1) so that threshold 0 means "always the
# weak model" and threshold 1 "always the strong model".
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    """Hyperparameters of the logistic regression and its cross-validation.

    ``folds`` below 2 skips cross-validation, and the router file then has
    no threshold table.
    """

    l2: float = 1e-4
    iterations: int = 200
    learning_rate: float = 0.5
    folds: int = DEFAULT_FOLDS
    dimension: int = HashedNgrams().dimension

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.learning_rate <= 0 or self.l2 < 0 or self.dimension < 2:
            raise RoutingError(
                f"invalid training options {self!r}; iterations and dimension must be "
                "positive, learning_rate above 0 and l2 at least 0"
            )


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """One row of the threshold table, from cross-validation on the training data.

    Sending a prompt to the strong model when its score is below
    ``threshold`` sent ``strong_share`` of the training prompts there and
    recovered ``gap_recovered`` of the quality gap between the two models.
    """

    strong_share: float
    threshold: float
    gap_recovered: float


@dataclass(frozen=True, slots=True)
class TrainingInfo:
    """The data a router was trained on, so that evaluation can exclude it."""

    sources: tuple[str, ...]
    prompts: int
    prompt_digests: frozenset[str] = field(repr=False)
    options: TrainingOptions
    created_at: str
    cross_validated_apgr: float | None = None


class LearnedRouter:
    """A trained router: scores a prompt with P(the weak model's answer is good enough)."""

    def __init__(
        self,
        *,
        strong: str,
        weak: str,
        features: HashedNgrams,
        weights: FloatArray,
        bias: float,
        calibration: Sequence[CalibrationPoint],
        training: TrainingInfo,
    ) -> None:
        self.strong = strong
        self.weak = weak
        self.features = features
        self.weights = weights
        self.bias = bias
        self.calibration = tuple(calibration)
        self.training = training

    def weak_ok_probability(self, prompt: str) -> float:
        """Return the probability that the weak model answers ``prompt`` well enough."""
        indices, values = self.features.transform(prompt)
        logit = float(np.dot(self.weights[indices], values)) + self.bias
        return _clip_probability(1.0 - _sigmoid(logit))

    def weak_ok_probabilities(self, prompts: Sequence[str]) -> FloatArray:
        logits = self.features.matrix(prompts).dot(self.weights) + self.bias
        strong_needed = 1.0 / (1.0 + np.exp(-logits))
        return np.clip(1.0 - strong_needed, _EPSILON, 1.0 - _EPSILON)

    def threshold_for(
        self, *, target_quality: float | None = None, strong_share: float | None = None
    ) -> float:
        """Return the score threshold for a quality target or a share of strong calls.

        ``target_quality`` is the fraction of the quality gap between the two
        models to recover (0.8 for 80%); the threshold is that of the
        smallest share of strong calls that recovered it in cross-validation.
        """
        if (target_quality is None) == (strong_share is None):
            raise RoutingError("give exactly one of target_quality and strong_share")
        if not self.calibration:
            raise RoutingError("the router file has no threshold table; train it again")
        if strong_share is not None:
            _check_fraction(strong_share, "strong_share")
            point = min(self.calibration, key=lambda p: abs(p.strong_share - strong_share))
            return point.threshold
        assert target_quality is not None
        _check_fraction(target_quality, "target_quality")
        for point in self.calibration:
            if point.gap_recovered >= target_quality:
                return point.threshold
        return self.calibration[-1].threshold

    def save(self, path: Path) -> None:
        """Write the router file (JSON) to ``path``."""
        try:
            path.write_text(json.dumps(self._to_json(), indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise RoutingError(f"cannot write router file {path}: {exc.strerror}") from exc

    @classmethod
    def load(cls, path: Path) -> LearnedRouter:
        """Read a router file written by ``save``."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RoutingError(f"cannot read router file {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise RoutingError(f"router file {path} is not valid JSON: {exc.msg}") from exc
        return _from_json(raw, path)

    def _to_json(self) -> dict[str, Any]:
        training = self.training
        return {
            "format": ROUTER_FORMAT,
            "version": ROUTER_VERSION,
            "kind": ROUTER_KIND,
            "strong": self.strong,
            "weak": self.weak,
            "features": {
                "dimension": self.features.dimension,
                "max_chars": self.features.max_chars,
            },
            "bias": self.bias,
            "weights": _pack_floats(self.weights),
            "calibration": [asdict(point) for point in self.calibration],
            "training": {
                "sources": list(training.sources),
                "prompts": training.prompts,
                "prompt_digests": sorted(training.prompt_digests),
                "options": asdict(training.options),
                "created_at": training.created_at,
                "cross_validated_apgr": training.cross_validated_apgr,
            },
        }


def prompt_digest(prompt: str) -> str:
    """Return a short stable digest of a prompt, to recognise training prompts."""
    return hashlib.blake2b(prompt.encode("utf-8"), digest_size=8).hexdigest()


def train_router(paired: PairedOutcomes, options: TrainingOptions | None = None) -> LearnedRouter:
    """Train a router on outcomes and cross-validate its threshold table."""
    options = options or TrainingOptions()
    features = HashedNgrams(dimension=options.dimension)
    matrix = features.matrix(paired.prompts)
    labels = paired.strong_needed()
    if labels.min() == labels.max():
        raise RoutingError(
            f"the strong model scores higher on {'every' if labels[0] else 'no'} training "
            "prompt, so there is nothing to learn; add outcomes where the models differ"
        )

    weights, bias = fit_logistic(matrix, labels, options)
    # The file stores float32 weights; round now so that a saved and
    # reloaded router scores exactly like the one in memory.
    weights = weights.astype(np.float32).astype(np.float64)
    held_out = _held_out_or_none(paired, matrix, options)
    calibration = calibrate(held_out, paired) if held_out is not None else []
    apgr = _apgr(held_out, paired) if held_out is not None else None
    training = TrainingInfo(
        sources=tuple(sorted(set(paired.groups))),
        prompts=len(paired),
        prompt_digests=frozenset(prompt_digest(p) for p in paired.prompts),
        options=options,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        cross_validated_apgr=apgr,
    )
    return LearnedRouter(
        strong=paired.strong,
        weak=paired.weak,
        features=features,
        weights=weights,
        bias=bias,
        calibration=calibration,
        training=training,
    )


def fit_logistic(
    matrix: SparseRows, labels: FloatArray, options: TrainingOptions
) -> tuple[FloatArray, float]:
    """Fit P(label = 1) by full-batch AdaGrad on the mean log loss plus an L2 penalty.

    Only the features that occur are optimized; the weights of the others
    stay 0, as the full problem would leave them.
    """
    used, local = np.unique(matrix.indices, return_inverse=True)
    compact = SparseRows(local.astype(np.int64), matrix.values, matrix.indptr, len(used))
    rows = compact.row_ids()
    weights = np.zeros(len(used))
    bias = 0.0
    squared = np.full(len(used), 1e-8)
    bias_squared = 1e-8
    count = compact.count
    for _ in range(options.iterations):
        logits = compact.dot(weights, rows) + bias
        residual = (1.0 / (1.0 + np.exp(-logits)) - labels) / count
        gradient = compact.transpose_dot(residual, rows) + options.l2 * weights
        bias_gradient = float(residual.sum())

        squared += gradient * gradient
        bias_squared += bias_gradient * bias_gradient
        weights -= options.learning_rate * gradient / np.sqrt(squared)
        bias -= options.learning_rate * bias_gradient / math.sqrt(bias_squared)

    full = np.zeros(matrix.dimension)
    full[used] = weights
    return full, bias


def fold_of_each(groups: Sequence[str], folds: int) -> list[int]:
    """Assign each prompt a fold: whole groups per fold when there are enough groups.

    Groups are dealt to folds in sorted order, so with two folds MMLU's
    domains alternate. With fewer groups than folds, prompts are dealt to
    folds by position instead.
    """
    names = sorted(set(groups))
    if len(names) >= folds:
        fold_of_group = {name: i % folds for i, name in enumerate(names)}
        return [fold_of_group[group] for group in groups]
    return [i % folds for i in range(len(groups))]


def out_of_fold_probabilities(
    paired: PairedOutcomes, matrix: SparseRows, options: TrainingOptions
) -> FloatArray:
    """Return each prompt's score from a model trained without its fold.

    Raises RoutingError when a fold leaves no training prompts where the
    two models differ.
    """
    if options.folds < 2:
        raise RoutingError(f"cross-validation needs 2 folds or more, not {options.folds}")
    folds = np.array(fold_of_each(paired.groups, options.folds))
    labels = paired.strong_needed()
    scores = np.zeros(len(paired))
    for fold in range(options.folds):
        test = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        if len(test) == 0:
            continue
        if len(train) == 0 or labels[train].min() == labels[train].max():
            raise RoutingError(
                f"fold {fold + 1} of {options.folds} leaves no training prompts where the "
                "models differ; use fewer folds or more data"
            )
        weights, bias = fit_logistic(matrix.take(train.tolist()), labels[train], options)
        logits = matrix.take(test.tolist()).dot(weights) + bias
        scores[test] = 1.0 / (1.0 + np.exp(logits))
    return np.clip(scores, _EPSILON, 1.0 - _EPSILON)


def calibrate(probabilities: FloatArray, paired: PairedOutcomes) -> list[CalibrationPoint]:
    """Build the threshold table from held-out probabilities."""
    curve = _curve(probabilities, paired)
    if curve is None:
        return []
    ordered = np.sort(probabilities)
    count = len(ordered)
    points = []
    for step in range(_CALIBRATION_STEPS + 1):
        share = step / _CALIBRATION_STEPS
        strong_calls = round(share * count)
        if strong_calls == 0:
            threshold = 0.0
        elif strong_calls >= count:
            threshold = 1.0
        else:
            threshold = float(ordered[strong_calls])
        points.append(
            CalibrationPoint(
                strong_share=share,
                threshold=threshold,
                gap_recovered=round(curve.recovered_at(share), 6),
            )
        )
    return points


def _held_out_or_none(
    paired: PairedOutcomes, matrix: SparseRows, options: TrainingOptions
) -> FloatArray | None:
    if options.folds < 2:
        return None
    if len(paired) < options.folds * 2:
        logger.warning(
            "%d training prompts are too few for %d-fold cross-validation; "
            "the router file gets no threshold table",
            len(paired),
            options.folds,
        )
        return None
    try:
        return out_of_fold_probabilities(paired, matrix, options)
    except RoutingError as exc:
        logger.warning("the router file gets no threshold table: %s", exc)
        return None


def _curve(probabilities: FloatArray, paired: PairedOutcomes) -> RoutingCurve | None:
    try:
        return Ranking.by_priority(-probabilities).curve(paired.strong_scores, paired.weak_scores)
    except RoutingError:
        return None


def _apgr(probabilities: FloatArray, paired: PairedOutcomes) -> float | None:
    curve = _curve(probabilities, paired)
    return None if curve is None else round(curve.apgr(), 6)


def _from_json(raw: Any, path: Path) -> LearnedRouter:
    if not isinstance(raw, dict) or raw.get("format") != ROUTER_FORMAT:
        raise RoutingError(
            f"{path} is not a Thrifty router file; write one with `thrifty route train`"
        )
    if raw.get("version") != ROUTER_VERSION or raw.get("kind") != ROUTER_KIND:
        raise RoutingError(
            f"router file {path} is version {raw.get('version')!r} of kind {raw.get('kind')!r}; "
            f"this Thrifty reads version {ROUTER_VERSION} of kind {ROUTER_KIND!r}"
        )
    try:
        features = HashedNgrams(**raw["features"])
        training = raw["training"]
        router = LearnedRouter(
            strong=str(raw["strong"]),
            weak=str(raw["weak"]),
            features=features,
            weights=_unpack_floats(raw["weights"], features.dimension),
            bias=float(raw["bias"]),
            calibration=[CalibrationPoint(**point) for point in raw["calibration"]],
            training=TrainingInfo(
                sources=tuple(training["sources"]),
                prompts=int(training["prompts"]),
                prompt_digests=frozenset(training["prompt_digests"]),
                options=TrainingOptions(**training["options"]),
                created_at=str(training["created_at"]),
                cross_validated_apgr=training.get("cross_validated_apgr"),
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RoutingError(f"router file {path} is damaged: {exc!r}; train it again") from exc
    return router


def _pack_floats(values: FloatArray) -> str:
    data = values.astype("<f4").tobytes()
    return base64.b64encode(zlib.compress(data, 6)).decode("ascii")


def _unpack_floats(text: str, dimension: int) -> FloatArray:
    data = zlib.decompress(base64.b64decode(text))
    values = np.frombuffer(data, dtype="<f4").astype(np.float64)
    if len(values) != dimension:
        raise ValueError(f"{len(values)} weights for {dimension} features")
    return values


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    exp = math.exp(value)
    return exp / (1.0 + exp)


def _clip_probability(value: float) -> float:
    return min(max(value, _EPSILON), 1.0 - _EPSILON)


def _check_fraction(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise RoutingError(f"{name} is {value!r}; give a fraction from 0 to 1")
