"""Per-request records: what one request did, collected into the phase's record table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from auditkit.config import redact_text
from auditkit.endpoints.base import ParsedResponse
from auditkit.results import records_frame


@dataclass(slots=True)
class Attempt:
    """One request as it happens (times in ns from the phase start); mutable until recorded."""

    query_id: int
    sample_index: int
    scheduled_ns: int
    sent_ns: int
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
        )


class Recorder:
    """Collects a phase's records; error text is scrubbed of the request's credentials."""

    def __init__(self, phase: str, secrets: list[str]) -> None:
        self.phase = phase
        self.secrets = secrets
        self.records: list[QueryRecord] = []
        self._rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.records)

    def record(self, attempt: Attempt, completed_ns: int) -> QueryRecord:
        """Close an attempt at `completed_ns`; latency counts from its scheduled time."""
        parsed = attempt.parsed
        ok = attempt.status == "ok" and parsed is not None
        error = attempt.error
        if error and self.secrets:
            # endpoints echo requests back in error bodies: never store the key
            error = redact_text(error, self.secrets)
        first_token = attempt.first_token_ns
        record = QueryRecord(
            phase=self.phase,
            query_id=attempt.query_id,
            sample_index=attempt.sample_index,
            scheduled_ns=attempt.scheduled_ns,
            sent_ns=attempt.sent_ns,
            first_byte_ns=attempt.first_byte_ns,
            first_token_ns=first_token,
            completed_ns=completed_ns if ok else None,
            latency_ns=completed_ns - attempt.scheduled_ns if ok else None,
            ttft_ns=first_token - attempt.scheduled_ns if ok and first_token is not None else None,
            status=attempt.status,
            http_status=attempt.http_status,
            error=error,
            prompt_tokens=parsed.prompt_tokens if parsed else None,
            output_tokens=parsed.output_tokens if parsed else None,
            cached_tokens=parsed.cached_tokens if parsed else None,
            output_sha256=parsed.sha256 if parsed else None,
        )
        self.records.append(record)
        return record

    def rows(self) -> list[tuple[Any, ...]]:
        """A snapshot of the rows so far (RECORD_COLUMNS order); converts only new records."""
        rows = self._rows
        rows.extend(r.as_row() for r in self.records[len(rows) :])
        return list(rows)

    def frame(self) -> pd.DataFrame:
        """The record table, sorted by query and send time."""
        records = records_frame(self.rows())
        return records.sort_values(["query_id", "sent_ns"], kind="stable").reset_index(drop=True)
