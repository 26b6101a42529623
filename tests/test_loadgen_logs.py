"""Parsing LoadGen summary and detail files, as upstream verify_performance.py reads them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from auditkit.loadgen_logs import LogFormatError, parse_summary

# hand-built LoadGen summaries (tests run with --import-mode=importlib: load by path)
summary = runpy.run_path(str(Path(__file__).with_name("loadgen_samples.py")))["summary"]


@pytest.mark.parametrize(
    ("scenario", "text", "score"),
    [
        ("Offline", "33.6903", 33.6903),
        ("Server", "99.86", 99.86),
        ("SingleStream", "1226613802", 1e9 / 1226613802),
        ("MultiStream", "2000000", 500.0),
    ],
)
def test_score_per_scenario(scenario: str, text: str, score: float) -> None:
    parsed = parse_summary(summary(scenario, text, target_latency_ns=10**8), "s.txt")
    assert parsed.scenario == scenario and parsed.valid
    assert parsed.score_text == text
    assert parsed.score == score  # exactly upstream's float(...) / 1e9 / float(...)
    assert parsed.latency["p50_ns"] == 1_000_000 and parsed.latency["p99_ns"] == 5_000_000


def test_single_stream_takes_the_90th_not_the_99th_estimate() -> None:
    text = summary("SingleStream", "1000000").replace(
        " * Early stopping 90.0th percentile estimate: 1000000",
        " * Early stopping 90.0th percentile estimate: 1000000\n"
        " * Early stopping 99.0th percentile estimate: 3000000",
    )
    parsed = parse_summary(text)
    assert parsed.early_stopping_latency_ns == 1_000_000 and parsed.score == 1000.0


def test_older_spellings_are_read() -> None:
    # LoadGen < 4.0 printed "90th" and put Server's completed rate under Additional Stats
    ss = summary("SingleStream", "2000").replace(
        "90.0th percentile estimate", "90th percentile estimate"
    )
    assert parse_summary(ss).score == 1e9 / 2000
    old_server = (
        summary("Server", "10.00", target_latency_ns=5)
        .replace(
            "Completed samples per second    : 10.00", "Scheduled samples per second : 10506.00"
        )
        .replace(
            "Additional Stats\n" + "=" * 48,
            "Additional Stats\n" + "=" * 48 + "\nCompleted samples per second    : 10433.21",
        )
    )
    parsed = parse_summary(old_server)
    assert parsed.score_text == "10433.21" and parsed.target_latency_ns == 5


def test_invalid_and_errors() -> None:
    parsed = parse_summary(summary("Offline", "10", valid=False, errors=2))
    assert not parsed.valid and parsed.errors == 2
    assert parsed.recommendations and "pre-generates" in parsed.recommendations[0]
    assert parse_summary(summary("Offline", "10", errors=1)).errors == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("hello\n", "no 'Scenario :' line"),
        (summary("Offline", "10").replace("Result is : VALID\n", ""), "no 'Result is :' line"),
        (summary("Offline", "10", trailer=False), "truncated"),
        (summary("Offline", "abc"), "is not a number"),
        (summary("Offline", "10").replace("Samples per second: 10\n", ""), "has no"),
        (
            summary("Offline", "10").replace("Scenario : Offline", "Scenario : Batch"),
            "unknown scenario",
        ),
        (summary("Server", "10").replace("target_latency (ns): 0\n", ""), "target_latency"),
        (
            summary("Offline", "10").replace("Result is : VALID", "Result is : MAYBE"),
            "VALID or INVALID",
        ),
    ],
)
def test_bad_files_name_the_file_and_problem(text: str, needle: str) -> None:
    with pytest.raises(LogFormatError) as info:
        parse_summary(text, "ref/mlperf_log_summary.txt")
    line = info.value.one_line()
    assert line.startswith("ref/mlperf_log_summary.txt: ") and needle in line
