"""Phase metrics from per-query records: counts, percentiles, and the scenario's LoadGen score.

Pure: a function of the record table and the RunSpec.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
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


#: a value range is narrowed until it holds at most this many values, which are then read
SELECT_HELD = 1 << 16
#: bins of each narrowing pass (a range shrinks by this factor a pass)
SELECT_BINS = 1 << 12


@dataclass(frozen=True)
class ChunkedValues:
    """Values read a chunk at a time (`read()` yields the arrays again on every call, NaN-free),
    with their count, min, max and exact sum from a first read. `at(ranks)` gives exact order
    statistics without holding the values: a few more reads (`order_statistics`)."""

    read: Callable[[], Iterable[np.ndarray]]
    count: int
    lo: Any
    hi: Any
    total: Any

    @classmethod
    def scan(cls, read: Callable[[], Iterable[np.ndarray]]) -> ChunkedValues:
        count, lo, hi = 0, None, None
        total: int | float = 0
        for values in read():
            if not len(values):
                continue
            count += len(values)
            low, high = values.min(), values.max()
            lo = low if lo is None else min(lo, low)
            hi = high if hi is None else max(hi, high)
            total += exact_sum(values) if values.dtype.kind in "iu" else float(values.sum())
        return cls(read, count, lo, hi, total)

    def __len__(self) -> int:
        return self.count

    def at(self, ranks: Sequence[int]) -> list[Any]:
        """The values at 0-based `ranks` of the sorted values."""
        return order_statistics(self.read, ranks, (self.lo, self.hi))


def median_of(read: Callable[[], Iterable[np.ndarray]]) -> float | None:
    """`np.median` of the values `read()` yields a chunk at a time (the mean of the middle two
    when their count is even), from exact order statistics; None when there are none."""
    values = ChunkedValues.scan(read)
    n = values.count
    if not n:
        return None
    if n <= SELECT_HELD:  # few: numpy itself
        return float(np.median(np.concatenate([np.asarray(v) for v in read()])))
    middle = values.at(sorted({(n - 1) // 2, n // 2}))
    return float(np.mean(np.array(middle, dtype=np.float64)))


def order_statistics(
    read: Callable[[], Iterable[np.ndarray]],
    ranks: Sequence[int],
    bounds: tuple[Any, Any] | None = None,
) -> list[Any]:
    """The values at 0-based `ranks` of the sorted concatenation of the arrays `read()` yields,
    exactly, in memory bounded by SELECT_BINS + SELECT_HELD values a rank: each read sorts one
    chunk at a time and narrows every rank's closed value range [lo, hi] to the histogram bin
    (SELECT_BINS bins) that holds it, with the bin's own smallest and largest value as its new
    range; a range of one value is the answer; a range holding at most SELECT_HELD values is read
    whole once and sorted. Typically three reads (bounds known: two)."""
    if bounds is None or bounds[0] is None:
        scanned = ChunkedValues.scan(read)
        bounds = (scanned.lo, scanned.hi)
        if scanned.count == 0:
            raise IndexError("order statistics of no values")
    # per rank: [range low, range high, values below the range, values in it (None: unknown)]
    state = {int(r): [bounds[0], bounds[1], 0, None] for r in ranks}
    found: dict[int, Any] = {}
    while True:
        for r, (lo, hi, _, _) in list(state.items()):
            if lo == hi:
                found[r] = lo
                del state[r]
        if not state:
            return [found[int(r)] for r in ranks]
        ranges = {(lo, hi, below, held) for lo, hi, below, held in state.values()}
        collect = {k for k in ranges if k[3] is not None and k[3] <= SELECT_HELD}
        split = {
            k: np.linspace(float(k[0]), float(k[1]), SELECT_BINS + 1) for k in ranges - collect
        }
        counts = {k: np.zeros(SELECT_BINS, np.int64) for k in split}
        # each bin's smallest and largest value (valid where its count is not 0)
        lows: dict[Any, np.ndarray] = {}
        highs: dict[Any, np.ndarray] = {}
        held: dict[Any, list[np.ndarray]] = {k: [] for k in collect}
        for values in read():
            if not len(values):
                continue
            ordered = np.sort(values)
            for k in collect:
                a = np.searchsorted(ordered, k[0], "left")
                b = np.searchsorted(ordered, k[1], "right")
                held[k].append(ordered[a:b])
            for k, edges in split.items():
                # bin j is [edge j, edge j+1), the last one closed at the range's high
                at = np.searchsorted(ordered, edges[:-1], "left")
                at = np.append(at, np.searchsorted(ordered, k[1], "right"))
                at[0] = np.searchsorted(ordered, k[0], "left")
                at = np.maximum.accumulate(at)
                n = np.diff(at)
                full = np.flatnonzero(n)
                first, last = ordered[at[full]], ordered[at[full + 1] - 1]
                if k not in lows:
                    lows[k] = np.zeros(SELECT_BINS, ordered.dtype)
                    highs[k] = np.zeros(SELECT_BINS, ordered.dtype)
                old = counts[k][full] > 0
                lows[k][full] = np.where(old, np.minimum(lows[k][full], first), first)
                highs[k][full] = np.where(old, np.maximum(highs[k][full], last), last)
                counts[k] += n
        for r, item in list(state.items()):
            k = (item[0], item[1], item[2], item[3])
            local = r - item[2]
            if k in collect:
                values = np.sort(np.concatenate(held[k]))
                found[r] = values[local]
                del state[r]
                continue
            cumulative = np.cumsum(counts[k])
            j = int(np.searchsorted(cumulative, local, "right"))
            below = int(cumulative[j - 1]) if j else 0
            state[r] = [lows[k][j].item(), highs[k][j].item(), item[2] + below, int(counts[k][j])]


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
    #: completed queries' latencies (only when `keep_values`: a table in memory)
    latencies: list[np.ndarray] = field(default_factory=list)
    #: keep every latency and TTFT; else (a phase's files) only their count, range and sum,
    #: and the order statistics are read again from the files (`ChunkedValues`)
    keep_values: bool = True
    latency_range: list[Any] = field(default_factory=lambda: [0, None, None, 0])
    ttft_range: list[Any] = field(default_factory=lambda: [0, None, None, 0])
    #: completed queries slower than this (the server scenario's target), counted
    target_ns: int | None = None
    over_target: int = 0
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
        if self.target_ns is not None:
            self.over_target += int(np.count_nonzero(values > self.target_ns))
        ttft = ok["ttft_ns"].dropna().to_numpy(dtype=np.int64)
        if self.keep_values:
            self.latencies.append(values)
            if len(ttft):
                self.ttfts.append(ttft)
        else:
            _extend_range(self.latency_range, values)
            _extend_range(self.ttft_range, ttft)
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
        """Every completed query's latency (int64), in no particular order (`keep_values`)."""
        if len(self.latencies) == 1:
            return self.latencies[0]
        return np.concatenate(self.latencies) if self.latencies else np.array([], np.int64)


