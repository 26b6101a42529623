"""The shipped prompt dataset (data/prompts.jsonl) meets the TEST04 cost contract.

The audit phase repeats row 3; the reference phase sends distinct rows. These tests pin the
properties that make that comparison fair (see scripts/make_prompts.py for the rationale).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT / "data" / "prompts.jsonl"
SCRIPT = ROOT / "scripts" / "make_prompts.py"
AUDIT_ROW = 3
PREFIX_WORDS = 8


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    assert DATASET.is_file(), f"{DATASET} is missing; run python scripts/make_prompts.py"
    out: list[dict[str, Any]] = []
    for lineno, line in enumerate(DATASET.read_text(encoding="utf-8").splitlines(), start=1):
        obj = json.loads(line)  # raises (and fails the test) on malformed JSON
        assert isinstance(obj, dict), f"line {lineno} is not a JSON object"
        out.append(obj)
    return out


@pytest.fixture(scope="module")
def prompts(rows: list[dict[str, Any]]) -> list[str]:
    return [r["prompt"] for r in rows]


@pytest.fixture(scope="module")
def counts(prompts: list[str]) -> list[int]:
    return [len(p.split()) for p in prompts]


def test_file_exists() -> None:
    assert DATASET.is_file()


def test_enough_rows(rows: list[dict[str, Any]]) -> None:
    assert len(rows) >= 512


def test_rows_have_nonempty_prompts(rows: list[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        assert isinstance(row.get("prompt"), str), f"row {i}: prompt is not a string"
        assert row["prompt"].strip(), f"row {i}: empty prompt"


def test_ids_and_categories(rows: list[dict[str, Any]]) -> None:
    ids = [r.get("id") for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(isinstance(r.get("category"), str) and r["category"] for r in rows)
    assert len({r["category"] for r in rows}) >= 8


def test_prompts_distinct(prompts: list[str]) -> None:
    assert len(set(prompts)) == len(prompts)


def test_prefixes_distinct(prompts: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        key = " ".join(prompt.split()[:PREFIX_WORDS])
        assert key not in seen, f"rows {seen[key]} and {i} share their first words: {key!r}"
        seen[key] = i


def test_word_counts_within_band(counts: list[int]) -> None:
    median = statistics.median(counts)
    lo, hi = 0.9 * median, 1.1 * median
    outliers = {i: c for i, c in enumerate(counts) if not lo <= c <= hi}
    assert not outliers, f"rows outside +/-10% of median {median}: {outliers}"


def test_audit_row_close_to_median(counts: list[int]) -> None:
    median = statistics.median(counts)
    assert abs(counts[AUDIT_ROW] - median) <= 0.03 * median, (
        f"row {AUDIT_ROW} has {counts[AUDIT_ROW]} words; median is {median}"
    )


@pytest.mark.slow
def test_generator_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generator_is_deterministic_and_check_detects_drift(tmp_path: Path) -> None:
    out = tmp_path / "prompts.jsonl"
    cmd = [sys.executable, str(SCRIPT), "--rows", "64", "--out", str(out)]
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    first = out.read_bytes()
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    assert out.read_bytes() == first
    # the first rows do not depend on how many rows are generated
    assert DATASET.read_bytes().startswith(first)
    out.write_bytes(first + b"\n")
    drift = subprocess.run([*cmd, "--check"], capture_output=True, timeout=120, check=False)
    assert drift.returncode == 1
