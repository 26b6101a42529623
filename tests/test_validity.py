"""The default verdict is right for each behaviour of the validity benchmark (a few audits per
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


#: rows run in the quick loop elsewhere or meaningless on a virtual clock: the dodges
#: (tests/audits/test04/test_dodges.py) and a mock burning real CPU (a virtual clock burns none)
SLOW_ROWS = ("pre-filled", "semantic", "burns")


def _rows() -> list[Any]:
    return [
        pytest.param(r, id=r.name, marks=[pytest.mark.slow] * any(w in r.name for w in SLOW_ROWS))
        for r in ROWS
    ]


@pytest.mark.parametrize("scenario", ["offline", "single-stream"])
@pytest.mark.parametrize("row", _rows())
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
