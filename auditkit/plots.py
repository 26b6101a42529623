"""Matplotlib figures of audit records: latency over time, ECDF, rolling QPS, TTFT vs decode.

Every helper takes the phases (a mapping name → records DataFrame, or PhaseResult objects) and
an optional `ax`, and returns the Figure, so notebooks can show it, tests can inspect it and the
demo can save it as PNG. Colour says a phase's role, the same in every plot (reference blue,
audit orange, control green, warm-up grey), so the blocks of a block design (R A A R ..., 17
phases by default) read as two groups at a glance: one shared time axis with each block a
shaded span, legends by role (a handful of entries, whatever the number of blocks), each block
a thin line where a plot shows distributions. Records use integer nanoseconds (DESIGN §6);
axes show ms and s because people read those.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from auditkit.metrics import ChunkedValues, median_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from auditkit.results import PhaseResult

PhasesLike = Mapping[str, "pd.DataFrame | PhaseDigest"] | Iterable["PhaseResult"] | pd.DataFrame

# Colour-blind-safe (Okabe-Ito): one colour per role, never cycled through phases.
ROLE_COLOURS: dict[str, str] = {
    "reference": "#0072B2",
    "audit": "#E69F00",
    "control": "#009E73",
    "warm-up": "#8C8C8C",
    "other": "#CC79A7",
}
#: the roles in legend order
ROLES = tuple(ROLE_COLOURS)
EXTRA_COLOURS = ("#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
FIGSIZE = (8.0, 4.0)
#: the shared-time-axis plots are wider: 17 blocks side by side
WIDE = (10.0, 4.2)


def phase_frames(phases: PhasesLike) -> dict[str, pd.DataFrame | PhaseDigest]:
    """Normalise the accepted inputs to an ordered {phase name: records} dict: a phase whose
    records are in memory as its PLOT_COLUMNS, one left in its files as a `PhaseDigest`."""
    if isinstance(phases, pd.DataFrame):
        names = list(dict.fromkeys(phases["phase"].astype(str)))
        return {n: phases[phases["phase"].astype(str) == n] for n in names}
    if isinstance(phases, Mapping):
        return {str(k): v for k, v in phases.items()}
    return {p.name: plot_source(p) for p in phases}


def plot_source(phase: PhaseResult) -> pd.DataFrame | PhaseDigest:
    """What the figures read of a phase: its PLOT_COLUMNS when its records are in memory, a
    `PhaseDigest` (read a chunk at a time, never a whole column) when they are in its files."""
    if isinstance(phase.source, pd.DataFrame) or "records" in phase.__dict__:
        return phase.columns(*PLOT_COLUMNS)
    return PhaseDigest.read(phase)


@dataclass(frozen=True)
class PhaseDigest:
    """A phase left in its files (more than `records_io.LAZY_ROWS` rows), as the figures read
    it: counts and ranges from one read of its PLOT_COLUMNS a chunk at a time; each figure
    then reads the columns it draws again, a chunk at a time. Memory is a chunk plus what is
    drawn (MAX_POINTS points, the ECDF's MAX_POINTS steps), whatever the phase's length.

    Rows come in the files' order: the table's once records.parquet is written (the runner
    writes a phase before any figure), completion order while only its part files exist."""

    phase: PhaseResult
    rows: int
    #: completed queries (status ok, with a latency)
    ok: int
    #: the last completion or send time (s)
    span_s: float
    #: every query scheduled at 0
    offline: bool
    #: completed queries with a time to first token
    ttft: int
    #: completed queries' smallest and largest completion time (ns)
    done_ns: tuple[int, int] | None

    @classmethod
    def read(cls, phase: PhaseResult) -> PhaseDigest:
        rows = ok = ttft = 0
        span = 0.0
        offline = True
        done: tuple[int, int] | None = None
        for chunk in phase.chunks(*PLOT_COLUMNS):
            rows += len(chunk)
            span = max(span, _span_s(chunk))
            offline = offline and bool((chunk["scheduled_ns"].fillna(0) == 0).all())
            good = _ok(chunk)
            ok += len(good)
            ttft += int(good["ttft_ns"].notna().sum())
            if len(good):
                low, high = int(good["completed_ns"].min()), int(good["completed_ns"].max())
                done = (low, high) if done is None else (min(done[0], low), max(done[1], high))
        return cls(phase, rows, ok, span, offline and rows > 0, ttft, done)

    def __len__(self) -> int:
        return self.rows

    def ok_chunks(self, *columns: str) -> Iterator[pd.DataFrame]:
        """Each chunk's completed queries (`_ok`), only `columns`."""
        for chunk in self.phase.chunks("status", "latency_ns", *columns):
            yield _ok(chunk)[list(columns)]

    def values(self, column: str, scale: float) -> Callable[[], Iterator[np.ndarray]]:
        """A reader of a column over the completed queries (float64 / scale), chunk by chunk."""
        return lambda: (_ns(c[column], scale) for c in self.ok_chunks(column))


def phase_role(name: str) -> str:
    """A phase's role from its name: reference_3 → reference, audit_x1_2 → audit, warmup →
    warm-up, control* → control; anything else → other."""
    base = name.lower()
    if base.startswith("warm"):
        return "warm-up"
    for role in ("reference", "audit", "control"):
        if base.startswith(role):
            return role
    return "other"


def phase_colour(name: str, position: int = 0) -> str:
    """The colour of a phase: its role's (every block of a role has the same colour)."""
    del position  # kept for callers that number phases: colour no longer cycles with it
    return ROLE_COLOURS[phase_role(name)]


def _block_label(name: str) -> str:
    """A short label for a block over the time axis: reference_3 → R3, audit_x1_2 → Ax1.2."""
    letter = {"reference": "R", "audit": "A", "control": "C", "warm-up": "W"}.get(phase_role(name))
    if letter is None:
        return name
    rest = name[len(name.split("_")[0]) :].lstrip("_").replace("_", ".")
    return f"{letter}{rest}"


def _role_legend(ax: Axes, counts: Mapping[str, str], **kwargs: Any) -> None:
    """One legend entry per role present: its colour and `counts[role]` as its text."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=ROLE_COLOURS[r], edgecolor="none", label=f"{r}: {counts[r]}")
        for r in ROLES
        if r in counts
    ]
    ax.legend(handles=handles, **kwargs)


def _shade_blocks(
    ax: Axes, frames: Mapping[str, pd.DataFrame | PhaseDigest], offsets: Mapping[str, float]
) -> None:
    """Each phase a shaded span in its role's colour on the shared time axis, its short name
    above the plot (W, R1, A1, A2, R2 ...; every n-th when there are too many to read)."""
    names = list(frames)
    every = max(1, -(-len(names) // 24))
    ticks, labels = [], []
    for i, name in enumerate(names):
        start = offsets[name]
        end = start + _span_s(frames[name])
        ax.axvspan(start, end, color=phase_colour(name), alpha=0.10, linewidth=0)
        if i:
            ax.axvline(start, color="0.7", linewidth=0.6)
        if i % every == 0:
            ticks.append((start + end) / 2)
            labels.append(_block_label(name))
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks, labels, fontsize=7)
    top.tick_params(length=0, pad=1)


def _by_role(frames: Mapping[str, pd.DataFrame | PhaseDigest]) -> dict[str, list[str]]:
    """Phase names grouped by role, roles in legend order."""
    out: dict[str, list[str]] = {}
    for name in frames:
        out.setdefault(phase_role(name), []).append(name)
    return {r: out[r] for r in ROLES if r in out}


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
    mask = ((records["status"] == "ok") & records["latency_ns"].notna()).fillna(False)
    mask = mask.astype(bool)
    # every row completed (the usual phase): no copy of a possibly large frame
    return records if bool(mask.all()) else records[mask]


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
    keep = y >= np.nanpercentile(y, 99.9)
    keep[::k] = True  # every k-th (no index array of the phase's length)
    return keep, k


def _ecdf_steps(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_steps(*ecdf(values))` without the cumulative fractions of every value."""
    xs = np.sort(values)
    n = len(xs)
    if n <= MAX_POINTS:
        return xs, np.arange(1, n + 1) / max(n, 1)
    idx = np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(np.int64))
    return xs[idx], (idx + 1) / n


