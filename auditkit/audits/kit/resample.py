"""Order statistics of bootstrap replicates, all rows at once (pure: numpy only).

A block bootstrap replicate pools the parts one row of `picks` names and reads one order
statistic of the pool (a median, LoadGen's early-stopping estimate). Doing that row by row
costs a Python-level concatenate and partition per replicate (2000 of them per interval);
here the parts are padded into one matrix and each chunk of rows is sorted in one call.

For a row whose pool has n values sorted as s[0] <= ... <= s[n-1], with (lo, hi) =
`ranks(n)`, the replicate is (s[lo] + s[hi]) / 2: the median is ranks (n-1)//2 and n//2,
exactly what numpy.median returns; a single order statistic is lo = hi (x + x) / 2 = x.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: rows sorted per call: bounds the padded matrix (rows x parts x longest part) in memory
CHUNK_ROWS = 256

Ranks = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def median_ranks(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two middle ranks of pools of n values (equal when n is odd)."""
    return (n - 1) // 2, n // 2


def pooled_order_statistic(
    parts: Sequence[np.ndarray], picks: np.ndarray, ranks: Ranks
) -> np.ndarray:
    """One value per row of `picks` (rows of part numbers, drawn with replacement): the mean
    of the pooled values at ranks `ranks(n)`, n being the row's pool size."""
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    padded = np.full((len(parts), max(int(sizes.max(initial=0)), 1)), np.inf)
    for i, part in enumerate(parts):
        padded[i, : len(part)] = part  # +inf padding sorts after every real value
    out = np.empty(len(picks))
    for start in range(0, len(picks), CHUNK_ROWS):
        rows = picks[start : start + CHUNK_ROWS]
        pooled = np.sort(padded[rows].reshape(len(rows), -1), axis=1)
        lo, hi = ranks(sizes[rows].sum(axis=1))
        at = np.arange(len(rows))
        out[start : start + len(rows)] = (pooled[at, lo] + pooled[at, hi]) / 2
    return out
