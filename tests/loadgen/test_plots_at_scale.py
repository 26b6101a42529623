"""Per-query plots of large phases draw a bounded, deterministic sample and say so on the plot;
the ECDF keeps its first and last points."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.collections import PathCollection

from auditkit import plots
from auditkit.records_io import rows_to_batch, to_frame


def _frame(phase: str, n: int) -> pd.DataFrame:
    lat = (10_000_000 + np.arange(n) * 1000).tolist()
    rows = [
        (phase, i, i % 50, 0, i * 1000, None, None, i * 1000 + lat[i], lat[i], None, "ok", 200,
         None, 10, 20, None, "h", "main")
        for i in range(n)
    ]  # fmt: skip
    return to_frame(pa_table(rows), keep_worker=False)


def pa_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    return pa.Table.from_batches([rows_to_batch(rows)])


def test_large_phases_are_thinned_and_say_so() -> None:
    n = 3 * plots.MAX_POINTS
    phases = {"reference": _frame("reference", n), "audit": _frame("audit", 100)}
    fig = plots.latency_over_time(phases)
    drawn = [
        len(np.asarray(c.get_offsets()))
        for ax in fig.axes
        for c in ax.collections
        if isinstance(c, PathCollection)
    ]
    assert sorted(drawn)[0] == 100  # a small phase is drawn whole
    assert plots.MAX_POINTS <= max(drawn) <= plots.MAX_POINTS + n // 1000 + 1
    legend = " ".join(t.get_text() for ax in fig.axes for lg in [ax.get_legend()] if lg
                      for t in lg.get_texts())  # fmt: skip
    assert "1 in 3 queries drawn" in fig.axes[0].get_title() and f"{n} ok" in legend


def test_ecdf_steps_keep_the_extremes() -> None:
    values = np.arange(5 * plots.MAX_POINTS, dtype=float)
    xs, ys = plots._steps(*plots.ecdf(values))
    assert len(xs) <= plots.MAX_POINTS
    assert xs[0] == 0 and xs[-1] == values[-1] and ys[-1] == 1.0


def test_figures_need_only_the_plot_columns(tmp_path: Path) -> None:
    from auditkit import records_io

    for name in ("reference", "audit"):
        records_io.write_records(tmp_path / name, _frame(name, 500))
    phases = {
        n: records_io.read_records(tmp_path / n, plots.PLOT_COLUMNS) for n in ("reference", "audit")
    }
    figs = plots.audit_figures(phases)
    assert set(figs) >= {"latency_over_time", "latency_ecdf", "rolling_qps"}
