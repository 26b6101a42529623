"""The default verdict is right for each behaviour of the validity benchmark (one audit per
row here, on a virtual clock; `benchmarks/validity.py` runs 30 per row over real HTTP), and the
two promises over real HTTP: a second audit against a caching server FAILs, and a freshly
started server with a slow start PASSes."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

from auditkit.audits import build_config
from auditkit.mock import MockProcess
from auditkit.runner import run_audit

BENCH = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "validity.py"))
ROWS: tuple[Any, ...] = BENCH["ROWS"]


#: each behaviour once, in the scenario where it bites or (where both do) the cheaper one: the
#: full behaviour × scenario matrix, 30 seeds a row, is `benchmarks/validity.py`'s. "no cache"
#: and "output cache" are not here: test_runner's acceptance test runs both, in both
#: scenarios, for 3 seeds each.
SCENARIO = {
    "cold start (first 20 requests +20 ms)": "single-stream",
    "drift (15% faster per 1000 requests)": "offline",
    "heavy tail (2% of requests 10× slower)": "single-stream",
    "needs warm connections (+50 ms first request)": "offline",
    "output cache, second audit": "offline",
    "admission cache (stores at the 2nd request)": "single-stream",
    "TTL cache (1 s)": "offline",
    "key-normalising cache": "offline",
    "partial cache (every 4th repeat recomputed)": "single-stream",
    "partial cache (every 2nd repeat recomputed)": "single-stream",
    "cache of the previous prompt only (prefill ~40%)": "single-stream",
    "request coalescing": "offline",
    "prefix cache (prefill ~40% of a request)": "offline",
    "pre-populated cache, --no-salt": "offline",
}
#: "no cache" and "output cache": test_runner's acceptance test; the dodges (every cache keyed
#: to slip past the salt): tests/audits/test04/test_dodges.py, offline and single-stream on the
#: virtual clock; a mock burning real CPU: meaningless on a virtual clock (it burns none), run
#: by benchmarks/validity.py
COVERED_ELSEWHERE = {
    "no cache",
    "output cache",
    "mock's work burns the client's CPU",
    "pre-filled cache keyed without the [...] tag",
    "pre-filled semantic cache (the prompt's words)",
    "pre-filled + run-time cache keyed without the tag",
    "run-time semantic cache (the prompt's words)",
}
CASES = [(row, SCENARIO[row.name]) for row in ROWS if row.name not in COVERED_ELSEWHERE]


def test_every_row_of_the_benchmark_is_tested_here_or_in_test_runner() -> None:
    assert {row.name for row in ROWS} == set(SCENARIO) | COVERED_ELSEWHERE


@pytest.mark.parametrize(("row", "scenario"), CASES, ids=[f"{r.name}-{s}" for r, s in CASES])
def test_default_verdict_is_right_on_a_virtual_clock(row: Any, scenario: str) -> None:
    expected = row.expected_by_scenario.get(scenario, row.expected)
    verdict, _, kind = BENCH["one_audit"](row, scenario, seed=1, simulated=True)
    assert verdict == expected
    # the fingerprint never contradicts a FAIL
    assert not (verdict == "FAIL" and kind == "none")


@pytest.mark.slow
@pytest.mark.timing
def test_a_second_audit_of_a_caching_server_still_fails(tmp_path: Path) -> None:
    """The first audit's reference prompts sit in the cache; the salt keeps them out of the
    second audit's reference (before the salt, the second audit PASSed)."""
    with MockProcess(build_config({"mock": {"cache": "output"}}).mock) as server:
        for run in ("first", "second"):
            cfg = build_config({"output_dir": str(tmp_path / run), "endpoint": {"url": server.url}})
            result = run_audit(cfg).result
            assert result.verdict == "FAIL", (run, result.reason)
            assert result.upstream_verdict == "FAIL"


@pytest.mark.slow
@pytest.mark.timing
def test_a_fresh_server_with_a_slow_start_passes(tmp_path: Path) -> None:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "mock": {"behaviour": {"cold_start_requests": 20, "cold_start_ms": 30.0}},
        }
    )
    result = run_audit(cfg).result
    assert result.verdict in ("PASS", "INCONCLUSIVE"), result.reason
    assert result.verdict != "FAIL"
    assert result.evidence is not None and result.evidence.warmup.queries >= 64
