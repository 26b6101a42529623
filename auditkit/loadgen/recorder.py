"""Per-request records: what one request did, collected into the phase's record table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from auditkit import records_io
from auditkit.config import redact_text
from auditkit.endpoints.base import ParsedResponse
from auditkit.records_io import (
    SCHEMA,
    PartWriter,
    PhaseRecords,
    frame_from_files,
    rows_to_batch,
    to_frame,
)
from auditkit.results import RECORD_COLUMNS, records_frame

#: rows per columnar batch (and part file), at most
CHUNK_ROWS = 16_384
#: wall-clock time after which pending rows are sealed anyway: what a killed run can lose
#: (the wall clock, not the phase's: on a virtual clock a phase's seconds pass in
#: milliseconds, and a part file per virtual 2 s cost most of a simulated audit)
FLUSH_NS = 2_000_000_000


@dataclass(slots=True)
class Attempt:
    """One request as it happens (times in ns from the phase start); mutable until recorded."""

    query_id: int
    sample_index: int
    scheduled_ns: int
    sent_ns: int
    variant: str = "main"
    first_byte_ns: int | None = None
    first_token_ns: int | None = None
    status: str = "ok"
    http_status: int | None = None
    error: str | None = None
    parsed: ParsedResponse | None = None


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One finished request: the fields are RECORD_COLUMNS, in that order."""

    phase: str
    query_id: int
    sample_index: int
    scheduled_ns: int
    sent_ns: int
    first_byte_ns: int | None
    first_token_ns: int | None
    completed_ns: int | None
    latency_ns: int | None
    ttft_ns: int | None
    status: str
    http_status: int | None
    error: str | None
    prompt_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    output_sha256: str | None
    variant: str

    def as_row(self) -> tuple[Any, ...]:
        """The record as a tuple in RECORD_COLUMNS order (what `on_rows` watchers receive)."""
        return (
            self.phase,
            self.query_id,
            self.sample_index,
            self.scheduled_ns,
            self.sent_ns,
            self.first_byte_ns,
            self.first_token_ns,
            self.completed_ns,
            self.latency_ns,
            self.ttft_ns,
            self.status,
            self.http_status,
            self.error,
            self.prompt_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.output_sha256,
            self.variant,
        )


class Recorder:
    """Collects a phase's records; error text is scrubbed of the request's credentials.

    The hot path appends one tuple per request (RECORD_COLUMNS order): building a frozen
    dataclass costs ~2 µs (measured), a tuple ~0.1 µs. Every `chunk_rows` rows, or
    `flush_ns` of phase time, the pending tuples become one columnar Arrow batch
    (`auditkit.records_io`): kept in memory (~150 bytes a row instead of ~510), or, with a
    `sink`, written to a part file on a background thread and dropped, so a long phase runs in
    flat memory and a killed run keeps every flushed row.
    """

    def __init__(
        self,
        phase: str,
        secrets: list[str],
        *,
        sink: PartWriter | None = None,
        worker: int = 0,
        chunk_rows: int | None = None,
        flush_ns: int | None = None,
    ) -> None:
        self.phase = phase
        self.secrets = secrets
        self.sink = sink
        #: the load-generator process these records come from (a sink's worker wins)
        self.worker = sink.worker if sink is not None else worker
        # module values read here, not bound as defaults: a test or a tool may change them
        self.chunk_rows = CHUNK_ROWS if chunk_rows is None else chunk_rows
        self.flush_ns = FLUSH_NS if flush_ns is None else flush_ns
        self._rows: list[tuple[Any, ...]] = []
        self._batches: list[pa.RecordBatch] = []
        self._sealed = 0
        self._last_seal_ns = time.monotonic_ns()

    def __len__(self) -> int:
        return self._sealed + len(self._rows)

    def record(self, attempt: Attempt, completed_ns: int) -> None:
        """Close an attempt at `completed_ns`; latency counts from its scheduled time."""
        parsed = attempt.parsed
        ok = attempt.status == "ok" and parsed is not None
        error = attempt.error
        if error and self.secrets:
            # endpoints echo requests back in error bodies: never store the key
            error = redact_text(error, self.secrets)
        scheduled = attempt.scheduled_ns
        first_token = attempt.first_token_ns
        rows = self._rows
        rows.append(
            (
                self.phase,
                attempt.query_id,
                attempt.sample_index,
                scheduled,
                attempt.sent_ns,
                attempt.first_byte_ns,
                first_token,
                completed_ns if ok else None,
                completed_ns - scheduled if ok else None,
                first_token - scheduled if ok and first_token is not None else None,
                attempt.status,
                attempt.http_status,
                error,
                parsed.prompt_tokens if parsed else None,
                parsed.output_tokens if parsed else None,
                parsed.cached_tokens if parsed else None,
                parsed.sha256 if parsed else None,
                attempt.variant,
            )
        )
        now = time.monotonic_ns()
        if len(rows) >= self.chunk_rows or now - self._last_seal_ns >= self.flush_ns:
            self.seal(now)

    def seal(self, now_ns: int | None = None) -> None:
        """Turn the pending rows into one columnar batch (written out when there is a sink)."""
        if now_ns is not None:
            self._last_seal_ns = now_ns
        if not self._rows:
            return
        batch = rows_to_batch(self._rows, self.worker)
        self._sealed += len(self._rows)
        self._rows = []
        if self.sink is not None:
            self.sink.write(batch)  # (its worker is ours: set together by the driver)
        else:
            self._batches.append(batch)

    def close(self) -> None:
        """Seal what is pending and wait until the sink has written every part."""
        self.seal()
        if self.sink is not None:
            self.sink.close()

    def table(self) -> pa.Table:
        """Every record so far as one Arrow table (sealed batches, flushed parts, pending)."""
        if self.sink is not None:
            self.sink.flush()  # every queued part on disk
            parts = [pq.read_table(path) for path in self.sink.paths]
            sealed = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
        else:
            sealed = pa.Table.from_batches(self._batches, schema=SCHEMA)
        pending = pa.Table.from_batches([rows_to_batch(self._rows, self.worker)])
        return pa.concat_tables([sealed, pending])

    @property
    def records(self) -> list[QueryRecord]:
        """The records so far, in completion order."""
        return [QueryRecord(*row) for row in self.rows()]

    def rows(self) -> list[tuple[Any, ...]]:
        """A snapshot of the rows so far (RECORD_COLUMNS order)."""
        if not self._sealed:
            return list(self._rows)
        sealed = self.table().select(list(RECORD_COLUMNS))
        return [*zip(*(c.to_pylist() for c in sealed.columns), strict=True)]

    def source(self) -> pd.DataFrame | PhaseRecords:
        """The phase's record table at its end: left in the part files when it is large (read
        by column: `PhaseResult.columns`), else the DataFrame (`frame`)."""
        if self.sink is not None:
            self.close()
            if self.sink.rows > records_io.LAZY_ROWS:
                folder = self.sink.parts_dir.parent
                return PhaseRecords(folder, tuple(self.sink.paths), self.sink.rows)
        return self.frame()

    def frame(self) -> pd.DataFrame:
        """The record table, sorted by query and send time (with a sink: the phase's end, so
        everything pending is written out and the writer thread stops)."""
        if self.sink is not None:
            self.close()
            return frame_from_files(self.sink.paths, keep_worker=False, sort=True)
        if self._sealed:
            return to_frame(self.table(), keep_worker=False, sort=True)
        records = records_frame(self._rows)
        return records.sort_values(["query_id", "sent_ns"], kind="stable").reset_index(drop=True)
