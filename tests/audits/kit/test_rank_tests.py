"""The decisions' significance tests give scipy.stats' answers without importing it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from auditkit.audits.kit import rank_tests


@pytest.mark.parametrize("sizes", [(3, 5), (8, 40), (9, 9), (16, 16), (200, 64)])
@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_matches_scipy(sizes: tuple[int, int], ties: bool) -> None:
    rng = np.random.default_rng(sum(sizes) + ties)
    for _ in range(20):
        x, y = rng.lognormal(0, 0.5, sizes[0]), rng.lognormal(0.2, 0.5, sizes[1])
        if ties:
            x, y = np.round(x, 1), np.round(y, 1)
        expected = stats.mannwhitneyu(x, y, alternative="less").pvalue
        assert rank_tests.mann_whitney_less(x, y) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("n", [1, 4, 5, 17, 60])
def test_sign_test_matches_scipy_binomtest(n: int) -> None:
    for k in range(n + 1):
        for alternative in ("greater", "two-sided"):
            expected = stats.binomtest(k, n, 0.5, alternative=alternative).pvalue
            got = rank_tests.sign_test(k, n, alternative)  # type: ignore[arg-type]
            assert got == pytest.approx(expected, rel=1e-12), (k, n, alternative)


@pytest.mark.parametrize("n", [16, 100, 1000])
def test_spearman_matches_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.arange(n, dtype=float)
    for slope in (0.0, 0.001, 0.01):
        y = np.round(rng.normal(10 + slope * x, 1.0), 2)
        rho, p = stats.spearmanr(x, y)
        assert rank_tests.spearman(x, y) == pytest.approx((rho, p), rel=1e-10, abs=1e-300)


def test_normal_tails_match_scipy() -> None:
    for z in (-3.0, 0.0, 1.96, 5.0, 12.0):
        assert rank_tests.normal_sf(z) == pytest.approx(stats.norm.sf(z), rel=1e-12)
    for p in (0.5, 0.025, 1e-4, 1e-9):
        assert rank_tests.normal_isf(p) == pytest.approx(stats.norm.isf(p), rel=1e-12)


def test_deciding_a_verdict_never_imports_scipy_stats() -> None:
    """The point of the module: a process that decides TEST04 stays clear of scipy.stats."""
    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from auditkit.audits.kit import ratio, rank_tests\n"
        "from auditkit.audits.test04 import decision\n"
        "ratio.level_at_look(0.05, [0.5, 1.0], 1)\n"
        "rank_tests.mann_whitney_less(np.arange(20.0), np.arange(30.0))\n"
        "rank_tests.spearman(np.arange(20.0), np.arange(20.0) ** 2)\n"
        "assert 'scipy.stats' not in sys.modules, 'scipy.stats was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
