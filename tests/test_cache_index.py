"""The in-process vector index: exhaustive and clustered search per partition."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy", reason="the vector index needs numpy")

from thrifty.cache.index import (  # noqa: E402
    VectorIndex,
    spherical_kmeans,
    unit_vector,
    vector_from_bytes,
    vector_to_bytes,
)


def random_units(count: int, dimensions: int = 32, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimensions)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def near(vector: np.ndarray, seed: int) -> np.ndarray:
    """A unit vector at cosine similarity about 0.99 to ``vector``."""
    noise = np.random.default_rng(seed).standard_normal(vector.shape).astype(np.float32)
    return unit_vector(vector + 0.02 * noise)


def test_flat_search_finds_best_above_threshold() -> None:
    index = VectorIndex()
    vectors = random_units(50)
    for number, vector in enumerate(vectors):
        index.add("p", f"e{number}", vector, f"text {number}")
    matches = index.search("p", near(vectors[7], 0), threshold=0.95)
    assert [match.entry_id for match in matches] == ["e7"]
    assert matches[0].text == "text 7"
    assert matches[0].similarity > 0.95
    assert index.search("p", near(vectors[7], 0), threshold=0.9999) == []


def test_partitions_are_separate() -> None:
    index = VectorIndex()
    vector = random_units(1)[0]
    index.add("conversation-a", "a", vector, "What are its types?")
    assert index.search("conversation-b", vector, threshold=0.5) == []
    assert [m.entry_id for m in index.search("conversation-a", vector, threshold=0.5)] == ["a"]


def test_remove_and_replace() -> None:
    index = VectorIndex()
    first, second = random_units(2)
    index.add("p", "e1", first, "one")
    index.add("p", "e1", second, "two")
    assert len(index) == 1
    assert index.search("p", first, threshold=0.99) == []
    assert index.search("p", second, threshold=0.99)[0].text == "two"
    index.remove("e1")
    assert len(index) == 0
    assert index.search("p", second, threshold=0.5) == []


def test_clustered_search_finds_near_duplicates() -> None:
    index = VectorIndex(flat_limit=256, probes=4)
    vectors = random_units(3000, seed=2)
    index.add_many(("p", f"e{n}", vector, "") for n, vector in enumerate(vectors))
    for number in range(3000, 3100):
        index.add("p", f"late{number}", random_units(1, seed=number)[0], "")
    index.wait_for_clustering()
    found = 0
    for number in range(0, 3000, 30):
        matches = index.search("p", near(vectors[number], number), threshold=0.95)
        found += bool(matches) and matches[0].entry_id == f"e{number}"
    assert found == 100
    late = random_units(1, seed=3050)[0]
    assert index.search("p", late, threshold=0.999)[0].entry_id == "late3050"


def test_growth_triggers_background_clustering() -> None:
    index = VectorIndex(flat_limit=100)
    vectors = random_units(300, seed=4)
    for number, vector in enumerate(vectors):
        index.add("p", f"e{number}", vector, "")
    index.wait_for_clustering()
    assert index.search("p", vectors[250], threshold=0.999)[0].entry_id == "e250"


def test_spherical_kmeans_returns_unit_centroids() -> None:
    centroids = spherical_kmeans(random_units(500, seed=5), 10)
    assert centroids.shape == (10, 32)
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)


def test_vector_bytes_round_trip() -> None:
    vector = unit_vector([3.0, 4.0])
    assert vector.tolist() == pytest.approx([0.6, 0.8])
    assert vector_from_bytes(vector_to_bytes(vector)).tolist() == pytest.approx([0.6, 0.8])
