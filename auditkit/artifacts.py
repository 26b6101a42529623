"""Artifacts of one audit run (DESIGN §7), every file written atomically.

tmp → fsync → rename → fsync(dir): a reader (or a crash) sees the old file or the new one,
never a torn one. Records of a phase are written as soon as the phase ends (complete or not);
the verdict files only from a full verification.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from auditkit import mlperf_logs, records_io
from auditkit.audits import AuditTest, result_from_json
from auditkit.errors import InputError, SetupError
from auditkit.results import (
    SCHEMA_VERSION,
    AuditResult,
    PhaseResult,
    PhaseSummary,
    check_schema_version,
)

RECORDS = "records.parquet"
PHASE = "phase.json"
SUMMARY = mlperf_logs.SUMMARY_FILE
DETAIL = mlperf_logs.DETAIL_FILE
RESULT = "audit_result.json"
CONFIG = "config.yaml"
#: beside the audits' folders: <output_dir>/audit/audit_<submission name>.json, as an MLPerf
#: endpoint submission's compliance folder holds it (v6.1 checker)
AUDIT_DIR = "audit"
#: <output_dir>/previous/<started>-<TEST>/: earlier runs, each laid out like an output_dir
PREVIOUS_DIR = "previous"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers only ever see a complete file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    records_io.replace_synced(target, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """UTF-8 text, written atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Pretty JSON, written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def test_dir(output_dir: str | Path, test_id: str) -> Path:
    """<output_dir>/<TEST>/."""
    return Path(output_dir) / test_id.upper()


def write_config(folder: Path, redacted_config: dict[str, Any]) -> None:
    """config.yaml (secrets already redacted by the caller)."""
    atomic_write_text(folder / CONFIG, yaml.safe_dump(redacted_config, sort_keys=False))


def write_phase(folder: Path, phase: PhaseResult) -> Path:
    """<TEST>/<phase>/ records.parquet, phase.json and LoadGen log files."""
    phase_dir = folder / phase.name
    # atomically, then the part files the phase streamed while it ran are removed
    records_io.write_records(phase_dir, phase.source)
    records_io.write_outputs(phase_dir, phase.outputs)
    summary = {"schema_version": SCHEMA_VERSION, **phase.summary.model_dump(mode="json")}
    atomic_write_json(phase_dir / PHASE, summary)
    atomic_write_text(phase_dir / SUMMARY, mlperf_logs.format_summary(phase.summary))
    atomic_write_text(phase_dir / DETAIL, mlperf_logs.format_detail(phase.summary))
    return phase_dir


def write_result(
    folder: Path,
    result: AuditResult[Any],
    test: AuditTest,
    *,
    extra_files: dict[str, str] | None = None,
) -> None:
    """The verdict files: the audit's own files (e.g. verify_performance.txt; `extra_files`
    replace or add to them), the MLPerf submission record and, last, audit_result.json (a
    reader that sees it sees the rest)."""
    write_files(folder, {**test.files(result), **(extra_files or {})})
    if test.submission_name:
        write_submission(folder, result, test.submission_name)
    atomic_write_json(folder / RESULT, result.model_dump(mode="json"))


def write_files(folder: Path, files: dict[str, str]) -> None:
    """Text files under folder (relative path → text), each written atomically."""
    for relative, text in files.items():
        atomic_write_text(folder / relative, text)


def submission_audit_path(folder: Path, submission_name: str) -> Path:
    """<output_dir>/audit/audit_<name>.json: output_dir plays the role of a submission's
    compliance folder, which holds the audits' folders and (for endpoint submissions) audit/
    side by side."""
    return folder.parent / AUDIT_DIR / f"audit_{submission_name}.json"


def write_submission(folder: Path, result: AuditResult[Any], submission_name: str) -> None:
    """The record the MLPerf submission checker reads ({"test": name, "passed": bool}) plus
    auditkit's context."""
    # the checker's "passed" is the upstream rule's; auditkit's decision stands beside it
    upstream = result.upstream_verdict or result.verdict
    record = {
        "test": submission_name,
        "passed": upstream == "PASS",
        "verdict": upstream,
        "auditkit_verdict": result.verdict,
        "audit_test": result.test,
        "scenario": result.scenario,
        "reference_score": result.reference_score,
        "audit_score": result.audit_score,
        "threshold": result.threshold,
        "threshold_source": result.threshold_source,
        "submission_grade": result.submission_grade,
        "reason": result.reason,
        "auditkit_version": result.auditkit_version,
        "finished_at": result.finished_at,
    }
    atomic_write_json(submission_audit_path(folder, submission_name), record)


def run_outputs(output_dir: str | Path, test: AuditTest) -> list[Path]:
    """What an earlier run of `test` left in output_dir: the entries of <output_dir>/<TEST>/
    and its submission record (audit/audit_<name>.json). Other audits' files are not listed:
    several audits share one output_dir, as in an MLPerf compliance folder."""
    folder = test_dir(output_dir, test.id)
    found = sorted(p for p in folder.iterdir() if not is_stale_tmp(p)) if folder.is_dir() else []
    if test.submission_name:
        record = submission_audit_path(folder, test.submission_name)
        if record.exists():
            found.append(record)
    return found