def _steps(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An ECDF at ~MAX_POINTS evenly spaced ranks (first and last kept)."""
    if len(xs) <= MAX_POINTS:
        return xs, ys
    idx = np.unique(np.linspace(0, len(xs) - 1, MAX_POINTS).astype(np.int64))
    return xs[idx], ys[idx]


def _span_s(rec: pd.DataFrame | PhaseDigest) -> float:
    """A phase's length (s): its last completion or send time."""
    if isinstance(rec, PhaseDigest):
        return rec.span_s
    # the larger of two maxima: no concatenated copy of both columns of a large phase
    ends = [float(m) for m in (rec["completed_ns"].max(), rec["sent_ns"].max()) if pd.notna(m)]
    return max(ends) / 1e9 if ends else 0.0


def phase_offsets(frames: Mapping[str, pd.DataFrame | PhaseDigest]) -> dict[str, float]:
    """Start of each phase on a shared time axis (s): phases ran back to back, in order.

    Record times are relative to their own phase start, so each phase is shifted by the
    length of the phases before it (its last completion or send time).
    """
    starts = np.cumsum([0.0, *(_span_s(rec) for rec in frames.values())])
    return {name: float(start) for name, start in zip(frames, starts, strict=False)}


def latency_over_time(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """Per-query latency (ms) against time (s), every phase on one shared time axis: each
    block a shaded span in its role's colour with its short name above (R1, A1, ...), dots
    coloured by role, a legend by role (queries per role) outside the data."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax, WIDE)
    offsets = phase_offsets(frames)
    if len(frames) > 1:
        _shade_blocks(ax, frames, offsets)
    counts: dict[str, list[int]] = {}
    thinned = 1
    for name, rec in frames.items():
        tally = counts.setdefault(phase_role(name), [0, 0, 0])
        tally[2] += 1
        if isinstance(rec, PhaseDigest):
            tally[0] += rec.ok
            tally[1] += rec.rows - rec.ok
            read = _pairs(rec, "completed_ns", "latency_ns")
            done, latency, k = _sample(read, rec.ok)
            x, y = done / 1e9 + offsets[name], latency / 1e6
        else:
            ok = _ok(rec)
            tally[0] += len(ok)
            tally[1] += len(rec) - len(ok)
            ok, k = _thin_k(ok)
            x = _ns(ok["completed_ns"], 1e9) + offsets[name]
            y = _ns(ok["latency_ns"], 1e6)
        thinned = max(thinned, k)
        ax.scatter(x, y, s=6, alpha=0.55, color=phase_colour(name), linewidths=0)
    if _offline(frames):
        ax.text(
            0.01,
            0.97,
            "offline: all queries scheduled at phase start, so latency includes queueing",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            color="0.35",
        )
    labels = {role: _count_text(*tally) for role, tally in counts.items()}
    title = "Per-query latency over time"
    if thinned > 1:
        title += f" (1 in {thinned} queries drawn, plus the slowest 0.1 %)"
    ax.set_xlabel("time since the first phase started (s)")
    ax.set_ylabel("query latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(sum(_span_s(r) for r in frames.values()), 1e-9))
    ax.grid(True, axis="y", alpha=0.3)
    _role_legend(ax, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def _thin_k(ok: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """At most ~MAX_POINTS of a phase's completed queries to draw, and 1 in how many."""
    keep, k = _keep(ok["latency_ns"].astype("float64").to_numpy())
    return (ok, 1) if k == 1 else (ok[keep], k)


def _count_text(ok: int, failed: int, blocks: int) -> str:
    """'60 ok, 1 failed in 8 blocks' for a role's legend entry."""
    text = f"{ok} ok" + (f", {failed} failed" if failed else "")
    return text + (f" in {blocks} blocks" if blocks > 1 else "")


def _offline(frames: dict[str, pd.DataFrame | PhaseDigest]) -> bool:
    """Every query scheduled at t=0 (offline), so latency grows with queue position."""
    return all(
        r.offline
        if isinstance(r, PhaseDigest)
        else len(r) and (r["scheduled_ns"].fillna(0) == 0).all()
        for r in frames.values()
    )


def _pairs(
    digest: PhaseDigest, x: str, y: str
) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A reader of two columns (float64 ns) over a phase's completed queries, chunk by chunk."""
    return lambda: ((_ns(c[x], 1), _ns(c[y], 1)) for c in digest.ok_chunks(x, y))


def _sample(
    read: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], n: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """`_keep` of points read a chunk at a time (n of them): the kept x and y, and k. The
    slowest 0.1 % is every y at or above y's 99.9th percentile (numpy's, exactly)."""
    k = max(1, -(-n // MAX_POINTS))
    threshold = -np.inf
    if k > 1:
        threshold = _percentiles(lambda: (y for _, y in read()), [99.9])[0]
    xs, ys = [], []
    at = 0
    for x, y in read():
        keep = y >= threshold
        keep[(-at) % k :: k] = True  # the every-k-th of the whole phase's order
        at += len(y)
        xs.append(x[keep])
        ys.append(y[keep])
    return _joined(xs), _joined(ys), k


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.array([])


def _percentiles(read: Callable[[], Iterable[np.ndarray]], qs: list[float]) -> list[float]:
    """`np.percentile(values, qs)` (linear) of values read a chunk at a time: exact order
    statistics (`metrics.order_statistics`), interpolated as numpy does."""
    values = ChunkedValues.scan(read)
    n = values.count
    if n <= MAX_POINTS:  # few: numpy itself
        return [float(v) for v in np.percentile(_joined(list(read())), qs)]
    virtual = (n - 1) * np.true_divide(np.asarray(qs, dtype=float), 100)
    below = np.minimum(np.floor(virtual), n - 1).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    wanted = sorted({*below.tolist(), *above.tolist()})
    found = dict(zip(wanted, values.at(wanted), strict=True))
    a = np.array([found[i] for i in below.tolist()], dtype=float)
    b = np.array([found[i] for i in above.tolist()], dtype=float)
    gamma = virtual - below
    diff = b - a
    # numpy's _lerp: from the upper end when the weight is past one half
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return [float(v) for v in out]


def ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted values and their cumulative fractions (1/n … 1)."""
    xs = np.sort(values)
    return xs, np.arange(1, len(xs) + 1) / max(len(xs), 1)


def latency_ecdf(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """Empirical CDF of query latency: one thick line per role (its blocks pooled, p50 and
    p90 in the legend) over a thin line per block in the same colour, so the spread between
    blocks shows without a legend entry each."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax)
    labels: dict[str, str] = {}
    for role, names in _by_role(frames).items():
        colour = ROLE_COLOURS[role]
        if any(isinstance(frames[n], PhaseDigest) for n in names):
            label = _role_ecdf_chunked(ax, [frames[n] for n in names], role)
            if label:
                labels[role] = label
            continue
        pooled = []
        for name in names:
            frame = frames[name]
            assert isinstance(frame, pd.DataFrame)
            lat = _ns(_ok(frame)["latency_ns"], 1e6)
            pooled.append(lat)
            if len(names) > 1 and len(lat):
                xs, ys = _ecdf_steps(lat)
                ax.step(xs, ys, where="post", color=colour, linewidth=0.7, alpha=0.35)
        lat = pooled[0] if len(pooled) == 1 else np.concatenate(pooled) if pooled else np.array([])
        if len(lat) == 0:
            continue
        xs, ys = _ecdf_steps(lat)
        # audit dashed over reference solid: two equal distributions still show both lines
        style = "--" if role == "audit" else "-"
        ax.step(xs, ys, where="post", color=colour, linewidth=2.2, linestyle=style)
        p50, p90 = np.percentile(lat, [50, 90])
        blocks = f" ({len(names)} blocks pooled)" if len(names) > 1 else ""
        labels[role] = f"p50 {p50:.3g} ms, p90 {p90:.3g} ms{blocks}"
    ax.axhline(0.9, color="0.6", linestyle="--", linewidth=0.8)
    ax.set_xlabel("query latency (ms)")
    ax.set_ylabel("fraction of queries ≤ latency")
    title = "Latency distribution (ECDF)"
    if len(frames) > len(labels):
        title += ": thick = role pooled, thin = one block"
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    _role_legend(ax, labels, loc="lower right", fontsize=8)
    return fig


def _role_ecdf_chunked(ax: Axes, recs: list[pd.DataFrame | PhaseDigest], role: str) -> str:
    """`latency_ecdf`'s lines of one role some of whose phases are in their files: the same
    lines (a chunk of latencies at a time); the role's legend text ("" when none completed)."""
    colour = ROLE_COLOURS[role]
    readers = [_latencies_ms(rec) for rec in recs]
    scans = [ChunkedValues.scan(read) for read in readers]
    if len(recs) > 1:
        for scan in scans:
            if scan.count:
                ax.step(*_ecdf_chunked(scan), where="post", color=colour, linewidth=0.7, alpha=0.35)
    live = [s for s in scans if s.count]
    if not live:
        return ""

    def pooled_read() -> Iterator[np.ndarray]:
        for read in readers:
            yield from read()

    pooled = ChunkedValues(
        pooled_read,
        sum(s.count for s in live),
        min(s.lo for s in live),
        max(s.hi for s in live),
        sum(s.total for s in live),
    )
    style = "--" if role == "audit" else "-"
    ax.step(*_ecdf_chunked(pooled), where="post", color=colour, linewidth=2.2, linestyle=style)
    p50, p90 = _percentiles(pooled_read, [50, 90])
    blocks = f" ({len(recs)} blocks pooled)" if len(recs) > 1 else ""
    return f"p50 {p50:.3g} ms, p90 {p90:.3g} ms{blocks}"


def _latencies_ms(rec: pd.DataFrame | PhaseDigest) -> Callable[[], Iterator[np.ndarray]]:
    """A reader of a phase's completed latencies (ms), chunk by chunk."""
    if isinstance(rec, PhaseDigest):
        return rec.values("latency_ns", 1e6)
    return lambda: iter([_ns(_ok(rec)["latency_ns"], 1e6)])


def _ecdf_chunked(values: ChunkedValues) -> tuple[np.ndarray, np.ndarray]:
    """An ECDF's steps from values read a chunk at a time. Up to MAX_POINTS values: read
    whole, `_ecdf_steps` (the points it always drew). Beyond: the exact fraction of values at
    or below each of MAX_POINTS evenly spaced latencies from the smallest to the largest
    (each chunk sorted, counted with searchsorted). The in-memory path draws MAX_POINTS evenly
    spaced ranks instead; both are exact points of the same step function, 20x finer than a
    pixel of the axis (which spans the same smallest to largest), so the figure looks the same,
    and an even grid of latencies needs no order statistic of its own (each would cost reads)."""
    if values.count <= MAX_POINTS:
        return _ecdf_steps(_joined(list(values.read())))
    xs = np.linspace(float(values.lo), float(values.hi), MAX_POINTS)
    counts = np.zeros(MAX_POINTS, np.int64)
    for chunk in values.read():
        counts += np.searchsorted(np.sort(chunk), xs, side="right")
    return xs, counts / values.count


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


def _last_done_s(rec: pd.DataFrame | PhaseDigest) -> float | None:
    """A phase's last completion (s), None when nothing completed."""
    if isinstance(rec, PhaseDigest):
        return rec.done_ns[1] / 1e9 if rec.done_ns is not None else None
    ok = _ok(rec)
    return float(ok["completed_ns"].max()) / 1e9 if len(ok) else None


def _rolling_qps_chunked(
    digest: PhaseDigest, window_s: float
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """`rolling_qps` of a phase's completions read a chunk at a time (each chunk sorted and
    counted at the grid's points: the same counts), its completions and last one (s)."""
    if digest.done_ns is None or window_s <= 0:
        return np.array([]), np.array([]), 0, 0.0
    first, last = digest.done_ns[0] / 1e9, digest.done_ns[1] / 1e9
    grid = np.linspace(first, last, 200)
    counts = np.zeros(len(grid), np.int64)
    for done in digest.values("completed_ns", 1e9)():
        t = np.sort(done)
        counts += np.searchsorted(t, grid, side="right") - np.searchsorted(
            t, grid - window_s, "right"
        )
    span = np.clip(grid - first, window_s / 4, window_s)
    return grid, counts / span, digest.ok, last


def throughput_over_time(
    phases: PhasesLike, ax: Axes | None = None, window_s: float | None = None
) -> Figure:
    """Rolling completed queries per second of each phase on the shared time axis, coloured
    by role, blocks shaded; the legend gives each role's mean rate."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax, WIDE)
    offsets = phase_offsets(frames)
    if len(frames) > 1:
        _shade_blocks(ax, frames, offsets)
    durations = [d for d in map(_last_done_s, frames.values()) if d is not None]
    # a fifth of the shortest phase: wide enough to smooth the count quantisation of short
    # mock runs, narrow enough to show warm-up and tail-off
    window = window_s or max(min(durations, default=1.0) / 5, 0.005)
    done_by_role: dict[str, list[float]] = {}
    for name, rec in frames.items():
        if isinstance(rec, PhaseDigest):
            grid, qps, count, last = _rolling_qps_chunked(rec, window)
        else:
            done = _ns(_ok(rec)["completed_ns"], 1e9)
            grid, qps = rolling_qps(done, window)
            count, last = len(done), float(done.max()) if len(done) else 0.0
        if len(grid) == 0:
            continue
        tally = done_by_role.setdefault(phase_role(name), [0.0, 0.0])
        tally[0] += count
        tally[1] += max(last, 1e-9)
        ax.plot(grid + offsets[name], qps, color=phase_colour(name), linewidth=1.6)
    labels = {r: f"mean {n / t:.4g} queries/s" for r, (n, t) in done_by_role.items()}
    ax.set_xlabel("time since the first phase started (s)")
    ax.set_ylabel("throughput (queries/s)")
    ax.set_title(f"Rolling throughput ({window * 1e3:.3g} ms window)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(sum(_span_s(r) for r in frames.values()), 1e-9))
    ax.grid(True, axis="y", alpha=0.3)
    _role_legend(ax, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def has_ttft(phases: PhasesLike) -> bool:
    """True when the run streamed (some completed query has a time to first token)."""
    return any(
        r.ttft > 0 if isinstance(r, PhaseDigest) else _ok(r)["ttft_ns"].notna().any()
        for r in phase_frames(phases).values()
    )


def ttft_vs_decode(phases: PhasesLike, ax: Axes | None = None) -> Figure:
    """TTFT (ms) against decode time (ms) per query: prefix/KV reuse moves points left only;
    a response cache collapses both. Draws a note instead when the run was not streamed."""
    frames = phase_frames(phases)
    fig, ax = _axes(ax)
    drew = False
    for i, (name, rec) in enumerate(frames.items()):
        colour = phase_colour(name, i)
        if isinstance(rec, PhaseDigest):
            if not rec.ttft:
                continue
            read = _ttft_decode(rec)
            ttft, decode, k = _sample(read, rec.ttft)
            total = rec.ttft
            # rec.ttft > 0: both have values
            mid_ttft = median_of(_nth(read, 0)) or 0.0
            mid_decode = median_of(_nth(read, 1)) or 0.0
        else:
            ok = _ok(rec)
            ok = ok[ok["ttft_ns"].notna()]
            if len(ok) == 0:
                continue
            ttft = _ns(ok["ttft_ns"], 1e6)
            decode = _ns(ok["latency_ns"], 1e6) - ttft
            keep, k = _keep(decode)
            mid_ttft, mid_decode = float(np.median(ttft)), float(np.median(decode))
            total = len(ttft)
            ttft, decode = ttft[keep], decode[keep]
        ax.scatter(ttft, decode, s=10, alpha=0.5, color=colour, linewidths=0)
        if k > 1:
            note = f"{name}: {len(ttft):,} of {total:,} queries drawn"
            ax.text(0.99, 0.01, note, transform=ax.transAxes, ha="right", fontsize=7, color="0.35")
        ax.scatter(
            [mid_ttft],
            [mid_decode],
            s=140,
            marker="X",
            color=colour,
            edgecolors="black",
            label=(f"{name}: median TTFT {mid_ttft:.3g} ms, decode {mid_decode:.3g} ms"),
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


def _ttft_decode(digest: PhaseDigest) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A reader of (TTFT, decode) in ms over the completed queries with a TTFT, by chunk."""

    def read() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for chunk in digest.ok_chunks("ttft_ns", "latency_ns"):
            chunk = chunk[chunk["ttft_ns"].notna()]
            ttft = _ns(chunk["ttft_ns"], 1e6)
            yield ttft, _ns(chunk["latency_ns"], 1e6) - ttft

    return read


def _nth(
    read: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], i: int
) -> Callable[[], Iterator[np.ndarray]]:
    """A reader of the i-th array of each pair `read` yields."""
    return lambda: (pair[i] for pair in read())


def audit_figures(phases: PhasesLike) -> dict[str, Figure]:
    """Every standard figure of a run, keyed by a file-friendly name (each phase read once
    into what the figures draw: a phase left in its files as a `PhaseDigest`)."""
    phases = phase_frames(phases)
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
