"""TEST01's upstream rule on LoadGen files, line for line as mlcommons/inference b66003e1 prints
it (compliance/TEST01/verify_accuracy.py in its default mode, verify_performance.py). Pure:
accuracy-log entries and detail-log values in, upstream's lines and decision out. The same
functions judge a run (on the files it writes) and `auditkit verify test01` (on LoadGen's).

verify_accuracy.py (`--dtype byte`): the accuracy log's entries by `qsl_idx`; for each entry of
the performance-mode log whose `qsl_idx` was seen, only the FIRST BYTE of `data` is compared
(`data[0] != data_perf[0]`; empty data compared by size), and the entry then replaces the
stored one. `TEST PASS` iff no mismatch and at least one `qsl_idx` matched.

verify_performance.py: each detail log's `effective_scenario` picks the score key
(`result_samples_per_second`, `early_stopping_latency_ss`, `early_stopping_latency_ms`,
`result_completed_samples_per_sec`), read at full precision; `result_validity` other than
`VALID` ends it with `TEST FAIL: Invalid results in <file>`; then scenarios and (Server) the
target latency must match; t = 0.20 for SingleStream <= 200000 or MultiStream <= 1600000 (ns),
else 0.10; `TEST PASS` iff ref·(1 − t) <= test <= ref·(1 + t).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from auditkit.audits.kit.accuracy_log import AccuracyEntry
from auditkit.errors import InputError

RESULT_FIELD = {
    "Offline": "result_samples_per_second",
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
    "Server": "result_completed_samples_per_sec",
}


@dataclass(frozen=True)
class AccuracyCheck:
    """verify_accuracy.py's counters and decision."""

    acc_entries: int
    acc_duplicate_keys: int
    acc_data_mismatch: int
    perf_entries: int
    qsl_idx_match: int
    data_mismatch: int
    missing_qsl_idxs: int

    @property
    def passed(self) -> bool:
        return self.data_mismatch == 0 and self.qsl_idx_match > 0

    def lines(self) -> list[str]:
        """What the script prints (`print("TEST PASS\\n")` ends it with an empty line)."""
        return [
            "Verifying accuracy. This might take a while...",
            "Reading accuracy mode results...",
            "Reading performance mode results...",
            f"num_acc_log_entries = {self.acc_entries}",
            f"num_acc_log_duplicate_keys = {self.acc_duplicate_keys}",
            f"num_acc_log_data_mismatch = {self.acc_data_mismatch}",
            f"num_perf_log_entries = {self.perf_entries}",
            f"num_perf_log_qsl_idx_match = {self.qsl_idx_match}",
            f"num_perf_log_data_mismatch = {self.data_mismatch}",
            f"num_missing_qsl_idxs = {self.missing_qsl_idxs}",
            "TEST PASS" if self.passed else "TEST FAIL",
            "",
        ]


def verify_accuracy(
    reference: Sequence[AccuracyEntry], test: Sequence[AccuracyEntry]
) -> AccuracyCheck:
    """verify_accuracy.py's default (byte) mode on the accuracy-mode log and the
    performance-mode log."""
    stored: dict[int, bytes] = {}
    duplicates = acc_mismatch = matched = mismatched = missing = 0
    for e in reference:
        if e.qsl_idx in stored:
            duplicates += 1
            acc_mismatch += stored[e.qsl_idx] != e.data
        else:
            stored[e.qsl_idx] = e.data
    for e in test:
        if e.qsl_idx in stored:
            matched += 1
            before = stored[e.qsl_idx]
            if not before or not e.data:
                mismatched += len(before) != len(e.data)
            else:
                mismatched += before[0] != e.data[0]
        else:
            missing += 1
        stored[e.qsl_idx] = e.data
    return AccuracyCheck(
        len(reference), duplicates, acc_mismatch, len(test), matched, mismatched, missing
    )


@dataclass(frozen=True)
class PerformanceCheck:
    """verify_performance.py's outcome: its lines, decision and the numbers it read."""

    lines: tuple[str, ...]
    passed: bool
    reference: float | None = None
    test: float | None = None
    threshold: float | None = None
    scenario: str | None = None


def _read(values: Mapping[str, object], source: str) -> tuple[str, float, object] | str:
    """(scenario, score, target latency) from one detail log, or the failure line."""
    scenario = values.get("effective_scenario")
    if scenario not in RESULT_FIELD:
        raise InputError(f"{source}: effective_scenario {scenario!r} is not a LoadGen scenario")
    raw = values.get(RESULT_FIELD[str(scenario)])
    if not isinstance(raw, int | float | str):
        # upstream: float(None) raises before anything is printed
        raise InputError(f"{source}: no {RESULT_FIELD[str(scenario)]} in the detail log")
    score = float(raw)
    if values.get("result_validity") != "VALID":
        return f"TEST FAIL: Invalid results in {source}"
    target = values.get("effective_target_latency_ns") if scenario == "Server" else None
    return str(scenario), score, target


def verify_performance(
    reference: Mapping[str, object], test: Mapping[str, object], names: tuple[str, str]
) -> PerformanceCheck:
    """verify_performance.py on two detail logs' values (`names`: the paths it prints)."""
    head = "Verifying performance."
    ref = _read(reference, names[0])
    if isinstance(ref, str):
        return PerformanceCheck((head, ref), False)
    tst = _read(test, names[1])
    if isinstance(tst, str):
        return PerformanceCheck((head, tst), False, reference=ref[1])
    (scenario, ref_score, ref_target), (test_scenario, test_score, test_target) = ref, tst
    if test_scenario != scenario:
        return PerformanceCheck(
            (head, "TEST FAIL: Test and reference scenarios do not match!"), False
        )
    if scenario == "Server" and test_target != ref_target:
        return PerformanceCheck((head, "TEST FAIL: Server target latency mismatch"), False)
    t = 0.10
    if (scenario == "SingleStream" and ref_score <= 200000) or (
        scenario == "MultiStream" and ref_score <= 1600000
    ):
        t = 0.20
    passed = ref_score * (1 - t) <= test_score <= ref_score * (1 + t)
    lines = (
        head,
        f"Reference score = {ref_score}",
        f"Test score = {test_score}",
        "TEST PASS" if passed else "TEST FAIL: Test score invalid",
    )
    return PerformanceCheck(lines, passed, ref_score, test_score, t, scenario)


def text(lines: Sequence[str], auditkit: Sequence[str] = ()) -> str:
    """A verify file: upstream's lines, then (after a blank line) auditkit's own, none of which
    may read as upstream's (the checker greps for `TEST PASS`)."""
    mine = [line.replace("TEST PASS", "test pass") for line in auditkit]
    body = list(lines)
    if mine:
        body += ([""] if body and body[-1] != "" else []) + mine
    return "\n".join(body) + "\n"
