"""LoadGen early stopping: upstream's own test vectors must reproduce exactly."""

import pytest

from auditkit import early_stopping as es


def test_h_at_p90_matches_upstream() -> None:
    expected = [44, 63, 79, 94, 109, 122, 136, 149, 162, 174, 187]
    assert [es.min_passing_count(t, 0.90) for t in range(11)] == expected


def test_h_at_p99_matches_upstream() -> None:
    expected = [459, 661, 836, 998, 1153, 1302, 1447, 1589, 1728, 1865, 2000]
    assert [es.min_passing_count(t, 0.99) for t in range(11)] == expected


@pytest.mark.parametrize(
    ("n", "t"), [(63, None), (64, 1), (100, 3), (200, 10), (500, 34), (1000, 78), (10000, 930)]
)
def test_single_stream_overlatency_count(n: int, t: int | None) -> None:
    assert es.overlatency_count(n, 0.90) == t


@pytest.mark.parametrize(("n", "t"), [(661, None), (662, 1), (1000, 2), (10000, 77)])
def test_multi_stream_overlatency_count(n: int, t: int | None) -> None:
    assert es.overlatency_count(n, 0.99) == t


def test_estimate_picks_sorted_n_minus_t() -> None:
    latencies = list(range(1, 101))  # 1..100 ns, shuffled order must not matter
    latencies.reverse()
    est = es.estimate(latencies, 0.90)
    assert est.overlatency_count == 3
    assert est.latency_ns == sorted(latencies)[100 - 3]


def test_too_few_queries_is_invalid() -> None:
    est = es.estimate([5] * 63, 0.90)
    assert not est.valid and est.latency_ns is None
    assert es.min_queries(0.90) == 64 and es.min_queries(0.99) == 662


def test_server_validity() -> None:
    fast = [1_000] * 1000
    assert es.server_latency_valid(fast, target_ns=2_000) == (True, 0)
    slow = [1_000] * 900 + [5_000] * 100
    valid, t = es.server_latency_valid(slow, target_ns=2_000)
    assert not valid and t == 100
