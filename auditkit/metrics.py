"""Phase metrics from per-query records: counts, percentiles, and the scenario's LoadGen score.

Pure: a function of the record table and the RunSpec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auditkit import early_stopping
from auditkit.plan import RunSpec
from auditkit.results import LatencyStats, PhaseSummary, RecordSource

SCORE_NAMES = {
    "offline": "Samples per second",
    "single-stream": "1e9 / early-stopping p90 latency (ns)",
    "multi-stream": "1e9 / early-stopping p99 latency (ns)",
    "server": "Completed samples per second",
}
ES_PERCENTILE = {"single-stream": 0.90, "multi-stream": 0.99, "server": 0.99}


def percentile(sorted_values: Sequence[int] | np.ndarray, p: float) -> int:
    """LoadGen's plain percentile: sorted[int(N × p)] (clamped to the last element)."""
    n = len(sorted_values)
    return int(sorted_values[min(int(n * p), n - 1)])


def latency_stats(values: Sequence[int] | np.ndarray) -> LatencyStats:
    """Min/mean/max and LoadGen-style percentiles of integer-ns latencies."""
    # one int64 array (8 bytes a value), not a list of Python ints (~36)
    return sorted_latency_stats(np.sort(np.asarray(values, dtype=np.int64)))


def sorted_latency_stats(ordered: np.ndarray) -> LatencyStats:
    """`latency_stats` of values already sorted (int64)."""
    if not len(ordered):
        return LatencyStats(count=0)
    return LatencyStats(
        count=len(ordered),
        min_ns=int(ordered[0]),
        max_ns=int(ordered[-1]),
        mean_ns=int(exact_sum(ordered) / len(ordered)),
        p50_ns=percentile(ordered, 0.50),
        p90_ns=percentile(ordered, 0.90),
        p95_ns=percentile(ordered, 0.95),
        p97_ns=percentile(ordered, 0.97),
        p99_ns=percentile(ordered, 0.99),
        p999_ns=percentile(ordered, 0.999),
    )


def exact_sum(values: np.ndarray) -> int:
    """The exact integer sum of int64 values (numpy's, unless it could overflow)."""
    if not len(values):
        return 0
    if max(abs(int(values.min())), abs(int(values.max()))) * len(values) < 2**63:
        return int(values.sum())
    return sum(int(v) for v in values)


def query_latencies(records: pd.DataFrame) -> np.ndarray:
    """Per-query latency: last completion of the query's samples minus its scheduled time."""
    return _query_latencies(records[records["status"] == "ok"])


def _query_latencies(ok: pd.DataFrame) -> np.ndarray:
    if ok.empty:
        return np.array([], dtype=np.int64)
    grouped = ok.groupby("query_id").agg(
        done=("completed_ns", "max"), sched=("scheduled_ns", "min")
    )
    return (grouped["done"] - grouped["sched"]).to_numpy(dtype=np.int64)


def loadgen_score(scenario: str, value: float) -> float:
    """A throughput score as it reads back from LoadGen's summary text.

    upstream verify_performance.py compares the numbers it parses from mlperf_log_summary.txt:
    Offline prints `Samples per second` with C++ stream precision (6 significant digits), Server
    prints `Completed samples per second` with DoubleToString (2 decimals). Scoring the printed
    value keeps auditkit's verdict identical to upstream's on auditkit's own files."""
    if scenario == "offline":
        return float(f"{value:.6g}")
    if scenario == "server":
        return float(f"{value:.2f}")
    return value


#: the columns a summary reads
SUMMARY_COLUMNS = (
    "query_id",
    "sample_index",
    "scheduled_ns",
    "sent_ns",
    "completed_ns",
    "latency_ns",
    "ttft_ns",
    "status",
    "error",
    "output_tokens",
    "output_sha256",
    "variant",
)


