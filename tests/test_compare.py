"""`auditkit compare RUN_A RUN_B` and compare.py (issue 14 item 10): two runs side by side."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from auditkit.audits import build_config
from auditkit.cli import main
from auditkit.compare import compare_rows, compare_table, config_differences
from auditkit.errors import InputError
from auditkit.review import load_run
from auditkit.runner import run_audit


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("runs")
    for cache in ("none", "output"):
        cfg = build_config(
            {
                "output_dir": str(out / cache),
                "mock": {"simulated": True, "cache": cache},
                "test04": {"samples": 64, "allow_small": True, "rounds": 0},
            }
        )
        run_audit(cfg)
    return out / "none", out / "output"


def test_rows_show_verdicts_phases_and_the_setting_that_differs(
    two_runs: tuple[Path, Path],
) -> None:
    a, b = (load_run(p) for p in two_runs)
    rows = {what: (va, vb, ratio) for what, va, vb, ratio in compare_rows(a, b)}
    assert rows["verdict"][1] == "FAIL"
    assert rows["verdict"][0] in ("PASS", "INCONCLUSIVE")
    assert "reference: p50 latency (ms)" in rows and "audit: p99 latency (ms)" in rows
    assert float(rows["audit: score"][2]) > 1.5  # the cached audit phase is much faster
    assert rows["setting mock.cache"][:2] == ("none", "output")
    assert "reference: p50 TTFT (ms)" in rows  # both streamed (the default for OpenAI APIs)
    differing = {key for key, _, _ in config_differences(a, b)}
    assert "output_dir" not in differing and "mock.cache" in differing
    assert not compare_table(a, b).empty


@pytest.mark.slow
def test_cli_compare_prints_the_table(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # main() in this process: the table and the exit code are the point (child `auditkit`
    # processes' exit statuses: test_cli's)
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        code = main(["compare", str(two_runs[0]), str(two_runs[1])])
    finally:
        signal.signal(signal.SIGTERM, saved)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"A: {two_runs[0]}/TEST04" in out and "B/A" in out
    assert "setting mock.cache" in out


def test_cli_compare_missing_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = signal.getsignal(signal.SIGTERM)  # main() installs its own
    try:
        code = main(["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    finally:
        signal.signal(signal.SIGTERM, saved)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and str(tmp_path / "a") in err
    # the CLI's words, not the notebook's
    assert "RUN_A" in err and "results_dir" not in err and "demo=True" not in err


def test_runs_of_different_scenarios_are_refused_in_one_line(
    two_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "mock": {"simulated": True},
            "load": {"scenario": "single-stream"},
            "test04": {"samples": 64, "allow_small": True, "rounds": 0, "design": "sequential"},
        }
    )
    run_audit(cfg)
    with pytest.raises(InputError, match="offline run with a TEST04 single-stream run"):
        compare_rows(load_run(two_runs[0]), load_run(tmp_path))
    saved = signal.getsignal(signal.SIGTERM)
    try:
        code = main(["compare", str(two_runs[0]), str(tmp_path)])
    finally:
        signal.signal(signal.SIGTERM, saved)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert "not in the same units" in err
