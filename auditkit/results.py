"""Result types: per-query records (DataFrame), phase summaries and the audit verdict.

The summaries and the verdict are frozen pydantic models: they are written as artifacts
(phase.json, audit_result.json) and read back by notebooks and `auditkit verify`, and a changed
result is a new object (`model_copy(update=...)`), never an edit in place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from auditkit.errors import InputError
from auditkit.plan import RunSpec

#: the version of the saved formats this auditkit writes and reads: audit_result.json,
#: phase.json and suite_result.json (one number: audit_result.json embeds phase summaries)
SCHEMA_VERSION = 1

RECORD_COLUMNS: tuple[str, ...] = (
    "phase",
    "query_id",
    "sample_index",
    "scheduled_ns",
    "sent_ns",
    "first_byte_ns",
    "first_token_ns",
    "completed_ns",
    "latency_ns",
    "ttft_ns",
    "status",
    "http_status",
    "error",
    "prompt_tokens",
    "output_tokens",
    "cached_tokens",
    "output_sha256",
    "variant",
)
INT_COLUMNS = ("scheduled_ns", "sent_ns", "first_byte_ns", "first_token_ns", "completed_ns")


def check_schema_version(data: Mapping[str, Any], name: str, path: str | Path | None) -> None:
    """InputError (one line, both versions) unless this auditkit reads `data`'s version. A
    file without `schema_version` was written before formats carried one: version 1."""
    version = data.get("schema_version", 1)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        where = f"{name} at {path}" if path is not None else name
        raise InputError(
            f"{where} has schema_version {version!r}; this auditkit reads {SCHEMA_VERSION} "
            "(upgrade auditkit or re-run the audit)"
        )


Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "INVALID"]
FROZEN = ConfigDict(extra="forbid", frozen=True)


def records_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Build the record table from row tuples in RECORD_COLUMNS order, with stable dtypes.

    Rows without the last column (`variant`: records written before it existed) are "main"."""
    columns = list(RECORD_COLUMNS)
    if rows and len(rows[0]) == len(columns) - 1:
        columns = columns[:-1]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    if "variant" not in frame.columns:
        frame["variant"] = "main"
    nullable_ints = (
        *INT_COLUMNS,
        "latency_ns",
        "ttft_ns",
        "http_status",
        "prompt_tokens",
        "output_tokens",
        "cached_tokens",
    )
    for col in nullable_ints:
        frame[col] = frame[col].astype("Int64")
    for col in ("query_id", "sample_index"):
        frame[col] = frame[col].astype("int64")
    for col in ("phase", "status", "error", "output_sha256"):
        frame[col] = frame[col].astype("string")
    frame["variant"] = frame["variant"].astype("string").fillna("main")
    return frame


class LatencyStats(BaseModel):
    """Latency distribution of one phase, integer nanoseconds (LoadGen's unit)."""

    model_config = FROZEN

    count: int
    min_ns: int | None = None
    max_ns: int | None = None
    mean_ns: int | None = None
    p50_ns: int | None = None
    p90_ns: int | None = None
    p95_ns: int | None = None
    p97_ns: int | None = None
    p99_ns: int | None = None
    p999_ns: int | None = None


class HostShare(BaseModel):
    """One client host of a phase spread over several (`--ray-address`): its workers and its
    clock's offset to the driver's, measured before the phase (docs/scale.md)."""

    model_config = FROZEN

    #: the host's address as the cluster knows it, and its node id
    host: str
    node_id: str
    #: the `worker` ids of the records this host sent
    workers: tuple[int, ...]
    records: int = 0
    #: host clock − driver clock (ns); its timestamps were mapped onto the driver's with it
    clock_offset_ns: int
    #: round trip of the sample the offset came from, and the offset's error bound (RTT/2)
    clock_rtt_ns: int
    clock_uncertainty_ns: int


