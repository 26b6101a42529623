"""Writing probe records to the output folder (the investigation's export)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from auditkit.artifacts import atomic_write_text
from auditkit.probes.analysis import ProbeResult, history_row


def export_records(results: Sequence[ProbeResult], output_dir: str | Path) -> Path:
    """Write every probe run's records (one CSV, a `run` column numbering the runs) and the
    results table beside it into a new folder `<output_dir>/probes-<UTC time>/`; returns it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(output_dir) / f"probes-{stamp}"
    folder.mkdir(parents=True, exist_ok=False)
    frames = [r.records.assign(run=i, title=r.title) for i, r in enumerate(results, 1)]
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    atomic_write_text(folder / "records.csv", records.to_csv(index=False))
    table = pd.DataFrame([history_row(r) | {"finding": r.finding} for r in results])
    atomic_write_text(folder / "results.csv", table.to_csv(index=False))
    return folder
