"""plots.py: every helper returns a labelled Figure, draws on a given ax, and keeps phases apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from auditkit import plots
from auditkit.results import records_frame


def fake_records(phase: str, n: int, latency_ms: float, streamed: bool = False) -> pd.DataFrame:
    rows = []
    for i in range(n):
        lat = int(latency_ms * 1e6 * (1 + 0.1 * np.sin(i)))
        done = (i + 1) * 2_000_000 + lat
        ttft = lat // 3 if streamed else None
        rows.append(
            (phase, i, i % 7, 0, i * 2_000_000, done - lat + 10, None, done, lat, ttft,
             "ok", 200, None, 50, 32, 0, f"h{i}")
        )  # fmt: skip
    rows.append(
        (phase, n, 0, 0, 0, None, None, None, None, None, "timeout", None, "t", *[None] * 4)
    )
    return records_frame(rows)


@pytest.fixture
def phases() -> dict[str, pd.DataFrame]:
    return {
        "reference": fake_records("reference", 60, 10.0),
        "audit": fake_records("audit", 60, 2.0),
    }


def _ax(fig: Figure):  # type: ignore[no-untyped-def]
    return fig.axes[0]


@pytest.mark.parametrize(
    ("helper", "xunit", "yunit"),
    [
        (plots.latency_over_time, "(s)", "(ms)"),
        (plots.latency_ecdf, "(ms)", "fraction"),
        (plots.throughput_over_time, "(s)", "queries/s"),
    ],
)
def test_helpers_label_units_and_legend_phases(
    phases: dict[str, pd.DataFrame],
    helper,
    xunit: str,
    yunit: str,  # type: ignore[no-untyped-def]
) -> None:
    fig = helper(phases)
    assert isinstance(fig, Figure)
    ax = _ax(fig)
    assert xunit in ax.get_xlabel() and yunit in ax.get_ylabel()
    assert ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lbl.startswith("reference") for lbl in labels)
    assert any(lbl.startswith("audit") for lbl in labels)


def test_phase_colours_are_distinct_and_stable() -> None:
    assert plots.phase_colour("reference") != plots.phase_colour("audit")
    assert plots.phase_colour("reference", 5) == plots.phase_colour("reference", 0)


def test_draws_on_a_given_ax(phases: dict[str, pd.DataFrame]) -> None:
    fig, ax = plots.fig_and_axes()
    out = plots.latency_ecdf(phases, ax=ax)
    assert out is fig and len(ax.lines) >= 2


def test_accepts_a_single_records_frame(phases: dict[str, pd.DataFrame]) -> None:
    frame = pd.concat(list(phases.values()), ignore_index=True)
    assert list(plots.phase_frames(frame)) == ["reference", "audit"]


def test_shared_time_axis_puts_audit_after_reference(phases: dict[str, pd.DataFrame]) -> None:
    offsets = plots.phase_offsets(phases)
    assert offsets["reference"] == 0.0
    ref_end = float(phases["reference"]["completed_ns"].max()) / 1e9
    assert offsets["audit"] == pytest.approx(ref_end)


def test_failed_queries_are_counted_in_the_legend(phases: dict[str, pd.DataFrame]) -> None:
    fig = plots.latency_over_time(phases)
    labels = [t.get_text() for t in _ax(fig).get_legend().get_texts()]
    assert "reference: 60 ok, 1 failed" in labels


def test_rolling_qps_of_a_steady_stream() -> None:
    times = np.arange(0, 10, 0.01)  # 100 completions per second
    _grid, qps = plots.rolling_qps(times, window_s=1.0)
    assert np.median(qps[len(qps) // 4 :]) == pytest.approx(100, rel=0.05)


def test_ttft_plot_only_for_streamed_runs(phases: dict[str, pd.DataFrame]) -> None:
    assert not plots.has_ttft(phases)
    note = plots.ttft_vs_decode(phases)
    assert "not streamed" in _ax(note).texts[0].get_text()
    streamed = {"reference": fake_records("reference", 20, 10.0, streamed=True)}
    assert plots.has_ttft(streamed)
    ax = _ax(plots.ttft_vs_decode(streamed))
    assert "(ms)" in ax.get_xlabel() and "(ms)" in ax.get_ylabel()


def test_audit_figures_saved_as_png(phases: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    paths = plots.save_figures(plots.audit_figures(phases), tmp_path)
    assert {p.name for p in paths} == {
        "latency_over_time.png",
        "latency_ecdf.png",
        "rolling_qps.png",
    }
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_probe_figure_png_from_a_worker_thread() -> None:
    import threading

    frame = pd.DataFrame(
        {"group": ["a", "a", "b"], "step": [1, 2, 1], "latency_ms": [5.0, 1.0, 4.0],
         "ttft_ms": [2.0, 0.5, np.nan]}
    )  # fmt: skip
    out: list[bytes] = []
    t = threading.Thread(target=lambda: out.append(plots.figure_png(plots.probe_figure(frame))))
    t.start()
    t.join()
    assert out and out[0].startswith(b"\x89PNG")


def _blocks(phases: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The default alternating design's 17 phases: warm-up, then R A A R ... (8 pairs)."""
    out = {"warmup": phases["reference"]}
    for pair in range(1, 9):
        order = ("reference", "audit") if pair % 2 else ("audit", "reference")
        for role in order:
            out[f"{role}_{pair}"] = phases[role]
    return out


@pytest.mark.parametrize("helper", [plots.latency_over_time, plots.latency_ecdf,
                                    plots.throughput_over_time])  # fmt: skip
def test_seventeen_blocks_read_by_role(phases: dict[str, pd.DataFrame], helper: Any) -> None:
    blocks = _blocks(phases)
    fig = helper(blocks)
    ax = _ax(fig)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) <= 6, labels  # by role, not by block
    assert [lbl.split(":")[0] for lbl in labels] == ["reference", "audit", "warm-up"]
    # every block of a role has its role's colour; reference and audit differ
    assert plots.phase_colour("reference_7") == plots.phase_colour("reference_1")
    assert plots.phase_colour("audit_x1_2") == plots.phase_colour("audit")
    assert plots.phase_colour("reference_1") != plots.phase_colour("audit_1")
    assert plots.phase_colour("warmup") not in (plots.phase_colour("reference"),
                                                 plots.phase_colour("audit"))  # fmt: skip
    if helper is not plots.latency_ecdf:
        # one shared time axis: one axes, each block a shaded span, its short name on top
        assert len([a for a in fig.axes if a.get_legend() or a is ax]) == 1
        assert len(ax.patches) == 17
        top = ax.child_axes  # the secondary x axis above the plot
        names = [t.get_text() for a in top for t in a.get_xticklabels()]
        assert names[:4] == ["W", "R1", "A1", "A2"], names
