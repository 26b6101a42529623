"""Matplotlib figures of audit records: latency over time, ECDF, rolling QPS, TTFT vs decode.

Every helper takes the phases (a mapping name → records DataFrame, or PhaseResult objects) and
an optional `ax`, and returns the Figure, so notebooks can show it, tests can inspect it and the
demo can save it as PNG. Phases keep one colour everywhere (reference blue, audit orange).
Records use integer nanoseconds (DESIGN §6); axes show ms and s because people read those.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from auditkit.results import PhaseResult

PhasesLike = Mapping[str, pd.DataFrame] | Iterable["PhaseResult"] | pd.DataFrame

# Colour-blind-safe pair (Okabe-Ito blue/orange) first; more phases cycle through the rest.
PHASE_COLOURS: dict[str, str] = {"reference": "#0072B2", "audit": "#E69F00"}
EXTRA_COLOURS = ("#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
FIGSIZE = (8.0, 4.0)


def phase_frames(phases: PhasesLike) -> dict[str, pd.DataFrame]:
    """Normalise the accepted inputs to an ordered {phase name: records} dict."""
    if isinstance(phases, pd.DataFrame):
        names = list(dict.fromkeys(phases["phase"].astype(str)))
        return {n: phases[phases["phase"].astype(str) == n] for n in names}
    if isinstance(phases, Mapping):
        return {str(k): v for k, v in phases.items()}
    return {p.name: p.records for p in phases}


def phase_colour(name: str, position: int = 0) -> str:
    """The fixed colour of a phase (same phase, same colour, in every plot)."""
    if name in PHASE_COLOURS:
        return PHASE_COLOURS[name]
    return EXTRA_COLOURS[position % len(EXTRA_COLOURS)]


def _axes(ax: Axes | None, figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert fig is not None
        return fig, ax  # type: ignore[return-value]
    return fig_and_axes(figsize)


def fig_and_axes(figsize: tuple[float, float] = FIGSIZE) -> tuple[Figure, Axes]:
    """A new figure with one axes.

    On the main thread pyplot makes it (importing pyplot is what registers the inline
    formatter, so a returned figure renders in Jupyter) and closes it at once so it shows once,
    as the cell's value. Worker threads (widgets.py) get a bare Figure: pyplot is not
    thread-safe.
    """
    if threading.current_thread() is threading.main_thread():
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=figsize, layout="constrained")
        plt.close(fig)
    else:
        from matplotlib.figure import Figure as BareFigure

        fig = BareFigure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _ok(records: pd.DataFrame) -> pd.DataFrame:
    """Completed queries only (failed ones have no latency)."""
    mask = (records["status"] == "ok") & records["latency_ns"].notna()
    return records[mask.fillna(False).astype(bool)]


def _ns(series: pd.Series, scale: float) -> np.ndarray:
    return series.astype("float64").to_numpy() / scale


#: per-query points a scatter draws at most per phase: beyond it a deterministic sample is
#: drawn (every k-th query and every query above the phase's 99.9th latency percentile, so
#: spikes and the tail stay visible) and the legend says so; ECDFs are drawn at this many
#: quantiles (exact at screen resolution). 1M-point phases then render in about a second.
MAX_POINTS = 20_000
#: the record columns the figures read: a large saved run can be loaded with just these
#: (`auditkit.records_io.read_records(phase_dir, PLOT_COLUMNS)`)
PLOT_COLUMNS = ("status", "scheduled_ns", "sent_ns", "completed_ns", "latency_ns", "ttft_ns")


def _keep(y: np.ndarray) -> tuple[np.ndarray, int]:
    """Which points to draw: every k-th (k so that ~MAX_POINTS remain) plus the top 0.1 % of
    y; and k (1: all of them)."""
    k = -(-len(y) // MAX_POINTS)
    if k <= 1:
        return np.ones(len(y), bool), 1
    return (np.arange(len(y)) % k == 0) | (y >= np.nanpercentile(y, 99.9)), k


def _thin(ok: pd.DataFrame, label: str) -> tuple[pd.DataFrame, str]:
    """At most ~MAX_POINTS of a phase's completed queries to draw, and the label saying so."""
    keep, k = _keep(ok["latency_ns"].astype("float64").to_numpy())
    return (ok, label) if k == 1 else (ok[keep], f"{label}; 1 in {k} drawn + slowest 0.1 %")


