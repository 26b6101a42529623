"""A large phase's records stay in its files (issue 24): PhaseResult hands out only the columns
asked for, summaries read the part files in chunks and equal the DataFrame path's, and
records.parquet written from the parts a slice at a time reads back as the same table."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from auditkit import metrics, records_io
from auditkit.data import SampleOrder
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, RunSpec
from auditkit.records_io import PartWriter, PhaseRecords, rows_to_batch
from auditkit.results import PhaseResult, PhaseSummary

MS = 1_000_000
STATUSES = ("ok",) * 12 + ("http_error", "timeout", "protocol_error", "cancelled")


def synthetic_rows(n: int, seed: int = 3) -> list[tuple[Any, ...]]:
    """`n` records as the recorder makes them, in completion order (not query order): two
    samples per query now and then (multi-stream shape), failures of three kinds with and
    without an error text, a few cancelled, repeated outputs, twins."""
    rng = random.Random(seed)
    out: list[tuple[Any, ...]] = []
    qid = 0
    while len(out) < n:
        scheduled = qid * 3 * MS
        for _ in range(1 + (qid % 5 == 0)):
            status = rng.choice(STATUSES)
            sent = None if status == "cancelled" else scheduled + rng.randrange(MS)
            done = None if sent is None else sent + rng.randrange(2 * MS, 40 * MS)
            ok = status == "ok"
            error = None if ok or rng.random() < 0.3 else f"{status} number {len(out)}"
            sample = rng.randrange(40)
            out.append((
                "p", qid, sample, scheduled, sent, sent, sent if ok else None, done,
                None if done is None else done - scheduled, None if not ok else MS,
                status, 200 if ok else 500, error, 20, 8 if ok else None, 0,
                f"{sample % 7:064x}" if ok else None, "twin" if qid % 9 == 0 else "main",
            ))  # fmt: skip
        qid += 1
    out = out[:n]
    # completion order: each row moves a little (what a concurrent phase looks like)
    return [row for _, row in sorted(enumerate(out), key=lambda p: p[0] + rng.randrange(60))]


def write_parts(folder: Path, rows: list[tuple[Any, ...]], per_part: int = 97) -> PhaseRecords:
    writer = PartWriter(folder)
    for lo in range(0, len(rows), per_part):
        writer.write(rows_to_batch(rows[lo : lo + per_part]))
    writer.close()
    return PhaseRecords(folder, tuple(writer.paths), len(rows))


@pytest.mark.parametrize(
    "load",
    [
        LoadPattern("offline", max_concurrency=8),
        LoadPattern("server", target_qps=300.0, target_latency_ns=30 * MS),
        LoadPattern("single-stream"),
        LoadPattern("multi-stream", samples_per_query=2),
    ],
    ids=lambda load: load.scenario,
)
def test_summary_from_part_files_equals_the_dataframe_path(
    load: LoadPattern, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # percentiles and early stopping from order statistics narrowed over several reads
    monkeypatch.setattr(metrics, "SELECT_HELD", 32)
    monkeypatch.setattr(metrics, "SELECT_BINS", 8)
    source = write_parts(tmp_path / "p", synthetic_rows(700))
    spec = RunSpec("p", SampleOrder.with_replacement(0), 650, load)
    from_files = summarize(source, spec)
    from_frame = summarize(source.frame(), spec)
    assert from_files == from_frame
    # the order-dependent fields: which failure is quoted, failures by status in order
    assert from_files.failed > 50 and len(from_files.failures_by_status) == 3
    assert list(from_files.failures_by_status) == list(from_frame.failures_by_status)
    assert any("first: " in r for r in from_files.invalid_reasons)


def test_columns_reads_only_the_columns_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_parts(tmp_path / "p", synthetic_rows(600))
    spec = RunSpec("p", SampleOrder.with_replacement(0), 600, LoadPattern("offline"))
    phase = PhaseResult(spec, source, PhaseSummary.model_construct())
    read: list[tuple[str, ...]] = []
    real = pq.read_table

    def spy(path: Any, columns: Any = None, **kw: Any) -> Any:
        read.append(tuple(columns) if columns is not None else ("<all>",))
        return real(path, columns=columns, **kw)

    monkeypatch.setattr(pq, "read_table", spy)
    got = phase.columns("latency_ns", "status")
    touched = {c for cols in read for c in cols}
    # the asked columns, and the two sort keys that put the rows in the table's order
    assert touched == {"latency_ns", "status", "query_id", "sent_ns"}
    assert "records" not in phase.__dict__  # the whole table was never built
    monkeypatch.setattr(pq, "read_table", real)
    whole = source.frame()
    pd.testing.assert_frame_equal(got, whole[["latency_ns", "status"]])
    assert phase.num_rows == 600 and phase.column_names[:2] == ("phase", "query_id")


def test_records_parquet_written_from_the_parts_reads_back_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "p"
    source = write_parts(folder, synthetic_rows(1000))
    expected = source.frame()
    # write it the large-phase way: slices of 128 rows gathered from the parts
    monkeypatch.setattr(records_io, "WHOLE_READ_ROWS", 10)
    monkeypatch.setattr(records_io, "WRITE_ROWS", 128)
    target = records_io.write_records(folder, source)
    assert not (folder / records_io.PARTS).exists()
    assert pq.ParquetFile(target).metadata.num_row_groups > 4
    pd.testing.assert_frame_equal(records_io.read_records(folder), expected)
    # the source now reads records.parquet: the same columns as before
    pd.testing.assert_frame_equal(
        source.columns(("query_id", "output_sha256")), expected[["query_id", "output_sha256"]]
    )
    # pandas reads it with the same dtypes as a frame written whole
    whole = tmp_path / "whole.parquet"
    expected.to_parquet(whole, index=False)
    assert pq.read_schema(target).equals(pq.read_schema(whole), check_metadata=True)


@pytest.mark.slow
def test_an_audit_through_part_files_writes_the_recorded_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden TEST04 run again with every phase left in its files: the same verdict and
    files, byte for byte (records.parquet apart, compared as a table)."""
    path = Path(__file__).parent / "audits" / "test_same_verdicts.py"
    spec = importlib.util.spec_from_file_location("golden_verdicts", path)
    assert spec is not None and spec.loader is not None
    golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(golden)
    monkeypatch.setattr(records_io, "LAZY_ROWS", 0)
    monkeypatch.setattr(golden, "WRITE", False)
    summarised: list[int] = []
    chunks = PhaseRecords.chunks

    def counted(self: PhaseRecords, names: tuple[str, ...]) -> Any:
        summarised.append(self.rows)
        return chunks(self, names)

    monkeypatch.setattr(PhaseRecords, "chunks", counted)
    golden.test_same_verdict_and_files_as_recorded("test04_offline_output", tmp_path)
    assert len(summarised) >= 2  # every phase was summarised from its part files


