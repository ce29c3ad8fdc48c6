"""Hashed word n-gram features of a prompt, for the learned router.

Each lower-cased word and punctuation mark, and each pair of neighbours,
is hashed with CRC-32 into one of ``dimension`` buckets; a bucket's value is
``log(1 + count)`` and a row is scaled to unit length. CRC-32 is used instead
of Python's ``hash`` because that one changes between processes, and a router
file must score the same in every process. One extra feature marks the
prompt's length in words on a log-2 scale.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

DEFAULT_DIMENSION = 1 << 18
# A prompt longer than this is featurized from its first three quarters and
# last quarter of characters, which bounds the time of one decision.
DEFAULT_MAX_CHARS = 8000
_TOKEN = re.compile(r"\w+|[^\w\s]")
_LENGTH_BUCKETS = 16


@dataclass(frozen=True, slots=True)
class SparseRows:
    """Rows of a sparse matrix in compressed-row form."""

    indices: IntArray
    values: FloatArray
    indptr: IntArray
    dimension: int

    @property
    def count(self) -> int:
        return len(self.indptr) - 1

    def row_ids(self) -> IntArray:
        """Return the row number of each stored value."""
        return np.repeat(np.arange(self.count, dtype=np.int64), np.diff(self.indptr))

    def dot(self, weights: FloatArray, row_ids: IntArray | None = None) -> FloatArray:
        """Return each row's dot product with ``weights``."""
        rows = self.row_ids() if row_ids is None else row_ids
        products = self.values * weights[self.indices]
        return np.bincount(rows, weights=products, minlength=self.count).astype(np.float64)

    def transpose_dot(self, per_row: FloatArray, row_ids: IntArray | None = None) -> FloatArray:
        """Return the matrix's transpose times ``per_row``: one sum per feature."""
        rows = self.row_ids() if row_ids is None else row_ids
        products = self.values * per_row[rows]
        return np.bincount(self.indices, weights=products, minlength=self.dimension).astype(
            np.float64
        )

    def take(self, rows: Sequence[int]) -> SparseRows:
        """Return the selected rows, in the order given."""
        starts, ends = self.indptr[:-1][list(rows)], self.indptr[1:][list(rows)]
        pieces = [np.arange(start, end) for start, end in zip(starts, ends, strict=True)]
        positions = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        return SparseRows(self.indices[positions], self.values[positions], indptr, self.dimension)


@dataclass(frozen=True, slots=True)
class HashedNgrams:
    """The featurizer: word unigrams and bigrams hashed into ``dimension`` buckets."""

    dimension: int = DEFAULT_DIMENSION
    max_chars: int = DEFAULT_MAX_CHARS

    def transform(self, text: str) -> tuple[IntArray, FloatArray]:
        """Return the bucket numbers and values of one prompt's features."""
        counts = self._counts(self._clip(text))
        indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.log1p(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        norm = float(np.sqrt(np.dot(values, values)))
        return indices, values / norm

    def matrix(self, texts: Sequence[str]) -> SparseRows:
        """Featurize many prompts into one sparse matrix."""
        indices: list[IntArray] = []
        values: list[FloatArray] = []
        lengths = [0]
        for text in texts:
            row_indices, row_values = self.transform(text)
            indices.append(row_indices)
            values.append(row_values)
            lengths.append(len(row_indices))
        return SparseRows(
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
            np.concatenate(values) if values else np.zeros(0, dtype=np.float64),
            np.cumsum(lengths, dtype=np.int64),
            self.dimension,
        )

    def _clip(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        head = self.max_chars * 3 // 4
        return text[:head] + " " + text[-(self.max_chars - head) :]

    def _counts(self, text: str) -> dict[int, int]:
        tokens = _TOKEN.findall(text.lower())
        counts: dict[int, int] = {}
        previous = ""
        for token in tokens:
            self._add(counts, token)
            if previous:
                self._add(counts, previous + " " + token)
            previous = token
        bucket = min(int(math.log2(len(tokens) + 1)), _LENGTH_BUCKETS - 1)
        self._add(counts, f"\x00length:{bucket}")
        return counts

    def _add(self, counts: dict[int, int], feature: str) -> None:
        index = zlib.crc32(feature.encode("utf-8")) % self.dimension
        counts[index] = counts.get(index, 0) + 1
