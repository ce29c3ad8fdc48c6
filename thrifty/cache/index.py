"""An in-process nearest-neighbour index of query embeddings, per partition.

Vectors are unit length, so the dot product is the cosine similarity. A
partition of up to ``flat_limit`` vectors is searched exhaustively. A larger
one is also clustered with spherical k-means into about sqrt(n) lists (an
inverted file index), and a search compares the query with the centroids
and scans only the ``probes`` nearest lists. A near-duplicate query lies
close to its entry, so both land in the same or a neighbouring list; a
match missed this way costs a cache miss, never a wrong answer.

Clustering runs on a background thread when a partition has doubled since
it was last clustered; searches and additions go on meanwhile under a lock
held only for short steps. The index is rebuilt from the store at start-up.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]

FLAT_LIMIT = 4096
DEFAULT_PROBES = 8
KMEANS_ITERATIONS = 10
# k-means is fitted on at most this many vectors; the rest are only assigned.
KMEANS_SAMPLE = 16_384
_SEED = 20240601


@dataclass(frozen=True, slots=True)
class Match:
    """An indexed entry near a query."""

    entry_id: str
    similarity: float
    text: str


class _GrowableMatrix:
    """Rows appended to a preallocated float32 array that doubles when full."""

    def __init__(self, dimensions: int, capacity: int = 64) -> None:
        self.rows: Vector = np.zeros((capacity, dimensions), dtype=np.float32)
        self.size = 0

    def append(self, vector: Vector) -> int:
        if self.size == len(self.rows):
            grown = np.zeros((len(self.rows) * 2, self.rows.shape[1]), dtype=np.float32)
            grown[: self.size] = self.rows[: self.size]
            self.rows = grown
        self.rows[self.size] = vector
        self.size += 1
        return self.size - 1

    def view(self) -> Vector:
        return self.rows[: self.size]


class _GrowablePositions:
    """Partition positions appended to an int array that doubles when full."""

    def __init__(self, capacity: int = 64) -> None:
        self.values: npt.NDArray[np.intp] = np.zeros(capacity, dtype=np.intp)
        self.size = 0

    def append(self, position: int) -> None:
        if self.size == len(self.values):
            grown = np.zeros(len(self.values) * 2, dtype=np.intp)
            grown[: self.size] = self.values
            self.values = grown
        self.values[self.size] = position
        self.size += 1

    def view(self) -> npt.NDArray[np.intp]:
        return self.values[: self.size]


@dataclass(slots=True)
class _Cluster:
    """One inverted list: positions into the partition and a copy of their vectors."""

    positions: _GrowablePositions
    vectors: _GrowableMatrix


@dataclass(slots=True)
class _Clustering:
    centroids: Vector
    clusters: list[_Cluster]
    trained_on: int


@dataclass(slots=True)
class _Partition:
    dimensions: int
    vectors: _GrowableMatrix
    ids: list[str | None] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    clustering: _Clustering | None = None
    training: bool = False
    live: int = 0


class VectorIndex:
    """Unit vectors grouped by partition key, each with its entry id and query text."""

    def __init__(
        self,
        *,
        flat_limit: int = FLAT_LIMIT,
        probes: int = DEFAULT_PROBES,
        background: bool = True,
    ) -> None:
        self.flat_limit = flat_limit
        self.probes = probes
        self.background = background
        self._partitions: dict[str, _Partition] = {}
        self._positions: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __len__(self) -> int:
        return len(self._positions)

    def add(self, partition: str, entry_id: str, vector: Vector, text: str) -> None:
        """Index a vector; an entry id already indexed is replaced."""
        with self._lock:
            self._remove_locked(entry_id)
            part = self._partitions.get(partition)
            if part is None:
                part = _Partition(len(vector), _GrowableMatrix(len(vector)))
                self._partitions[partition] = part
            position = part.vectors.append(vector)
            part.ids.append(entry_id)
            part.texts.append(text)
            part.live += 1
            self._positions[entry_id] = (partition, position)
            if part.clustering is not None:
                _assign(part.clustering, position, vector)
            retrain = self._needs_clustering(part)
        if retrain:
            self._cluster(partition, part)

    def add_many(self, items: Iterable[tuple[str, str, Vector, str]]) -> None:
        """Index (partition, entry id, vector, text) items, clustering each partition once."""
        background, self.background = self.background, False
        try:
            for partition, entry_id, vector, text in items:
                with self._lock:
                    self._remove_locked(entry_id)
                    part = self._partitions.get(partition)
                    if part is None:
                        part = _Partition(len(vector), _GrowableMatrix(len(vector)))
                        self._partitions[partition] = part
                    position = part.vectors.append(vector)
                    part.ids.append(entry_id)
                    part.texts.append(text)
                    part.live += 1
                    self._positions[entry_id] = (partition, position)
            for partition, part in list(self._partitions.items()):
                if part.live > self.flat_limit:
                    self._cluster(partition, part)
        finally:
            self.background = background

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._remove_locked(entry_id)

    def clear(self) -> None:
        with self._lock:
            self._partitions.clear()
            self._positions.clear()

    def search(
        self, partition: str, vector: Vector, threshold: float, limit: int = 4
    ) -> list[Match]:
        """Return up to ``limit`` entries with similarity at least ``threshold``, best first."""
        with self._lock:
            part = self._partitions.get(partition)
            if part is None or part.live == 0:
                return []
            if part.clustering is None:
                positions = np.arange(part.vectors.size)
                scores = part.vectors.view() @ vector
            else:
                positions, scores = _probe(part.clustering, vector, self.probes)
            best = _best_first(scores, limit * 2)
            matches: list[Match] = []
            for index in best:
                score = float(scores[index])
                if score < threshold or len(matches) == limit:
                    break
                position = int(positions[index])
                entry_id = part.ids[position]
                if entry_id is not None:
                    matches.append(Match(entry_id, score, part.texts[position]))
            return matches

    def wait_for_clustering(self) -> None:
        """Block until background clustering has finished (for tests and benchmarks)."""
        for thread in list(self._threads):
            thread.join()
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    def _remove_locked(self, entry_id: str) -> None:
        located = self._positions.pop(entry_id, None)
        if located is None:
            return
        partition, position = located
        part = self._partitions[partition]
        part.ids[position] = None
        part.live -= 1

    def _needs_clustering(self, part: _Partition) -> bool:
        if part.training or part.live <= self.flat_limit:
            return False
        return part.clustering is None or part.live >= 2 * part.clustering.trained_on

    def _cluster(self, partition: str, part: _Partition) -> None:
        with self._lock:
            part.training = True
            snapshot = part.vectors.view().copy()
            alive = np.array([entry_id is not None for entry_id in part.ids], dtype=bool)
        if not self.background:
            self._train(partition, part, snapshot, alive)
            return
        thread = threading.Thread(
            target=self._train,
            args=(partition, part, snapshot, alive),
            name="thrifty-cache-kmeans",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _train(
        self, partition: str, part: _Partition, snapshot: Vector, alive: npt.NDArray[np.bool_]
    ) -> None:
        try:
            live_positions = np.flatnonzero(alive)
            count = max(1, round(math.sqrt(len(live_positions))))
            centroids = spherical_kmeans(snapshot[live_positions], count)
            clustering = _Clustering(
                centroids=centroids,
                clusters=[
                    _Cluster(_GrowablePositions(), _GrowableMatrix(snapshot.shape[1]))
                    for _ in range(len(centroids))
                ],
                trained_on=len(live_positions),
            )
            labels = _nearest_centroids(centroids, snapshot[live_positions])
            for position, label in zip(live_positions.tolist(), labels.tolist(), strict=True):
                cluster = clustering.clusters[label]
                cluster.positions.append(position)
                cluster.vectors.append(snapshot[position])
            with self._lock:
                # Vectors added while clustering ran are assigned now.
                for added in range(len(snapshot), part.vectors.size):
                    _assign(clustering, added, part.vectors.rows[added])
                part.clustering = clustering
            logger.info(
                "cache index: clustered %d vectors into %d lists", len(live_positions), count
            )
        finally:
            part.training = False


def spherical_kmeans(vectors: Vector, count: int, iterations: int = KMEANS_ITERATIONS) -> Vector:
    """Cluster unit vectors by cosine similarity; return ``count`` unit centroids."""
    rng = np.random.default_rng(_SEED)
    sample = vectors
    if len(vectors) > KMEANS_SAMPLE:
        sample = vectors[rng.choice(len(vectors), KMEANS_SAMPLE, replace=False)]
    count = min(count, len(sample))
    centroids = sample[rng.choice(len(sample), count, replace=False)].copy()
    for _ in range(iterations):
        labels = _nearest_centroids(centroids, sample)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, sample)
        sizes = np.bincount(labels, minlength=count)
        empty = np.flatnonzero(sizes == 0)
        sums[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return centroids


def _nearest_centroids(centroids: Vector, vectors: Vector) -> npt.NDArray[np.intp]:
    labels = np.empty(len(vectors), dtype=np.intp)
    for start in range(0, len(vectors), 8192):
        block = vectors[start : start + 8192]
        labels[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return labels


def _assign(clustering: _Clustering, position: int, vector: Vector) -> None:
    label = int(np.argmax(clustering.centroids @ vector))
    cluster = clustering.clusters[label]
    cluster.positions.append(position)
    cluster.vectors.append(vector)


def _probe(
    clustering: _Clustering, vector: Vector, probes: int
) -> tuple[npt.NDArray[np.intp], Vector]:
    near = np.argsort(-(clustering.centroids @ vector))[:probes]
    positions: list[npt.NDArray[np.intp]] = []
    scores: list[Vector] = []
    for label in near:
        cluster = clustering.clusters[int(label)]
        if cluster.vectors.size:
            positions.append(cluster.positions.view())
            scores.append(cluster.vectors.view() @ vector)
    if not positions:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
    return np.concatenate(positions), np.concatenate(scores)


def _best_first(scores: Vector, count: int) -> npt.NDArray[np.intp]:
    """Return the indexes of the ``count`` highest scores, highest first."""
    if len(scores) > count:
        top = np.argpartition(-scores, count)[:count]
        return top[np.argsort(-scores[top])]
    return np.argsort(-scores)


def unit_vector(values: npt.ArrayLike) -> Vector:
    """Return values as a float32 vector scaled to unit length (a zero vector stays zero)."""
    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def vector_from_bytes(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def vector_to_bytes(vector: Vector) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()