_NO_QUERIES = pd.DataFrame(
    {c: pd.Series([], dtype="Int64") for c in ("query_id", "completed_ns", "scheduled_ns")}
)


def _percentile(values: np.ndarray | ChunkedValues, p: float) -> int:
    """`percentile` of sorted values, or of values read a chunk at a time."""
    if isinstance(values, np.ndarray):
        return percentile(values, p)
    n = values.count
    return int(values.at([min(int(n * p), n - 1)])[0])


def _estimate(values: np.ndarray | ChunkedValues, p: float) -> early_stopping.EarlyStoppingEstimate:
    """`early_stopping.estimate` of values in memory, or read a chunk at a time."""
    if isinstance(values, np.ndarray):
        return early_stopping.estimate(values, p)
    n = values.count
    t = early_stopping.overlatency_count(n, p)
    value = int(values.at([n - t])[0]) if t is not None else None
    return early_stopping.EarlyStoppingEstimate(p, n, t, value)


def _server_valid(
    values: np.ndarray | ChunkedValues, target_ns: int, over: int
) -> tuple[bool, int]:
    """`early_stopping.server_latency_valid` of values in memory, or read a chunk at a time
    (`over`: the count above the target, tallied as they were read)."""
    if isinstance(values, np.ndarray):
        return early_stopping.server_latency_valid(values, target_ns)
    n = values.count
    if n == 0:
        return False, 0
    enough = n >= early_stopping.min_passing_count(over, 0.99) + over
    return enough and _percentile(values, 0.99) <= target_ns, over