def claim_output_dir(
    output_dir: str | Path, test: AuditTest, *, overwrite: bool = False
) -> Path | None:
    """Make room for a new run of `test` in output_dir without mixing it with an earlier one.

    The earlier run (finished or interrupted) moves to <output_dir>/previous/<started>-<TEST>/,
    laid out like an output_dir (<TEST>/ and its audit/ record), so review, compare and verify
    read it as any run; returns that folder. With `overwrite` its files are removed instead
    (the audit's own files only). <output_dir>/<TEST>/ always holds the latest run.
    """
    found = run_outputs(output_dir, test)
    if not found:
        return None
    if not overwrite:
        return archive(output_dir, test, found)
    for path in found:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise SetupError(
                f"cannot remove the earlier run's {path} ({exc.strerror or exc})"
            ) from None
    return None


def archive(output_dir: str | Path, test: AuditTest, found: list[Path]) -> Path:
    """Move an earlier run's files (`found`, from run_outputs) under previous/ (see
    claim_output_dir). A rename on one file system: nothing is copied, nothing lost."""
    base = Path(output_dir)
    folder = test_dir(base, test.id)
    started, finished = _started(folder)
    name = f"{started}-{test.id}" + ("" if finished else "-interrupted")
    target = base / PREVIOUS_DIR / name
    n = 2
    while target.exists():
        target = base / PREVIOUS_DIR / f"{name}-{n}"
        n += 1
    for path in found:
        dest = target / path.relative_to(base)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            path.replace(dest)
        except OSError as exc:
            raise SetupError(
                f"cannot move the earlier run's {path} to {dest} ({exc.strerror or exc}); "
                "move it yourself or add --overwrite to replace it"
            ) from None
    return target


def _started(folder: Path) -> tuple[str, bool]:
    """When the run in `folder` started (UTC, 20261207T194305Z) and whether it finished."""
    from datetime import UTC, datetime

    result = folder / RESULT
    if result.is_file():
        with contextlib.suppress(ValueError, OSError, AttributeError):
            started = json.loads(result.read_text(encoding="utf-8")).get("started_at")
            when = datetime.fromisoformat(started).astimezone(UTC)
            return when.strftime("%Y%m%dT%H%M%SZ"), True
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()] or [0.0]
    when = datetime.fromtimestamp(min(times), UTC)
    return when.strftime("%Y%m%dT%H%M%SZ"), result.is_file()


@contextlib.contextmanager
def run_lock(output_dir: str | Path, test: AuditTest) -> Iterator[None]:
    """Hold the right to write <output_dir>/<TEST>/ for the duration of a run: a second run
    into the same folder while one is running stops with one line (InputError) instead of
    moving the running one's files aside. The lock is an flock on a file in the temporary
    folder, released by the kernel when the process ends (a killed run never blocks the next)."""
    import fcntl
    import hashlib
    import os
    import tempfile

    folder = test_dir(output_dir, test.id).resolve()
    key = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    locks = Path(tempfile.gettempdir()) / f"auditkit-locks-{os.getuid()}"
    locks.mkdir(mode=0o700, exist_ok=True)
    with (locks / f"{key}.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another auditkit run is writing {folder} right now; wait for it to finish or "
                "choose another output_dir"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_files(folder: str | Path, test: AuditTest | None = None) -> list[Path]:
    """Every file a run wrote: under its folder and, for an audit with a submission record,
    <output_dir>/audit/audit_<name>.json (what the MLPerf submission checker reads)."""
    base = Path(folder)
    files = sorted(p for p in base.rglob("*") if p.is_file() and not is_stale_tmp(p))
    if test is not None and test.submission_name:
        record = submission_audit_path(base, test.submission_name)
        if record.is_file():
            files.append(record)
    return files


def is_stale_tmp(path: Path) -> bool:
    """True for a temp file atomic_write_bytes left behind (`.<name>.<random>.tmp`)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


def remove_stale_tmp(folder: Path) -> int:
    """Delete temp files a crashed writer left under folder (and the submission audit/ folder).

    A SIGKILL between mkstemp and rename leaves one `.<name>.*.tmp` file; the target itself is
    intact (old or new, never torn), and readers never look at temp names. Call this only when
    no other writer uses the folder, i.e. at the start of a run. Returns how many were removed.
    """
    removed = 0
    for base in (folder, folder.parent / AUDIT_DIR):
        if not base.is_dir():
            continue
        for path in base.rglob(".*.tmp"):
            if is_stale_tmp(path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def load_phase(phase_dir: str | Path) -> tuple[pd.DataFrame, PhaseSummary]:
    """Read a phase back (records and summary) for review without the endpoint."""
    p = Path(phase_dir)
    # records.parquet, or the part files a killed run flushed before it
    records = records_io.read_records(p)
    return records, read_phase_summary(p / PHASE)


def read_phase_summary(path: Path) -> PhaseSummary:
    """A phase.json back as its summary; InputError if this auditkit does not read its
    schema_version (one without it is version 1)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    check_schema_version(data, PHASE, path)
    data.pop("schema_version", None)
    return PhaseSummary.model_validate(data)


def load_result(folder: str | Path) -> AuditResult[Any]:
    """Read audit_result.json back, with its audit's typed evidence."""
    path = Path(folder) / RESULT
    return result_from_json(path.read_text(encoding="utf-8"), path)