def _steps(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ECDF at ~MAX_POINTS evenly spaced ranks (first and last kept)."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    idx = np.unique(np.linspace(0, len(xs) - 1, MAX_POINTS).astype(np.int64))
    return xs[idx], ys[idx]


def _span_s(rec: pd.DataFrame) -> float:
    """A phase's length (s): its last completion or send time."""
    ends = pd.concat([rec["completed_ns"], rec["sent_ns"]]).dropna()
    return float(ends.max()) / 1e9 if len(ends) else 0.0


def phase_offsets(frames: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """Start of each phase on a shared time axis (s): phases ran back to back, in order.

    Record times are relative to their own phase start, so each phase is shifted by the
    length of the phases before it (its last completion or send time).
    """
    starts = np.cumsum([0.0, *(_span_s(rec) for rec in frames.values())])
    return {name: float(start) for name, start in zip(frames, starts, strict=False)}


def _mark_boundaries(ax: Axes, offsets: Mapping[str, float]) -> None:
    for name, start in list(offsets.items())[1:]:
        ax.axvline(start, color="0.5", linestyle=":", linewidth=1)
        ax.annotate(
            f"{name} starts",
            (start, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="0.35",
        )


#: a phase's panel is at least this share of the longest phase's width (a short audit phase
#: beside a long warm-up and reference would otherwise be a sliver)
MIN_PANEL_SHARE = 0.3


def latency_over_time(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """Per-query latency (ms) against time (s): one panel per phase, side by side on a shared
    latency axis, each at least MIN_PANEL_SHARE of the widest; the legend sits above the
    panels, never over the points. On a given `ax`: all phases on one shared time axis."""
    frames = phase_frames(phases)
    if ax is not None or len(frames) < 2:
        return _latency_shared_axis(frames, ax)
    spans = [max(_span_s(rec), 1e-9) for rec in frames.values()]
    widths = [max(span, MIN_PANEL_SHARE * max(spans)) for span in spans]
    fig, first = fig_and_axes((max(FIGSIZE[0], 2.2 * len(frames)), FIGSIZE[1]))
    fig.delaxes(first)
    axes = fig.subplots(1, len(frames), sharey=True, gridspec_kw={"width_ratios": widths})
    handles, labels = [], []
    for i, ((name, rec), panel) in enumerate(zip(frames.items(), axes, strict=True)):
        dots, label = _latency_dots(panel, name, rec, i)
        handles.append(dots)
        labels.append(label)
        panel.set_title(name, fontsize=9)
        panel.grid(True, alpha=0.3)
    axes[0].set_xlabel("time in phase (s)", fontsize=8)
    axes[0].set_ylabel("query latency (ms)")
    axes[0].set_ylim(bottom=0)
    if _offline(frames):
        fig.supxlabel(
            "offline: all queries scheduled at phase start, so latency includes queueing",
            fontsize=8,
            color="0.35",
        )
    # the legend (titled) sits in a band above the panels that the layout leaves free: inside
    # a panel it covered points, and in the layout it widened the first panel
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0.0, 0.0, 1.0, 0.78))
    legend = axes[0].legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.99),
        bbox_transform=fig.transFigure,
        ncols=min(len(labels), 4),
        markerscale=2,
        fontsize=8,
        frameon=False,
        title="Per-query latency over time, one panel per phase",
    )
    legend.set_in_layout(False)
    return fig


def _offline(frames: dict[str, pd.DataFrame]) -> bool:
    """Every query scheduled at t=0 (offline), so latency grows with queue position."""
    return all(len(r) and (r["scheduled_ns"].fillna(0) == 0).all() for r in frames.values())