def test_figures_from_part_files_draw_what_the_dataframe_draws(tmp_path: Path) -> None:
    """The figures read a phase left in its files (written, as the runner does before any
    figure) as compact columns: the same lines and points as from its DataFrame."""
    from auditkit import plots

    source = write_parts(tmp_path / "p", synthetic_rows(400))
    records_io.write_records(tmp_path / "p", source)
    spec = RunSpec("audit", SampleOrder.with_replacement(0), 400, LoadPattern("offline"))
    summary = PhaseSummary.model_construct()
    lazy = PhaseResult(spec, source, summary)
    whole = PhaseResult(spec, source.frame(), summary)
    for build in (plots.latency_over_time, plots.latency_ecdf, plots.throughput_over_time):
        drawn = []
        for phase in (lazy, whole):
            ax = build([phase]).axes[0]
            lines = [line.get_xydata().tolist() for line in ax.lines]
            points = [c.get_offsets().tolist() for c in ax.collections]
            drawn.append((lines, points, ax.get_xlim(), ax.get_legend_handles_labels()[1]))
        assert drawn[0] == drawn[1], build.__name__


def test_thinning_and_ecdf_steps_pick_the_points_they_always_picked() -> None:
    """The figures' helpers at scale, without arrays of the phase's length: the same points
    as the formulas they replace (every k-th and the slowest 0.1 %; ECDF at even ranks)."""
    import numpy as np

    from auditkit import plots

    y = np.random.default_rng(5).lognormal(size=65_000)
    y[7] = np.nan
    keep, k = plots._keep(y)
    assert k == 4
    assert (keep == ((np.arange(len(y)) % k == 0) | (y >= np.nanpercentile(y, 99.9)))).all()
    xs, ys = plots._ecdf_steps(y[~np.isnan(y)])
    old_xs, old_ys = plots._steps(*plots.ecdf(y[~np.isnan(y)]))
    assert (xs == old_xs).all() and (ys == old_ys).all()


