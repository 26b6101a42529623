"""Artifacts of one audit run (DESIGN §7), every file written atomically.

tmp → fsync → rename → fsync(dir): a reader (or a crash) sees the old file or the new one,
never a torn one. Records of a phase are written as soon as the phase ends (complete or not);
the verdict files only from a full verification.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from auditkit import mlperf_logs
from auditkit.results import AuditResult, PhaseResult, PhaseSummary, records_frame

RECORDS = "records.parquet"
PHASE = "phase.json"
SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
RESULT = "audit_result.json"
VERIFY = "verify_performance.txt"
CONFIG = "config.yaml"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers only ever see a complete file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


def write_phase(folder: Path, phase: PhaseResult, *, sut_name: str = "auditkit-http") -> Path:
    """<TEST>/<phase>/ records.parquet, phase.json and LoadGen log files."""
    phase_dir = folder / phase.name
    buf = io.BytesIO()
    phase.records.to_parquet(buf, index=False)
    atomic_write_bytes(phase_dir / RECORDS, buf.getvalue())
    atomic_write_json(phase_dir / PHASE, phase.summary.model_dump(mode="json"))
    atomic_write_text(phase_dir / SUMMARY, mlperf_logs.format_summary(phase.summary, sut_name))
    atomic_write_text(phase_dir / DETAIL, mlperf_logs.format_detail(phase.summary))
    return phase_dir


def write_result(folder: Path, result: AuditResult) -> None:
    """The verdict files: audit_result.json and upstream-style verify_performance.txt."""
    atomic_write_text(folder / VERIFY, mlperf_logs.format_verify_performance(result))
    atomic_write_json(folder / RESULT, result.model_dump(mode="json"))


def clear_verdict(folder: Path) -> None:
    """Remove verdict files of an earlier run so a stale verdict never sits beside new data."""
    for name in (RESULT, VERIFY):
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()


def load_phase(phase_dir: str | Path) -> tuple[pd.DataFrame, PhaseSummary]:
    """Read a phase back (records and summary) for review without the endpoint."""
    p = Path(phase_dir)
    records = pd.read_parquet(p / RECORDS)
    records = records_frame(list(records.itertuples(index=False, name=None)))
    summary = PhaseSummary.model_validate_json((p / PHASE).read_text(encoding="utf-8"))
    return records, summary


def load_result(folder: str | Path) -> AuditResult:
    """Read audit_result.json back."""
    return AuditResult.model_validate_json((Path(folder) / RESULT).read_text(encoding="utf-8"))
