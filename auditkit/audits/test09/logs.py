"""TEST09's upstream rule on an accuracy log, as compliance/TEST09/run_verification.py
(mlcommons/inference b66003e1) computes and writes it. Pure: entries in, verify_output_len.txt
out.

    tokens(entry) = len(data) // 4         (int32 ids; a trailing partial id is dropped;
                                            empty data counts 0)
    mean = Σ tokens / entries,  PASS iff min <= mean <= max   (inclusive; audit.config's
                                 test09_min_output_tokens / test09_max_output_tokens)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditkit.audits.kit.accuracy_log import AccuracyEntry

RULE = "=" * 80


@dataclass(frozen=True)
class LengthCheck:
    """The statistics upstream prints and its decision."""

    lengths: tuple[int, ...]
    min_bound: float
    max_bound: float

    @property
    def mean(self) -> float:
        return sum(self.lengths) / len(self.lengths)

    @property
    def std(self) -> float:
        mean = self.mean
        return (sum((x - mean) ** 2 for x in self.lengths) / len(self.lengths)) ** 0.5

    @property
    def min_ok(self) -> bool:
        return self.mean >= self.min_bound

    @property
    def max_ok(self) -> bool:
        return self.mean <= self.max_bound

    @property
    def passed(self) -> bool:
        return self.min_ok and self.max_ok

    def lines(self) -> list[str]:
        """verify_output_len.txt as the script writes it."""
        return report(len(self.lengths), self.mean, min(self.lengths), max(self.lengths),
                      self.std, self.min_bound, self.max_bound)  # fmt: skip


def report(
    samples: int, mean: float, low: int, high: int, std: float, lo: float, hi: float
) -> list[str]:
    """The script's verify_output_len.txt from its numbers."""
    min_ok, max_ok = mean >= lo, mean <= hi
    return [
        RULE,
        "TEST09: Verify Output Token Length in Performance Mode",
        RULE,
        "",
        "Output Token Length Statistics",
        "-" * 40,
        f"Total samples: {samples}",
        f"Mean output tokens: {mean:.2f}",
        f"Min output tokens: {low}",
        f"Max output tokens: {high}",
        f"Std deviation: {std:.2f}",
        "",
        RULE,
        "Verification Results",
        RULE,
        f"Mean output tokens: {mean:.2f}",
        f"Min threshold: {lo}",
        f"Max threshold: {hi}",
        f"Min check pass: {min_ok}",
        f"Max check pass: {max_ok}",
        "",
        "TEST PASS" if min_ok and max_ok else "TEST FAIL",
    ]


def verify(entries: Sequence[AccuracyEntry], min_bound: float, max_bound: float) -> LengthCheck:
    """The script's check on a (non-empty) accuracy log; bounds as floats, as it reads them."""
    if not entries:
        raise ValueError("no entries in the accuracy log (upstream stops: No entries found)")
    return LengthCheck(tuple(len(e.data) // 4 for e in entries), float(min_bound), float(max_bound))