@dataclass
class _Tally:
    """A phase's counts, accumulated over chunks of its records: what `summarize` needs, in
    memory bounded by the distinct samples and outputs plus 8 bytes a query (latencies, ids).

    Two things depend on the table's row order (sorted by query, then send time): which
    failure's error is quoted and the order of `failures_by_status`. A DataFrame is taken in
    its own row order (`ordered`); chunks of unsorted files get each row's place in the sorted
    table as a key: (query, send time missing, send time, position in the files)."""

    multi_stream: bool
    ordered: bool
    rows: int = 0
    issued: int = 0
    cancelled: int = 0
    completed: int = 0
    failed: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    #: each failure status's first row (its key in the table's order)
    first_status: dict[str, Any] = field(default_factory=dict)
    #: (key, error) of the first failure with an error, by query id (stable)
    first_error: tuple[Any, str] | None = None
    last_done: int = 0
    last_scheduled: int = 0
    #: completed queries' latencies, written into `latency_buffer` when its size is known
    latencies: list[np.ndarray] = field(default_factory=list)
    latency_buffer: np.ndarray | None = None
    ttfts: list[np.ndarray] = field(default_factory=list)
    out_tokens: int = 0
    pairs: set[tuple[Any, ...]] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    #: which query ids were seen (one byte per id: ids count up from 0)
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    ok_queries: list[pd.DataFrame] = field(default_factory=list)
    odd_ids: set[int] = field(default_factory=set)

    def add(self, chunk: pd.DataFrame) -> None:
        """One chunk, whose rows come after every row added before in the files."""
        offset, self.rows = self.rows, self.rows + len(chunk)
        if not len(chunk):
            return
        status = chunk["status"]
        self.issued += int((status != "cancelled").sum())
        self.cancelled += int((status == "cancelled").sum())
        is_ok = (status == "ok").to_numpy(dtype=bool, na_value=False)
        ok = chunk[is_ok]
        self.completed += len(ok)
        failing = ~status.isin(["ok", "cancelled"]).to_numpy(dtype=bool, na_value=False)
        if failing.any():
            self._failures(chunk[failing], np.flatnonzero(failing) + offset)
        self.last_scheduled = max(self.last_scheduled, int(chunk["scheduled_ns"].max()))
        ids = chunk["query_id"].to_numpy(dtype=np.int64)
        top = int(ids.max()) + 1 if len(ids) else 0
        if int(ids.min()) < 0 or top > 4 * (self.rows + 1_000_000):
            # ids this bitmap cannot hold: count them as pandas did
            self.odd_ids.update(int(i) for i in ids)
        else:
            if top > len(self.seen):
                grown = np.zeros(max(top, 2 * len(self.seen)), bool)
                grown[: len(self.seen)] = self.seen
                self.seen = grown
            self.seen[ids] = True
        keys = [c for c in ("sample_index", "variant") if c in chunk.columns]
        self.pairs.update(chunk[keys].drop_duplicates().itertuples(index=False, name=None))
        if not len(ok):
            return
        self.last_done = max(self.last_done, int(ok["completed_ns"].max()))
        values = ok["latency_ns"].to_numpy(dtype=np.int64)
        if self.latency_buffer is not None:  # no list of chunks beside one concatenated copy
            self.latency_buffer[self.completed - len(ok) : self.completed] = values
        else:
            self.latencies.append(values)
        ttft = ok["ttft_ns"].dropna()
        if len(ttft):
            self.ttfts.append(ttft.to_numpy(dtype=np.int64))
        self.out_tokens += int(ok["output_tokens"].fillna(0).sum())
        self.outputs.update(str(v) for v in ok["output_sha256"].dropna().unique())
        if self.multi_stream:
            self.ok_queries.append(ok[["query_id", "completed_ns", "scheduled_ns"]])

    def _failures(self, failures: pd.DataFrame, positions: np.ndarray) -> None:
        self.failed += len(failures)
        statuses = [str(k) for k in failures["status"]]
        self.by_status.update(statuses)
        query_ids = failures["query_id"].to_numpy(dtype=np.int64).tolist()
        if self.ordered:
            place: list[Any] = positions.tolist()
            by_query: list[Any] = list(zip(query_ids, place, strict=True))
        else:
            sent = failures["sent_ns"]
            missing = sent.isna().to_numpy().tolist()
            sent_ns = sent.fillna(0).to_numpy(dtype=np.int64).tolist()
            place = list(zip(query_ids, missing, sent_ns, positions.tolist(), strict=True))
            by_query = place
        for key, row_status in zip(place, statuses, strict=True):
            known = self.first_status.get(row_status)
            if known is None or key < known:
                self.first_status[row_status] = key
        errors = failures["error"]
        has_error = errors.notna().to_numpy().tolist()
        for key, error, present in zip(by_query, errors.tolist(), has_error, strict=True):
            if present and (self.first_error is None or key < self.first_error[0]):
                self.first_error = (key, str(error))

    def status_counts(self) -> dict[str, int]:
        """Failures by status as `value_counts` orders them: most first, ties by first row."""
        order = sorted(self.by_status, key=lambda k: (-self.by_status[k], self.first_status[k]))
        return {k: self.by_status[k] for k in order}

    def queries(self) -> int:
        """Distinct query ids."""
        odd = {i for i in self.odd_ids if not (0 <= i < len(self.seen) and self.seen[i])}
        return int(np.count_nonzero(self.seen)) + len(odd)

    def latency_values(self) -> np.ndarray:
        """Every completed query's latency (int64), in no particular order."""
        if self.latency_buffer is not None:
            return self.latency_buffer[: self.completed]
        if len(self.latencies) == 1:
            return self.latencies[0]
        return np.concatenate(self.latencies) if self.latencies else np.array([], np.int64)