def _latency_dots(
    ax: Axes, name: str, rec: pd.DataFrame, i: int, offset: float = 0.0
) -> tuple[Any, str]:
    """One phase's ok queries as dots (latency over completion time + `offset`), and their
    legend label."""
    ok = _ok(rec)
    failed = len(rec) - len(ok)
    label = f"{name} ({len(ok)} ok" + (f", {failed} failed)" if failed else ")")
    ok, label = _thin(ok, label)
    x, y = _ns(ok["completed_ns"], 1e9) + offset, _ns(ok["latency_ns"], 1e6)
    dots = ax.scatter(x, y, s=8, alpha=0.6, color=phase_colour(name, i), label=label, linewidths=0)
    return dots, label


def _latency_shared_axis(frames: dict[str, pd.DataFrame], ax: Axes | None) -> Figure:
    """All phases on one time axis (a given ax, or a single phase)."""
    fig, ax = _axes(ax)
    offsets = phase_offsets(frames)
    for i, (name, rec) in enumerate(frames.items()):
        _latency_dots(ax, name, rec, i, offsets[name])
    _mark_boundaries(ax, offsets)
    if _offline(frames):
        ax.text(
            0.01,
            0.97,
            "offline: all queries scheduled at phase start,\nso latency includes queueing",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="0.35",
        )
    ax.set_xlabel("time since the first phase started (s)")
    ax.set_ylabel("query latency (ms)")
    ax.set_title("Per-query latency over time")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    # outside the axes: inside, it covered the last phase's points
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=2, fontsize=8)
    return fig


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their cumulative fractions (1/n … 1)."""
    xs = np.sort(values)
    return xs, np.arange(1, len(xs) + 1) / max(len(xs), 1)


def latency_ecdf(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """Empirical CDF of query latency per phase; the legend carries p50 and p90."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax)
    for i, (name, rec) in enumerate(frames.items()):
        lat = _ns(_ok(rec)["latency_ns"], 1e6)
        if len(lat) == 0:
            continue
        xs, ys = _steps(*ecdf(lat))
        p50, p90 = np.percentile(lat, [50, 90])
        ax.step(
            xs,
            ys,
            where="post",
            color=phase_colour(name, i),
            linewidth=2,
            label=f"{name}: p50 {p50:.3g} ms, p90 {p90:.3g} ms",
        )
    ax.axhline(0.9, color="0.6", linestyle="--", linewidth=0.8)
    ax.set_xlabel("query latency (ms)")
    ax.set_ylabel("fraction of queries ≤ latency")
    ax.set_title("Latency distribution (ECDF)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def rolling_qps(times_s: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Completions per second in a trailing window, evaluated on an even grid of 200 points."""
    t = np.sort(times_s)
    if len(t) == 0 or window_s <= 0:
        return np.array([]), np.array([])
    grid = np.linspace(t[0], t[-1], 200)
    counts = np.searchsorted(t, grid, side="right") - np.searchsorted(t, grid - window_s, "right")
    # early points see a partial window: divide by the part of it that has elapsed
    span = np.clip(grid - t[0], window_s / 4, window_s)
    return grid, counts / span


def throughput_over_time(
    phases: PhasesLike, ax: Axes | None = None, window_s: float | None = None
) -> Figure:
    """Rolling completed queries per second, per phase, on the shared time axis."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax)
    offsets = phase_offsets(frames)
    durations = [float(_ok(r)["completed_ns"].max()) / 1e9 for r in frames.values() if len(_ok(r))]
    # a fifth of the shortest phase: wide enough to smooth the count quantisation of short
    # mock runs, narrow enough to show warm-up and tail-off
    window = window_s or max(min(durations, default=1.0) / 5, 0.005)
    for i, (name, rec) in enumerate(frames.items()):
        done = _ns(_ok(rec)["completed_ns"], 1e9)
        grid, qps = rolling_qps(done, window)
        if len(grid) == 0:
            continue
        mean = len(done) / max(float(done.max()), 1e-9)
        ax.plot(
            grid + offsets[name],
            qps,
            color=phase_colour(name, i),
            linewidth=2,
            label=f"{name} (mean {mean:.4g} queries/s)",
        )
    _mark_boundaries(ax, offsets)
    ax.set_xlabel("time since the first phase started (s)")
    ax.set_ylabel("throughput (queries/s)")
    ax.set_title(f"Rolling throughput ({window * 1e3:.3g} ms window)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def has_ttft(phases: PhasesLike) -> bool:
    """True when the run streamed (some completed query has a time to first token)."""
    return any(_ok(r)["ttft_ns"].notna().any() for r in phase_frames(phases).values())


def ttft_vs_decode(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """TTFT (ms) against decode time (ms) per query: prefix/KV reuse moves points left only;
    a response cache collapses both. Draws a note instead when the run was not streamed."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax)
    drew = False
    for i, (name, rec) in enumerate(frames.items()):
        ok = _ok(rec)
        ok = ok[ok["ttft_ns"].notna()]
        if len(ok) == 0:
            continue
        ttft = _ns(ok["ttft_ns"], 1e6)
        decode = _ns(ok["latency_ns"], 1e6) - ttft
        colour = phase_colour(name, i)
        keep, k = _keep(decode)
        ax.scatter(ttft[keep], decode[keep], s=10, alpha=0.5, color=colour, linewidths=0)
        if k > 1:
            note = f"{name}: {int(keep.sum()):,} of {len(ttft):,} queries drawn"
            ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", fontsize=7, color="0.35")
        ax.scatter(
            [np.median(ttft)],
            [np.median(decode)],
            s=140,
            marker="X",
            color=colour,
            edgecolors="black",
            label=(
                f"{name}: median TTFT {np.median(ttft):.3g} ms, decode {np.median(decode):.3g} ms"
            ),
        )
        drew = True
    if not drew:
        ax.text(
            0.5,
            0.5,
            "not streamed: no time-to-first-token\n(run with stream=True to split TTFT and decode)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right")
    ax.set_xlabel("time to first token (ms)")
    ax.set_ylabel("decode time: latency − TTFT (ms)")
    ax.set_title("Prefill vs decode per query")
    return fig


def audit_figures(phases: PhasesLike) -> dict[str, Figure]:
    """Every standard figure of a run, keyed by a file-friendly name."""
    figs = {
        "latency_over_time": latency_over_time(phases),
        "latency_ecdf": latency_ecdf(phases),
        "rolling_qps": throughput_over_time(phases),
    }
    if has_ttft(phases):
        figs["ttft_vs_decode"] = ttft_vs_decode(phases)
    return figs


def save_figures(figs: Mapping[str, Figure], folder: str | Path, dpi: int = 110) -> list[Path]:
    """Write each figure as <folder>/<name>.png; returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def probe_figure(
    records: pd.DataFrame, title: str = "", ax: Axes | None = None, **_: Any
) -> Figure:
    """A probe's queries: latency (and TTFT when streamed) in ms per step, one colour per group."""
    fig, ax = _axes(ax, (8.0, 3.6))
    groups = list(dict.fromkeys(records["group"].astype(str))) if len(records) else []
    for i, group in enumerate(groups):
        rows = records[records["group"] == group]
        colour = EXTRA_COLOURS[i % len(EXTRA_COLOURS)] if i >= 2 else ("#0072B2", "#E69F00")[i]
        ax.plot(rows["step"], rows["latency_ms"], "o-", color=colour, label=f"{group}: latency")
        if rows["ttft_ms"].notna().any():
            ax.plot(
                rows["step"], rows["ttft_ms"], "s--", color=colour, alpha=0.7,
                label=f"{group}: TTFT",
            )  # fmt: skip
    ax.set_xlabel("query number within the group")
    ax.set_ylabel("time (ms)")
    ax.set_title(title or "probe")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(loc="upper right", fontsize=8)
    return fig


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of a figure (for ipywidgets.Image, which updates safely from threads)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
