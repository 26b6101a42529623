"""`auditkit verify`: hand-built summaries of each scenario give the verdict (and printed
scores) upstream's verify_performance.py would give; bad files exit 2 with one line."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from auditkit.audits.test04.logs import verify_summaries
from auditkit.audits.test04.settings import Test04Config as T4Config
from auditkit.cli import main
from auditkit.loadgen_logs import parse_summary

# hand-built LoadGen summaries (tests run with --import-mode=importlib: load by path)
summary = runpy.run_path(str(Path(__file__).parents[2] / "loadgen_samples.py"))["summary"]

# (scenario, reference, test, threshold, upstream's printed lines) — expected values written
# from upstream's rule: Offline/Server score = the printed number, Single/MultiStream score =
# 1e9 / estimate; threshold 0.10, 0.20 when (SS and ref <= 200000) or (MS and ref <= 1600000);
# PASS iff float(test) < float(ref) * (1 + threshold).
CASES = [
    (
        "Offline",
        "100.5",
        "110.5",
        0.10,
        ["reference score = 100.5", "test score = 110.5", "TEST PASS"],
    ),
    ("Offline", "100.5", "110.6", 0.10, ["test score = 110.6", "TEST FAIL: Test score invalid"]),
    (
        "Server",
        "99.86",
        "109.84",
        0.10,
        ["reference score = 99.86", "test score = 109.84", "TEST PASS"],
    ),
    ("Server", "99.86", "109.85", 0.10, ["TEST FAIL: Test score invalid"]),
    # 1e9/833334 = 1199.99904… < 1000 × 1.2; 1e9/833333 = 1200.00048… is not
    (
        "SingleStream",
        "1000000",
        "833334",
        0.20,
        ["reference score = 1000.0", f"test score = {1e9 / 833334}", "TEST PASS"],
    ),
    ("SingleStream", "1000000", "833333", 0.20, ["TEST FAIL: Test score invalid"]),
    ("MultiStream", "2000000", "1666667", 0.20, ["reference score = 500.0", "TEST PASS"]),
    ("MultiStream", "2000000", "1666666", 0.20, ["TEST FAIL: Test score invalid"]),
]


@pytest.mark.parametrize(("scenario", "ref", "test", "threshold", "lines"), CASES)
def test_hand_built_summaries_match_upstream(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scenario: str,
    ref: str,
    test: str,
    threshold: float,
    lines: list[str],
) -> None:
    r, t = tmp_path / "ref.txt", tmp_path / "test.txt"
    r.write_text(summary(scenario, ref, target_latency_ns=10**8))
    t.write_text(summary(scenario, test, target_latency_ns=10**8))
    code = main(
        [
            "verify",
            "test04",
            "--reference",
            str(r),
            "--test",
            str(t),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    out = capsys.readouterr().out
    printed = out.splitlines()
    assert printed[0] == "Verifying performance."
    for line in lines:
        assert line in printed
    passed = "TEST PASS" in printed
    assert code == (0 if passed else 1)
    assert f"auditkit: threshold {threshold:g}" in out
    folder = tmp_path / "out" / "TEST04"
    assert (folder / "verify_performance.txt").read_text() == out.split("  artifacts:")[0]
    assert (
        folder / "performance" / "run_1" / "mlperf_log_summary.txt"
    ).read_text() == t.read_text()
    audit_json = (tmp_path / "out" / "audit" / "audit_output_caching_test.json").read_text()
    assert f'"passed": {str(passed).lower()}' in audit_json


def test_intended_threshold_mode_uses_the_latency() -> None:
    ref = parse_summary(summary("SingleStream", "1000000"))
    test = parse_summary(summary("SingleStream", "833334"))
    result = verify_summaries(ref, test, T4Config(threshold_mode="intended"))
    # the reference latency (1 ms) is above 200 µs, so the intended rule keeps 0.10
    assert result.threshold == pytest.approx(0.10) and result.verdict == "FAIL"
    assert result.threshold_source.startswith("intended")
    fast = parse_summary(summary("SingleStream", "150000"))
    assert verify_summaries(fast, fast, T4Config(threshold_mode="intended")).threshold == 0.2


def test_invalid_result_is_invalid_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r, t = tmp_path / "ref.txt", tmp_path / "test.txt"
    r.write_text(summary("Offline", "100", valid=False, errors=1))
    t.write_text(summary("Offline", "100"))
    assert main(["verify", "test04", "--reference", str(r), "--test", str(t)]) == 4
    out = capsys.readouterr().out
    assert "TEST FAIL: Reference results are invalid" in out and "TEST PASS" not in out


def test_error_lines_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r, t = tmp_path / "ref.txt", tmp_path / "test.txt"
    r.write_text(summary("Offline", "100", errors=2))
    t.write_text(summary("Offline", "100"))
    assert main(["verify", "test04", "--reference", str(r), "--test", str(t)]) == 0
    assert "WARNING: 2 ERROR reported in reference results" in capsys.readouterr().out


def test_server_target_latency_mismatch_is_invalid() -> None:
    ref = parse_summary(summary("Server", "100.00", target_latency_ns=10**8))
    test = parse_summary(summary("Server", "100.00", target_latency_ns=2 * 10**8))
    result = verify_summaries(ref, test)
    assert result.verdict == "INVALID" and "target latency mismatch" in result.reason


def test_server_latency_evidence_from_summaries() -> None:
    ref = parse_summary(summary("Server", "100.00", target_latency_ns=1, p50=10_000_000))
    test = parse_summary(summary("Server", "100.00", target_latency_ns=1, p50=2_000_000))
    result = verify_summaries(ref, test)
    assert result.verdict == "PASS" and result.evidence.latency.latency_speedup_flag is True
    assert result.evidence.latency.p50_speedup == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("ref_text", "test_text", "needle"),
    [
        (summary("Offline", "1"), summary("Offline", "1", trailer=False), "test.txt: truncated"),
        (summary("Offline", "1"), summary("Server", "1"), "scenarios do not match"),
        (None, summary("Offline", "1"), "ref.txt: file not found"),
    ],
)
def test_bad_files_exit_2_with_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    ref_text: str | None,
    test_text: str,
    needle: str,
) -> None:
    r, t = tmp_path / "ref.txt", tmp_path / "test.txt"
    if ref_text is not None:
        r.write_text(ref_text)
    t.write_text(test_text)
    assert main(["verify", "test04", "--reference", str(r), "--test", str(t)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_binary_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = tmp_path / "ref.txt"
    r.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["verify", "test04", "--reference", str(r), "--test", str(r)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_threshold_zero_is_honoured(tmp_path: Path) -> None:
    """--threshold 0 is a real value, not 'not given' (it was once dropped as falsy)."""
    r, t = tmp_path / "ref.txt", tmp_path / "test.txt"
    r.write_text(summary("Offline", "100"))
    t.write_text(summary("Offline", "105"))
    args = ["verify", "test04", "--reference", str(r), "--test", str(t)]
    assert main(args) == 0  # 105 < 100 × 1.10
    assert main([*args, "--threshold", "0"]) == 1  # 105 >= 100 × 1.00