_NO_QUERIES = pd.DataFrame(
    {c: pd.Series([], dtype="Int64") for c in ("query_id", "completed_ns", "scheduled_ns")}
)


def _tally(records: pd.DataFrame | RecordSource, multi_stream: bool) -> _Tally:
    if isinstance(records, pd.DataFrame):
        tally = _Tally(multi_stream, ordered=True)
        tally.add(records)
        return tally
    tally = _Tally(multi_stream, ordered=False)
    tally.latency_buffer = np.empty(records.num_rows, np.int64)
    for chunk in records.chunks(SUMMARY_COLUMNS):
        tally.add(chunk)
    return tally


def summarize(
    records: pd.DataFrame | RecordSource,
    spec: RunSpec,
    *,
    interrupted: bool = False,
    loop_lag_p99_ns: int | None = None,
    request_headers: dict[str, str] | None = None,
    started_at: str = "",
) -> PhaseSummary:
    """Summarize one phase as LoadGen would: counts, distribution, score and validity.

    `records` is the record table, or a source read a chunk of columns at a time (a phase's
    files: memory bounded by the distinct samples and outputs, plus 8 bytes a query).
    `invalid_reasons` empty ⇔ LoadGen would print `Result is : VALID`; `complete` only says
    that every issued query completed without failure (the runner stops on an incomplete phase).
    """
    scenario = spec.load.scenario
    tally = _tally(records, scenario == "multi-stream")
    issued = tally.issued
    # control twins are queries of the phase like any other (fresh prompts of the same cost);
    # a warm-up rule decides its own count, so it requested what it issued
    requested = issued if spec.warmup is not None else spec.planned_queries
    completed = tally.completed
    cancelled = tally.cancelled
    failed = tally.failed
    by_status = tally.status_counts()

    last_done = tally.last_done
    last_scheduled = tally.last_scheduled
    duration_ns = last_done
    samples_per_second = completed / (duration_ns / 1e9) if duration_ns > 0 else 0.0
    # sorted once, in place (every use below is order-free): no second copy of N latencies
    latencies = tally.latency_values().copy() if tally.ordered else tally.latency_values()
    latencies.sort()
    lat = sorted_latency_stats(latencies)
    ttft = latency_stats(np.concatenate(tally.ttfts)) if tally.ttfts else None
    out_tokens = tally.out_tokens
    tokens_per_second = out_tokens / (duration_ns / 1e9) if duration_ns > 0 and out_tokens else None
    # a twin is a different prompt from its original: (row, variant) pairs are the distinct ones
    distinct_samples = len(tally.pairs)

    reasons: list[str] = []
    if interrupted:
        reasons.append("phase was interrupted")
    expected = max(requested, issued)
    if completed < expected:
        reasons.append(f"only {completed} of {expected} requested samples completed")
    if failed:
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
        # the first failure's own words name the problem (HTTP 401 …, not JSON, reset, …)
        first = tally.first_error
        example = f"; first: {first[1][:160]}" if first is not None else ""
        reasons.append(f"{failed} failed queries ({detail}{example})")
    complete = not reasons
    min_queries_met = issued >= requested

    if spec.order.kind == "without_replacement" and distinct_samples < issued:
        # only min_duration can push a distinct-sample order past the dataset: the repeats make
        # this phase cacheable, so it cannot serve as a reference of distinct samples
        reasons.append(
            f"order {spec.order.describe()} repeated samples: {issued} issued but only "
            f"{distinct_samples} distinct (min_duration ran past the dataset; use a larger "
            "dataset or a shorter min_duration)"
        )
    min_duration_ns = int(spec.min_duration_s * 1e9)
    # LoadGen's clock for min_duration: offline max latency, server final scheduled time,
    # single/multi-stream final issue time
    clock = last_done if scenario == "offline" else last_scheduled
    min_duration_met = clock >= min_duration_ns
    if not min_duration_met:
        reasons.append(
            f"min duration {min_duration_ns / 1e9:g} s not reached ({clock / 1e9:.3f} s)"
        )

    score: float | None = None
    es_p = ES_PERCENTILE.get(scenario)
    es_latency: int | None = None
    es_t: int | None = None
    query_lat: LatencyStats | None = None
    queries = tally.queries()
    target = spec.load.target_latency_ns
    scheduled_sps: float | None = None
    if scenario == "offline":
        score = loadgen_score(scenario, samples_per_second) if completed else None
    elif scenario in ("single-stream", "multi-stream"):
        values = latencies
        if scenario == "multi-stream":
            ok_queries = tally.ok_queries
            values = _query_latencies(pd.concat(ok_queries) if ok_queries else _NO_QUERIES)
        if scenario == "multi-stream":
            query_lat = latency_stats(values)
        assert es_p is not None
        est = early_stopping.estimate(values, es_p)
        es_t, es_latency = est.overlatency_count, est.latency_ns
        if est.latency_ns is None:
            reasons.append(
                f"early stopping needs at least {early_stopping.min_queries(es_p)} queries "
                f"for the p{es_p * 100:g} estimate (got {len(values)})"
            )
        else:
            score = 1e9 / est.latency_ns if est.latency_ns > 0 else None
    elif scenario == "server":
        if completed > 1 and last_done > 0:
            score = loadgen_score(scenario, (completed - 1) / (last_done / 1e9))
        if completed > 1 and last_scheduled > 0:
            scheduled_sps = (completed - 1) / (last_scheduled / 1e9)
        if target is not None and completed:
            valid, es_t = early_stopping.server_latency_valid(latencies, target)
            if not valid:
                need = early_stopping.min_passing_count(es_t, 0.99) + es_t
                p99 = percentile(np.sort(latencies), 0.99)
                if p99 > target:
                    reasons.append(
                        f"server latency bound missed: p99 {p99} ns > target {target} ns"
                    )
                if completed < need:
                    reasons.append(
                        f"early stopping needs at least {need} queries with {es_t} over the "
                        f"target latency (got {completed})"
                    )
    loadgen_valid = not reasons

    return PhaseSummary(
        name=spec.name,
        scenario=scenario,
        order=spec.order.describe(),
        requested=requested,
        issued=issued,
        completed=completed,
        failed=failed,
        cancelled=cancelled,
        failures_by_status=by_status,
        duration_ns=duration_ns,
        samples_per_second=samples_per_second,
        queries=queries,
        latency=lat,
        query_latency=query_lat,
        ttft=ttft,
        output_tokens_total=out_tokens,
        tokens_per_second=tokens_per_second,
        score=score,
        score_name=SCORE_NAMES[scenario],
        early_stopping_percentile=es_p,
        early_stopping_latency_ns=es_latency,
        early_stopping_overlatency=es_t,
        target_latency_ns=target,
        samples_per_query=spec.load.samples_per_query,
        target_qps=spec.load.target_qps,
        min_duration_ns=min_duration_ns,
        min_duration_met=min_duration_met,
        min_queries_met=min_queries_met,
        scheduled_samples_per_second=scheduled_sps,
        complete=complete,
        loadgen_valid=loadgen_valid,
        invalid_reasons=reasons,
        interrupted=interrupted,
        loop_lag_p99_ns=loop_lag_p99_ns,
        distinct_samples=distinct_samples,
        distinct_outputs=len(tally.outputs),
        request_headers=request_headers or {},
        started_at=started_at,
    )
