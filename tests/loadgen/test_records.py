"""Per-request records: QueryRecord is the RECORD_COLUMNS row, the table has stable dtypes, and
`on_rows` watchers receive tuples in RECORD_COLUMNS order."""

import dataclasses
from typing import Any

from auditkit.config import MockConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.endpoints.openai import ChatAdapter
from auditkit.loadgen import HttpTarget, QueryRecord, run_phase_async
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT, run_virtual
from auditkit.loadgen.recorder import Attempt, Recorder
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import RECORD_COLUMNS, PhaseResult


def test_query_record_fields_are_the_record_columns() -> None:
    assert tuple(f.name for f in dataclasses.fields(QueryRecord)) == RECORD_COLUMNS
    recorder = Recorder("p", [])
    recorder.record(Attempt(3, 7, 100, 150, first_byte_ns=160), 900)
    (record,) = recorder.records
    assert record.as_row() == tuple(getattr(record, name) for name in RECORD_COLUMNS)
    assert recorder.rows() == [record.as_row()]


def test_failed_attempts_have_no_completion_or_latency() -> None:
    recorder = Recorder("p", ["sk-1"])
    recorder.record(Attempt(0, 1, 0, 5, status="http_error", error="key sk-1"), 50)
    (record,) = recorder.records
    assert record.completed_ns is None and record.latency_ns is None
    assert record.error is not None and "sk-1" not in record.error


def test_records_table_and_on_rows(dataset: Dataset) -> None:
    snapshots: list[list[tuple[Any, ...]]] = []

    async def main() -> PhaseResult:
        spec = RunSpec("p", SampleOrder.without_replacement(0), 64, LoadPattern("single-stream"))
        sut = SimulatedSUT(MockConfig(jitter_cv=0.0))
        return await run_phase_async(
            spec,
            dataset,
            ChatAdapter("mock-llm", 16, 0.0, True),
            HttpTarget("http://sut.invalid"),
            on_rows=snapshots.append,
            transport=FakeTransport(sut),
        )

    result = run_virtual(main())
    r = result.records
    assert list(r.columns) == list(RECORD_COLUMNS)
    dtypes = {c: str(t) for c, t in r.dtypes.items()}
    assert dtypes["query_id"] == dtypes["sample_index"] == "int64"
    for col in ("scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns", "completed_ns"):
        assert dtypes[col] == "Int64"
    for col in ("latency_ns", "ttft_ns", "http_status", "prompt_tokens", "output_tokens"):
        assert dtypes[col] == "Int64"
    assert dtypes["status"] == dtypes["output_sha256"] == "string"
    assert (r["status"] == "ok").all() and (r["output_tokens"] == 16).all()
    assert (r["first_byte_ns"] <= r["first_token_ns"]).all()
    assert (r["ttft_ns"] < r["latency_ns"]).all()
    # watchers got growing snapshots of plain tuples, the last one complete
    assert snapshots and all(isinstance(row, tuple) for row in snapshots[-1])
    assert len(snapshots[-1]) == 64 and all(
        len(row) == len(RECORD_COLUMNS) for row in snapshots[-1]
    )
    assert [len(s) for s in snapshots] == sorted(len(s) for s in snapshots)
