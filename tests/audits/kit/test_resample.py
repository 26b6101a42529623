"""The all-rows-at-once bootstrap order statistics equal the row-by-row ones exactly: the
verdicts and files of recorded runs must not move by a bit when the computation got faster."""

from __future__ import annotations

import numpy as np
import pytest

from auditkit.audits.kit.ratio import early_stopping_ranks, early_stopping_value
from auditkit.audits.kit.resample import median_ranks, pooled_order_statistic


def _parts(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    # unequal sizes (a block that lost queries), ties (a server without jitter), heavy tails
    return [np.round(rng.lognormal(3, 1, size=int(rng.integers(1, 40))), 1) for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_pooled_median_equals_numpy_median_of_each_row(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = _parts(rng, 9)
    picks = rng.integers(0, len(parts), size=(700, 8))  # more rows than one chunk
    expected = [np.median(np.concatenate([parts[j] for j in row])) for row in picks]
    assert pooled_order_statistic(parts, picks, median_ranks).tolist() == expected


@pytest.mark.parametrize("percentile", [0.9, 0.99])
def test_pooled_early_stopping_equals_loadgens_estimate_of_each_row(percentile: float) -> None:
    rng = np.random.default_rng(7)
    parts = _parts(rng, 12)
    picks = rng.integers(0, len(parts), size=(300, 11))
    expected = [
        early_stopping_value(np.concatenate([parts[j] for j in r]), percentile) for r in picks
    ]
    got = pooled_order_statistic(parts, picks, early_stopping_ranks(percentile))
    assert got.tolist() == expected