@pytest.mark.parametrize("kind", ["int", "float", "ties", "one value"])
def test_order_statistics_read_in_chunks_equal_a_sort(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exact order statistics and medians without holding the values: narrowed over reads
    (tiny bins and a tiny held range force several), equal to sorting them all."""
    import numpy as np

    monkeypatch.setattr(metrics, "SELECT_HELD", 5)
    monkeypatch.setattr(metrics, "SELECT_BINS", 3)
    rng = np.random.default_rng(11)
    values = {
        "int": rng.integers(-(10**12), 10**12, 4001),
        "float": rng.lognormal(size=4000),
        "ties": np.repeat(rng.integers(0, 7, 50), 61),
        "one value": np.full(999, 42),
    }[kind]
    chunks = np.array_split(values, 13)
    ordered = np.sort(values)
    n = len(values)
    ranks = [0, 1, n // 3, n // 2, int(n * 0.99), n - 2, n - 1]
    assert metrics.order_statistics(lambda: iter(chunks), ranks) == ordered[ranks].tolist()
    monkeypatch.setattr(metrics, "SELECT_HELD", 1)  # median_of reads whole up to SELECT_HELD
    assert metrics.median_of(lambda: iter(chunks)) == float(np.median(values))


def test_figures_of_a_large_phase_in_chunks_draw_the_in_memory_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phase read a chunk at a time, past MAX_POINTS (lowered, so a small phase takes the
    large-phase path through several chunks), draws the in-memory figures: the same sampled
    points (every k-th and the slowest 0.1 %: the same percentile threshold), throughput
    lines, legends and titles; its ECDF steps lie exactly on the in-memory ECDF."""
    import numpy as np

    from auditkit import plots

    monkeypatch.setattr(plots, "MAX_POINTS", 60)
    monkeypatch.setattr(records_io, "CHUNK_ROWS", 400)
    monkeypatch.setattr(metrics, "SELECT_HELD", 64)
    monkeypatch.setattr(metrics, "SELECT_BINS", 16)
    source = write_parts(tmp_path / "p", synthetic_rows(1200), per_part=400)
    records_io.write_records(tmp_path / "p", source)
    spec = RunSpec("audit", SampleOrder.with_replacement(0), 1200, LoadPattern("offline"))
    summary = PhaseSummary.model_construct()
    lazy = PhaseResult(spec, source, summary)
    whole = PhaseResult(spec, source.frame(), summary)
    assert isinstance(plots.phase_frames([lazy])["audit"], plots.PhaseDigest)

    def drawn(build: Any, phase: PhaseResult) -> tuple[Any, ...]:
        ax = build([phase]).axes[0]
        lines = [line.get_xydata().tolist() for line in ax.lines]
        points = [c.get_offsets().tolist() for c in ax.collections]
        texts = [t.get_text() for t in ax.texts]
        legend = ax.get_legend_handles_labels()[1] or [
            t.get_text() for t in ax.get_legend().get_texts()
        ]
        return lines, points, texts, legend, ax.get_title(), ax.get_xlim()

    for build in (plots.latency_over_time, plots.throughput_over_time, plots.ttft_vs_decode):
        assert drawn(build, lazy) == drawn(build, whole), build.__name__
    thinned = drawn(plots.latency_over_time, lazy)
    ok = int((whole.records["status"] == "ok").sum())
    # the sample is said, and it is one: about MAX_POINTS, plus the slowest 0.1 %
    k = -(-ok // 60)
    assert k > 1 and f"1 in {k} queries drawn, plus the slowest 0.1 %" in thinned[4]
    assert -(-ok // k) <= len(thinned[1][0]) <= -(-ok // k) + ok // 1000 + 1

    # ECDF: the same legend (p50, p90); each step exactly the in-memory fraction at its latency
    lines, _, _, legend, title, _ = drawn(plots.latency_ecdf, lazy)
    assert legend == drawn(plots.latency_ecdf, whole)[3] and title
    frame = whole.records
    lat = np.sort(frame.loc[frame["status"] == "ok", "latency_ns"].to_numpy(float) / 1e6)
    (steps,) = [line for line in lines if len(line) == 60]
    xs, ys = np.array(steps).T
    assert xs[0] == lat[0] and xs[-1] == lat[-1]
    assert (ys == np.searchsorted(lat, xs, side="right") / len(lat)).all()
