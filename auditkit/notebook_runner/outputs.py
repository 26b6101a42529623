"""The folders a notebook run reads and writes: run folders given as parameters, and the
verdict the executed notebook left (audit_result.json, suite_result.json) as the exit code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.artifacts import load_result
from auditkit.audits import AuditTest
from auditkit.errors import EXIT_EXECUTION
from auditkit.notebook_runner.kernel import NotebookOutcome
from auditkit.review import locate, phase_dirs
from auditkit.runner import verdict_exit_code
from auditkit.suite import read_suite_result, suite_result_path

Stamp = tuple[int, int, int]
#: notebooks whose path parameters name finished runs: checked (and made absolute, from the
#: caller's working directory) before a kernel starts, so a typo is exit 2 in a second
RUN_PATH_PARAMETERS = {"review_results": ("results_dir", "compare_with")}


def stamp(path: Path) -> Stamp | None:
    """Which file version is at `path` (inode, mtime, size); None if there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def check_run_paths(
    stem: str, declared: Mapping[str, Mapping[str, Any]], values: dict[str, Any]
) -> dict[str, Any]:
    """`values` with each run-folder parameter of notebook `stem` located (NotebookStop if
    there is no finished run there)."""
    names = RUN_PATH_PARAMETERS.get(stem, ())
    if not names or values.get("demo"):
        return values
    out = dict(values)
    for name in names:
        path = out.get(name, declared.get(name, {}).get("default"))
        if path:
            folder = locate(path)
            # a file this auditkit cannot read (schema_version): exit 2 now, not in the kernel
            load_result(folder)
            phase_dirs(folder)
            out[name] = str(folder)
    return out


def audit_verdict(
    outcome: NotebookOutcome,
    test: AuditTest,
    result_file: Path,
    earlier: Stamp | None,
    decision: str | None,
) -> None:
    """The audit notebook's verdict (audit_result.json) as the exit code; a verdict file
    unchanged since the run started is not this run's."""
    if not result_file.exists() or stamp(result_file) == earlier:
        outcome.exit_code = EXIT_EXECUTION
        outcome.message = f"notebook finished but wrote no verdict ({result_file} missing)"
        return
    saved = json.loads(result_file.read_text(encoding="utf-8"))
    verdict = str(saved["verdict"])
    if decision == "upstream":
        verdict = str(saved.get("upstream_verdict") or verdict)
    outcome.verdict = verdict
    outcome.result_file = result_file
    outcome.exit_code = verdict_exit_code(verdict)
    outcome.message = f"{test.id} {verdict}"


def reviewed_verdict(outcome: NotebookOutcome, values: Mapping[str, Any]) -> None:
    """review_results: the reviewed run's verdict as the message and the exit code (a review
    of a FAIL exits 1, as the run did)."""
    folder = values.get("results_dir")
    if not folder or values.get("demo"):
        return
    result_file = Path(folder) / "audit_result.json"
    if not result_file.is_file():
        return
    saved = json.loads(result_file.read_text(encoding="utf-8"))
    verdict = str(saved["verdict"])
    outcome.verdict = verdict
    outcome.result_file = result_file
    outcome.exit_code = verdict_exit_code(verdict)
    outcome.message = f"reviewed {saved.get('test', 'run')} {verdict}"


def suite_verdict(outcome: NotebookOutcome, output_dir: Path, earlier: Stamp | None) -> None:
    """The suite notebook's combined verdict (suite_result.json) as the exit code."""
    path = suite_result_path(output_dir)
    saved = read_suite_result(output_dir)
    if saved is None or (earlier is not None and stamp(path) == earlier):
        outcome.exit_code = EXIT_EXECUTION
        outcome.message = f"notebook finished but wrote no verdict ({path} missing)"
        return
    # not `result_file`: that names one audit's audit_result.json
    outcome.exit_code, outcome.verdict = saved
    outcome.message = f"suite {outcome.verdict} (exit {outcome.exit_code}; {path})"