class PhaseSummary(BaseModel):
    """What one phase did and scored (written as phase.json)."""

    model_config = FROZEN

    name: str
    scenario: str
    order: str
    requested: int
    issued: int
    completed: int
    failed: int
    cancelled: int
    failures_by_status: dict[str, int] = Field(default_factory=dict)
    duration_ns: int
    samples_per_second: float
    queries: int
    latency: LatencyStats
    query_latency: LatencyStats | None = None
    ttft: LatencyStats | None = None
    output_tokens_total: int = 0
    tokens_per_second: float | None = None
    score: float | None = None
    score_name: str
    early_stopping_percentile: float | None = None
    early_stopping_latency_ns: int | None = None
    early_stopping_overlatency: int | None = None
    target_latency_ns: int | None = None
    # LoadGen "Test Parameters Used" and validity parts (defaults keep older phase.json readable)
    samples_per_query: int = 1
    target_qps: float | None = None
    min_duration_ns: int = 0
    min_duration_met: bool = True
    min_queries_met: bool = True
    scheduled_samples_per_second: float | None = None
    complete: bool
    loadgen_valid: bool
    invalid_reasons: tuple[str, ...] = ()
    interrupted: bool = False
    loop_lag_p99_ns: int | None = None
    client_ceiling_qps: float | None = None
    client_bound: str | None = None
    #: the HTTP client that ran the phase (h1, aiohttp; None: an in-memory transport) and in
    #: how many processes (additive fields: older phase.json read as None and 1)
    http_client: str | None = None
    workers: int = 1
    distinct_samples: int = 0
    distinct_outputs: int = 0
    request_headers: dict[str, str] = Field(default_factory=dict)
    # timeout_s, connect_timeout_s, max_response_bytes, verify_tls in force for the phase
    request_settings: dict[str, float | int | bool] = Field(default_factory=dict)
    #: requests sent again on a fresh connection because the server had closed the pooled one
    #: before any byte of them reached it (never failed queries; their latency includes it)
    reconnects: int = 0
    #: where the receive times (first byte, first token, completion) came from: "kernel" (h1's
    #: socket receive stamps), "loop" (the clock read when the event loop got to the answer),
    #: "kernel+loop" (some reads carried no stamp); None: an in-memory transport or an older
    #: phase.json
    timestamp_source: str | None = None
    started_at: str = ""
    #: the client hosts of a phase spread over several (`--ray-address`); empty on one host
    hosts: tuple[HostShare, ...] = ()


@dataclass(frozen=True)
class LoggedOutput:
    """One response kept whole (a phase with `RunSpec.log_outputs`): what content audits read."""

    query_id: int
    sample_index: int
    variant: str
    text: str
    output_tokens: int | None
    first_chunk: str | None = None
    finish_reason: str | None = None
    chunks: int = 0
    logprob_tokens: int | None = None
    #: the texts of the tokens `logprobs` listed (TEST06/TEST09 count and compare them)
    logprob_texts: tuple[str, ...] | None = None


class RecordSource(Protocol):
    """A phase's records kept out of memory (its Parquet files): read by column, or streamed in
    batches. `auditkit.records_io.PhaseRecords` is the one implementation."""

    @property
    def num_rows(self) -> int: ...

    @property
    def column_names(self) -> tuple[str, ...]: ...

    def frame(self) -> pd.DataFrame:
        """The whole record table, as `records_frame` builds it (sorted by query, send time)."""
        ...

    def columns(self, names: tuple[str, ...]) -> pd.DataFrame:
        """Only `names`, in the record table's row order and dtypes."""
        ...

    def chunks(self, names: tuple[str, ...]) -> Iterator[pd.DataFrame]:
        """`names` a bounded chunk of rows at a time, with the table's dtypes, in file order
        (not sorted): for aggregates, which do not depend on the order."""
        ...


