"""Columnar records: sealed batches read back as the tuple path's table, part files stream to
disk as a phase runs, and a SIGKILLed run leaves its flushed rows readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from auditkit import artifacts, records_io
from auditkit.config import MockConfig
from auditkit.endpoints.base import ParsedResponse
from auditkit.loadgen.recorder import Attempt, Recorder
from auditkit.mock import MockProcess


def _fill(recorder: Recorder, n: int) -> None:
    for i in range(n):
        attempt = Attempt(n - i, i % 7, 0, 10 * i, "twin" if i % 5 == 0 else "main", 10 * i + 3)
        if i % 4 == 3:
            attempt.status, attempt.error, attempt.http_status = "http_error", f"HTTP 500 {i}", 500
        else:
            attempt.http_status = 200
            attempt.parsed = ParsedResponse(f"out {i % 3}", 4, 5, None if i % 2 else 1)
            attempt.first_token_ns = 10 * i + 5
        recorder.record(attempt, 10 * i + 9)


def test_sealed_batches_read_back_as_the_tuple_table() -> None:
    rows, columns = Recorder("p", []), Recorder("p", [], chunk_rows=3)
    _fill(rows, 20)
    _fill(columns, 20)
    assert len(columns) == 20 and columns._sealed == 18
    pd.testing.assert_frame_equal(columns.frame(), rows.frame())
    assert columns.rows() == rows.rows()


def test_part_files_stream_and_records_parquet_replaces_them(tmp_path: Path) -> None:
    phase_dir = tmp_path / "audit"
    recorder = Recorder("audit", [], sink=records_io.PartWriter(phase_dir, worker=1), chunk_rows=4)
    _fill(recorder, 10)
    recorder.close()
    parts = sorted((phase_dir / records_io.PARTS).glob("*.parquet"))
    assert [p.name for p in parts] == [f"part-w001-00000{i}.parquet" for i in range(3)]
    flushed = records_io.read_records(phase_dir)  # no records.parquet yet: the parts, stitched
    expected = Recorder("audit", [])
    _fill(expected, 10)
    frame = expected.frame()
    got = flushed.sort_values(["query_id", "sent_ns"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, frame)
    # the phase ends: one file, no parts; a reader asking for two columns reads two
    records_io.write_records(phase_dir, recorder.frame())
    assert not (phase_dir / records_io.PARTS).exists()
    pd.testing.assert_frame_equal(records_io.read_records(phase_dir), frame)
    some = records_io.read_records(phase_dir, ["status", "latency_ns"])
    assert list(some.columns) == ["status", "latency_ns"]
    assert str(some["latency_ns"].dtype) == "Int64"


@pytest.mark.parametrize("sort", [False, True])
def test_a_large_table_read_column_by_column_is_the_same_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sort: bool
) -> None:
    """Above WHOLE_READ_ROWS the parts are read one column at a time (bounded memory); the
    frame is the one a whole read gives."""
    phase_dir = tmp_path / "audit"
    recorder = Recorder("audit", [], sink=records_io.PartWriter(phase_dir), chunk_rows=4)
    _fill(recorder, 10)
    recorder.close()
    parts = sorted((phase_dir / records_io.PARTS).glob("*.parquet"))
    whole = records_io.frame_from_files(parts, sort=sort)
    monkeypatch.setattr(records_io, "WHOLE_READ_ROWS", 0)
    pd.testing.assert_frame_equal(records_io.frame_from_files(parts, sort=sort), whole)


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import auditkit.loadgen.recorder as recorder
    recorder.FLUSH_NS = 100_000_000  # a part every 0.1 s
    from auditkit.data import Dataset, Sample, SampleOrder
    from auditkit.endpoints.openai import CompletionsAdapter
    from auditkit.loadgen import HttpTarget, run_phase
    from auditkit.plan import LoadPattern, RunSpec

    dataset = Dataset("m", tuple(Sample(i, f"prompt {i}") for i in range(64)))
    load = LoadPattern("offline", max_concurrency=4)
    # minutes of queries, killed after a fraction of a second (a plan of 10 million, as
    # before, cost ~4 s just to draw)
    spec = RunSpec("audit", SampleOrder.with_replacement(0), 100_000, load)
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    run_phase(spec, dataset, adapter, HttpTarget(sys.argv[1]), records_dir=Path(sys.argv[2]))
    """
)


@pytest.mark.slow
def test_sigkill_mid_phase_leaves_the_flushed_rows_readable(tmp_path: Path) -> None:
    phase_dir = tmp_path / "audit"
    with MockProcess(MockConfig(jitter_cv=0.0)) as mock:
        child = subprocess.Popen([sys.executable, "-c", CHILD, mock.url, str(phase_dir)])
        try:
            parts = phase_dir / records_io.PARTS
            deadline = time.monotonic() + 60  # a bound on a hung child, not a timing check
            while len(list(parts.glob("part-*.parquet"))) < 3:
                assert child.poll() is None, "the phase ended before it was killed"
                assert time.monotonic() < deadline, "no part files appeared"
                time.sleep(0.05)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not (phase_dir / records_io.RECORDS).exists()
    records = records_io.read_records(phase_dir)
    flushed = len(list(parts.glob("part-*.parquet")))
    assert flushed >= 3 and len(records) > 0
    assert (records["status"] == "ok").all() and records["query_id"].is_unique
    assert (records["completed_ns"] >= records["sent_ns"]).all()
    # the readers everyone uses see them too (no phase.json: the run never got that far)
    loaded = artifacts.records_io.read_records(phase_dir, ["query_id"])
    assert len(loaded) == len(records)


@pytest.mark.parametrize("workers", [1, 3])
def test_worker_column_is_kept_only_when_it_varies(tmp_path: Path, workers: int) -> None:
    for w in range(workers):
        recorder = Recorder("p", [], sink=records_io.PartWriter(tmp_path, worker=w), chunk_rows=2)
        _fill(recorder, 4)
        recorder.close()
    frame = records_io.read_records(tmp_path)
    assert ("worker" in frame.columns) == (workers > 1)
    if workers > 1:
        assert sorted(frame["worker"].unique()) == list(range(workers))


def test_a_new_phase_ignores_a_killed_runs_parts(tmp_path: Path) -> None:
    old = Recorder("audit", [], sink=records_io.PartWriter(tmp_path), chunk_rows=2)
    _fill(old, 6)
    old.close()  # as if killed after these flushes: parts, no records.parquet
    new = Recorder("audit", [], sink=records_io.PartWriter(tmp_path), chunk_rows=2)
    _fill(new, 3)
    assert len(new.frame()) == 3
    new.close()
    assert len(records_io.read_records(tmp_path)) == 3
