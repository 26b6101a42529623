"""Review a finished audit from its artifacts only (no endpoint): records, summaries, verdict.

Used by notebooks/review_results.ipynb and `auditkit compare`; the plots and the verdict panel
take the same inputs as after a live run, so a saved run re-renders exactly. A review never
runs an audit on its own: a path without a run is an error naming the path it tried, and the
demo run is asked for explicitly (`demo_run`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit import artifacts
from auditkit.audits import DEFAULT_TEST, REGISTRY, build_config, get_test
from auditkit.errors import InputError, NotebookStop
from auditkit.resources import resolve_output_dir
from auditkit.results import AuditResult, PhaseSummary
from auditkit.runner import run_audit
from auditkit.startup import load_plugins_once


@dataclass(frozen=True)
class LoadedRun:
    """A run read back from <output_dir>/<TEST>/.

    `records` and `summaries` hold every phase folder found (warm-up, counterbalanced blocks
    such as reference_1/audit_1/audit_2/reference_2, extra rounds), in the order they ran;
    `result.phases` holds the summaries the verdict scored (pooled blocks keep the plain
    names `reference`/`audit`)."""

    folder: Path
    result: AuditResult[Any]
    records: dict[str, pd.DataFrame]
    summaries: dict[str, PhaseSummary]

    @property
    def files(self) -> list[Path]:
        """Every file of the run, the submission record in <output_dir>/audit/ included."""
        return artifacts.run_files(self.folder, REGISTRY.get(self.result.test.lower()))

    @property
    def label(self) -> str:
        """One line: where, what, which verdict, when."""
        r = self.result
        return f"{self.folder}: {r.test} {r.verdict}, finished {r.finished_at or '?'}"


#: what to do about a missing run, in the notebook's words (the CLI passes its own)
NOTEBOOK_FIX = (
    "set results_dir to an audit's output_dir or its <output_dir>/<TEST> folder (or demo=True "
    "for a demo run against the mock)"
)


def locate(results_dir: str | Path, fix: str = NOTEBOOK_FIX) -> Path:
    """The run folder for `results_dir`: an audit's folder itself (holding audit_result.json)
    or the output_dir holding one (the first registered audit found there).

    A relative path is taken from the working directory, except in the shipped notebooks'
    folder of a repository checkout (where JupyterLab and nbval start kernels): there from the
    checkout's root. Raises NotebookStop (an InputError: exit 2, one line) naming the absolute
    path it tried when there is no finished run.
    """
    base = resolve_output_dir(results_dir)
    if (base / artifacts.RESULT).is_file():
        return base
    for test in REGISTRY.values():
        nested = base / test.id
        if (nested / artifacts.RESULT).is_file():
            return nested
    if not base.exists():
        why = "does not exist"
    elif any(base.glob(f"*/{artifacts.PHASE}")) or any(base.glob(f"*/*/{artifacts.PHASE}")):
        why = f"holds phase records but no {artifacts.RESULT} (an interrupted run has no verdict)"
    else:
        why = f"holds no {artifacts.RESULT}"
    raise NotebookStop(f"no finished run at {base}: it {why}; {fix}")


def phase_dirs(folder: Path) -> list[Path]:
    """The run's phase folders (each holds phase.json), in the order they ran: by the
    summary's start time, else by when phase.json was written (at the end of its phase)."""
    found = [p.parent for p in folder.glob(f"*/{artifacts.PHASE}") if p.is_file()]

    def key(phase_dir: Path) -> tuple[str, int]:
        path = phase_dir / artifacts.PHASE
        return artifacts.read_phase_summary(path).started_at, path.stat().st_mtime_ns

    return sorted(found, key=key)


def load_run(results_dir: str | Path, fix: str = NOTEBOOK_FIX) -> LoadedRun:
    """Load the verdict and every phase's records and summary (NotebookStop if no run; its
    message ends with `fix`)."""
    load_plugins_once()  # a plug-in's run is found and typed only with its audit registered
    folder = locate(results_dir, fix)
    records: dict[str, pd.DataFrame] = {}
    summaries: dict[str, PhaseSummary] = {}
    try:
        result = artifacts.load_result(folder)
        for phase_dir in phase_dirs(folder):
            if (phase_dir / artifacts.RECORDS).is_file():
                records[phase_dir.name], summaries[phase_dir.name] = artifacts.load_phase(phase_dir)
    except InputError as exc:  # e.g. a newer schema_version: one line in a notebook too
        raise NotebookStop(exc.one_line()) from None
    return LoadedRun(folder, result, records, summaries)


def demo_run(test_name: str = DEFAULT_TEST, output_dir: str | Path | None = None) -> Path:
    """A quick audit with its defaults against the simulated mock (in memory, no network),
    written to `output_dir` (default: a new temporary folder, never an existing run's).
    Returns the run folder."""
    test = get_test(test_name)
    target = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="auditkit-demo-"))
    cfg = build_config({"output_dir": str(target), "mock": {"simulated": True}})
    return run_audit(cfg, test.key).folder