@dataclass(frozen=True)
class PhaseResult:
    """A phase's records (one row per request) and its summary.

    `source` is the record table itself (a DataFrame) or a `RecordSource` reading the phase's
    files: consumers ask `columns(...)` for the few columns they need; `records` builds the
    whole table (once, on first use). Frozen: a changed summary is a new PhaseResult
    (`dataclasses.replace`)."""

    spec: RunSpec
    #: not in repr: asyncio formats a finished task's result on every signal-handler swap,
    #: and a DataFrame's text cost ~6 ms per phase
    source: pd.DataFrame | RecordSource = field(repr=False)
    summary: PhaseSummary
    #: responses kept whole (only rows in `spec.log_outputs`), in completion order
    outputs: tuple[LoggedOutput, ...] = ()
    #: an exchanges phase's Prometheus text around each group: (group, before, after)
    scrapes: tuple[tuple[int, str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def records(self) -> pd.DataFrame:
        """The whole record table (built from the files on first use, then kept): O(rows) in
        memory, so code that runs on every phase asks `columns` instead."""
        if isinstance(self.source, pd.DataFrame):
            return self.source
        return self.source.frame()

    @property
    def num_rows(self) -> int:
        if isinstance(self.source, pd.DataFrame):
            return len(self.source)
        return self.source.num_rows

    @property
    def column_names(self) -> tuple[str, ...]:
        """The record table's columns (RECORD_COLUMNS, and e.g. `block` in pooled blocks)."""
        if isinstance(self.source, pd.DataFrame):
            return tuple(str(c) for c in self.source.columns)
        return self.source.column_names

    def chunks(self, *names: str) -> Iterator[pd.DataFrame]:
        """`names` a bounded chunk of rows at a time, in no particular order (for aggregates):
        the memory of one chunk, whatever the phase's size."""
        if isinstance(self.source, pd.DataFrame) or "records" in self.__dict__:
            yield self.records[list(names)]
        else:
            yield from self.source.chunks(tuple(names))

    def columns(self, *names: str) -> pd.DataFrame:
        """Only the columns `names` of the record table (same rows, order and dtypes as
        `records`), read from the files when the table is not in memory."""
        if isinstance(self.source, pd.DataFrame):
            return self.source[list(names)]
        if "records" in self.__dict__:  # already built: no second read
            return self.records[list(names)]
        return self.source.columns(tuple(names))


class Evidence(BaseModel):
    """Base of an audit's evidence model: named fields, frozen, nothing undeclared."""

    __test__ = False  # "Test…Evidence" names are not pytest test classes

    model_config = FROZEN


EvidenceT = TypeVar("EvidenceT", bound=Evidence)


class AuditResult(BaseModel, Generic[EvidenceT]):
    """The verdict of one audit test and every number behind it (audit_result.json).

    The headline comparison (`reference_score` vs `audit_score` under `threshold`) is shared by
    the audits that compare two measurements; audits that do not leave it empty. Everything
    audit-specific lives in `evidence`, a frozen model the audit defines.
    """

    model_config = FROZEN

    #: the format's version (SCHEMA_VERSION when written; a file without it reads as 1)
    schema_version: int = SCHEMA_VERSION
    test: str
    #: auditkit's decision (PASS, FAIL, INCONCLUSIVE or INVALID); the exit code follows it
    verdict: Verdict
    reason: str
    scenario: str
    #: the audit's upstream (MLPerf) rule on the same data, when it has one; the MLPerf files
    #: carry this one
    upstream_verdict: Verdict | None = None
    score_name: str = ""
    reference_score: float | None = None
    audit_score: float | None = None
    ratio: float | None = None
    threshold: float | None = None
    threshold_source: str = ""
    rule: str = ""
    submission_grade: bool = False
    notes: tuple[str, ...] = ()
    evidence: EvidenceT | None = None
    phases: dict[str, PhaseSummary] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    auditkit_version: str = ""
    started_at: str = ""
    finished_at: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    def with_notes(self, *notes: str) -> AuditResult[EvidenceT]:
        """A copy with `notes` appended."""
        return self.model_copy(update={"notes": (*self.notes, *notes)})