def _extend_range(into: list[Any], values: np.ndarray) -> None:
    """[count, min, max, exact sum] of int64 values, extended by `values`."""
    if not len(values):
        return
    low, high = values.min().item(), values.max().item()
    into[0] += len(values)
    into[1] = low if into[1] is None else min(into[1], low)
    into[2] = high if into[2] is None else max(into[2], high)
    into[3] += exact_sum(values)


def _tally(
    records: pd.DataFrame | RecordSource, multi_stream: bool, target_ns: int | None = None
) -> _Tally:
    if isinstance(records, pd.DataFrame):
        tally = _Tally(multi_stream, ordered=True, target_ns=target_ns)
        tally.add(records)
        return tally
    tally = _Tally(multi_stream, ordered=False, keep_values=False, target_ns=target_ns)
    for chunk in records.chunks(SUMMARY_COLUMNS):
        tally.add(chunk)
    return tally


def ok_values(source: RecordSource, column: str) -> Callable[[], Iterator[np.ndarray]]:
    """A reader of one int64 column's values over a phase's completed queries (NA dropped), a
    chunk at a time: what `ChunkedValues` reads its order statistics from."""

    def read() -> Iterator[np.ndarray]:
        for chunk in source.chunks(("status", column)):
            ok = chunk[(chunk["status"] == "ok").to_numpy(dtype=bool, na_value=False)]
            yield ok[column].dropna().to_numpy(dtype=np.int64)

    return read


def chunked_latency_stats(values: ChunkedValues) -> LatencyStats:
    """`latency_stats` of values read a chunk at a time (the same numbers)."""
    n = values.count
    if not n:
        return LatencyStats(count=0)
    shares = (0.50, 0.90, 0.95, 0.97, 0.99, 0.999)
    at = values.at([min(int(n * p), n - 1) for p in shares])
    names = ("p50_ns", "p90_ns", "p95_ns", "p97_ns", "p99_ns", "p999_ns")
    return LatencyStats(
        count=n,
        min_ns=int(values.lo),
        max_ns=int(values.hi),
        mean_ns=int(values.total / n),
        **{name: int(v) for name, v in zip(names, at, strict=True)},
    )


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
    target = spec.load.target_latency_ns
    tally = _tally(records, scenario == "multi-stream", target)
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
    latencies: np.ndarray | ChunkedValues
    if isinstance(records, pd.DataFrame):
        # sorted once (every use below is order-free)
        latencies = np.sort(tally.latency_values())
        lat = sorted_latency_stats(latencies)
        ttft = latency_stats(np.concatenate(tally.ttfts)) if tally.ttfts else None
    else:
        # a phase's files: exact order statistics read again from them, never N values held
        count, low, high, total = tally.latency_range
        latencies = ChunkedValues(ok_values(records, "latency_ns"), count, low, high, total)
        lat = chunked_latency_stats(latencies)
        count, low, high, total = tally.ttft_range
        ttft = None
        if count:
            ttfts = ChunkedValues(ok_values(records, "ttft_ns"), count, low, high, total)
            ttft = chunked_latency_stats(ttfts)
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
    scheduled_sps: float | None = None
    if scenario == "offline":
        score = loadgen_score(scenario, samples_per_second) if completed else None
    elif scenario in ("single-stream", "multi-stream"):
        values: np.ndarray | ChunkedValues = latencies
        if scenario == "multi-stream":
            ok_queries = tally.ok_queries
            per_query = _query_latencies(pd.concat(ok_queries) if ok_queries else _NO_QUERIES)
            query_lat = latency_stats(per_query)
            values = per_query
        assert es_p is not None
        est = _estimate(values, es_p)
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
            valid, es_t = _server_valid(latencies, target, tally.over_target)
            if not valid:
                need = early_stopping.min_passing_count(es_t, 0.99) + es_t
                p99 = _percentile(latencies, 0.99)
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
