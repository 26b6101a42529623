"""Review a finished audit from its artifacts only (no endpoint): records, summaries, verdict.

Used by notebooks/review_results.ipynb; the plots and the verdict panel take the same inputs
as after a live run, so a saved run re-renders exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit import artifacts
from auditkit.audits import DEFAULT_TEST, REGISTRY, get_test
from auditkit.errors import InputError
from auditkit.notebook_runner import resolve_output_dir
from auditkit.results import AuditResult, PhaseSummary


@dataclass(frozen=True)
class LoadedRun:
    """A run read back from <output_dir>/<TEST>/."""

    folder: Path
    result: AuditResult[Any]
    records: dict[str, pd.DataFrame]
    summaries: dict[str, PhaseSummary]


def locate(results_dir: str | Path) -> Path:
    """The run folder for `results_dir`: either an audit's folder itself or the output_dir
    holding one (the first registered audit found there); relative paths resolve like notebook
    output dirs (from the repo root in notebooks/)."""
    base = resolve_output_dir(results_dir)
    if (base / artifacts.RESULT).exists():
        return base
    for test in REGISTRY.values():
        nested = base / test.id
        if (nested / artifacts.RESULT).exists():
            return nested
    return base


def load_run(results_dir: str | Path) -> LoadedRun:
    """Load the verdict and every phase's records and summary (InputError if not a run)."""
    folder = locate(results_dir)
    if not (folder / artifacts.RESULT).exists():
        raise InputError(
            f"{folder}: no {artifacts.RESULT} here; point results_dir at an audit's output "
            "folder (e.g. out/<TEST>)"
        )
    result = artifacts.load_result(folder)
    records: dict[str, pd.DataFrame] = {}
    summaries: dict[str, PhaseSummary] = {}
    for name in result.phases:  # the verdict lists the phases in run order
        if (folder / name / artifacts.RECORDS).exists():
            records[name], summaries[name] = artifacts.load_phase(folder / name)
    return LoadedRun(folder, result, records, summaries)


def ensure_demo_run(results_dir: str | Path, test_name: str = DEFAULT_TEST) -> Path:
    """If `results_dir` holds no finished run, make one: a quick audit with its defaults
    against the embedded mock (no network beyond 127.0.0.1). Returns the run folder; prints
    what it did."""
    folder = locate(results_dir)
    if (folder / artifacts.RESULT).exists():
        print(f"reviewing the existing run in {folder}")
        return folder
    from auditkit.audits import build_config
    from auditkit.runner import run_audit

    test = get_test(test_name)
    output_dir = folder.parent if folder.name == test.id else folder
    print(f"no finished run in {folder}: running a quick demo audit against the embedded mock")
    cfg = build_config({"output_dir": str(output_dir)})
    return run_audit(cfg, test.key).folder
