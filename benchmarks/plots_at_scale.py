"""Plots at scale: the notebook's figures for two phases of `--records` queries each.

Builds synthetic record tables (lognormal latencies over a 600 s phase), then times
`plots.audit_figures` and saving the figures as PNG. Per-query scatters draw at most
`plots.MAX_POINTS` points a phase (a deterministic sample, said in the legend) and ECDFs that
many quantiles. Last line: the total seconds (the target is <= 5 s for 1M points).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

from auditkit import plots


def frame(n: int, phase: str, seed: int) -> pd.DataFrame:
    """A record table of n completed queries (only what the figures read is realistic)."""
    rng = np.random.default_rng(seed)
    sent = np.sort(rng.integers(0, 600 * 10**9, n))
    lat = rng.lognormal(np.log(20e6), 0.3, n).astype(np.int64)
    data = {
        "phase": pd.Series([phase] * n, dtype="string"),
        "status": pd.Series(["ok"] * n, dtype="string"),
        "scheduled_ns": pd.Series(np.zeros(n, np.int64), dtype="Int64"),
        "sent_ns": pd.Series(sent, dtype="Int64"),
        "completed_ns": pd.Series(sent + lat, dtype="Int64"),
        "latency_ns": pd.Series(lat, dtype="Int64"),
        "ttft_ns": pd.Series([None] * n, dtype="Int64"),
    }
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="queries per phase")
    parser.add_argument("--all-points", action="store_true", help="no thinning (as before)")
    args = parser.parse_args()
    if args.all_points:
        plots.MAX_POINTS = 10**12
    phases = {
        "reference": frame(args.records, "reference", 1),
        "audit": frame(args.records, "audit", 2),
    }
    start = time.perf_counter()
    figs = plots.audit_figures(phases)
    built = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        plots.save_figures(figs, folder)
    done = time.perf_counter()
    print(f"{len(figs)} figures ({', '.join(figs)}) for 2 phases x {args.records:,} queries")
    print(f"build {built - start:.2f} s, render + save PNG {done - built:.2f} s")
    print(f"{done - start:.2f} s")


if __name__ == "__main__":
    main()
