"""Multi-process load generation: one phase split over N worker processes.

One Python process tops out near 10k requests/s (docs/performance.md). With `workers` > 1 a
phase runs in N spawned processes, each with its own event loop, connection pool and
`PhaseDriver`, on one shared schedule and one clock:

- the clock: `time.perf_counter_ns()` is CLOCK_MONOTONIC on Linux, one system-wide clock, so
  every process's timestamps are on the same axis; the parent picks the phase start `t0` once
  every worker has opened its connections, and all times are relative to it;
- offline: one shared queue (a shared counter under a lock: the next query to send), at most
  `max_concurrency` in flight in all (split over the workers);
- server: one seeded Poisson schedule, computed identically by every worker and dealt round
  robin (worker w sends arrivals w, w + N, ...), each at its scheduled time;
- single-stream, multi-stream and warm-up phases run in one process (`plan_workers` says
  so): one query in flight, or a decision that needs every completion as it happens;
- phases that log outputs (TEST01, TEST06, TEST07, TEST09) spread like the others: each worker
  sends its logged responses back with its report, merged in completion order.

Each worker streams its records to part files of the phase folder with its worker id; the
phase's records are their union (`worker` column), and the summary, scoring and early
stopping are computed on that union exactly as for one process.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import uvloop

from auditkit import records_io
from auditkit.config import LoadConfig
from auditkit.data import Dataset
from auditkit.endpoints.base import EndpointAdapter
from auditkit.errors import ExecutionError
from auditkit.loadgen.choice import default_transport
from auditkit.loadgen.driver import PhaseDriver, ProgressCallback
from auditkit.loadgen.schedulers import offline, server
from auditkit.loadgen.supply import Query
from auditkit.loadgen.target import HttpTarget
from auditkit.metrics import median_of, summarize
from auditkit.plan import LoadPattern, RunSpec
from auditkit.records_io import PartWriter, PhaseRecords, read_parts, remove_parts, to_frame
from auditkit.results import LoggedOutput, PhaseResult, PhaseSummary

Workers = int | Literal["auto"]
#: scenarios whose queries can be spread over processes without changing their semantics
SPLITTABLE = ("offline", "server")
#: how long the parent waits for the workers to start and open their connections
START_TIMEOUT_S = 120.0
POLL_S = 0.1


class WorkerError(ExecutionError):
    """A worker process failed (its error text is the message; exit code 4)."""


def shared_clock_ok() -> bool:
    """Whether perf_counter is one system-wide clock (CLOCK_MONOTONIC), as multi-process
    timestamps need; on Linux it is (`time.get_clock_info`)."""
    return "CLOCK_MONOTONIC" in time.get_clock_info("perf_counter").implementation


def plan_workers(spec: RunSpec, requested: int) -> int:
    """The workers a phase actually gets: `requested` for offline and server phases, 1 where
    spreading would change the scenario (one in flight, all-at-once blocks) or a decision
    needs every completion as it happens (the warm-up's stability rule)."""
    if requested <= 1 or spec.load.scenario not in SPLITTABLE:
        return 1
    if spec.warmup is not None:
        return 1
    if not shared_clock_ok():
        return 1
    return max(1, min(requested, spec.load.max_concurrency, spec.planned_queries))


#: `workers: auto` plans an offline phase for up to this many times the fastest rate seen so
#: far: a short warm-up runs below its steady rate, and a later phase may be answered faster
#: (a warmer server, a cache); one process too many costs ~0.1-0.3 s, one too few the phase
HEADROOM = 2.0


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity; cpu_count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def median_service_ns(service_ns: np.ndarray | Callable[[], Iterable[np.ndarray]]) -> float | None:
    """The median service time (sent -> completed, ns) a phase saw, for Little's law in
    `expected_rate`. A warm-up runs too few queries, in rounds, for its own rate to say how
    fast a measured phase will go (seen: 272/s before an offline phase that reached 4,462/s
    against a cache); its service times do. `service_ns`: the times, or a reader of them a
    chunk at a time (a phase's files)."""
    read = service_ns if callable(service_ns) else lambda: iter([service_ns])
    return median_of(lambda: (v[v > 0] for v in read()))


def attainable_rate(
    concurrency: int, service_ns: np.ndarray | Callable[[], Iterable[np.ndarray]]
) -> float | None:
    """The rate (requests/s) `concurrency` requests in flight reach at a phase's median
    service time: Little's law, rate = L / W."""
    median = median_service_ns(service_ns)
    return None if median is None else concurrency / (median / 1e9)


def expected_rate(
    load: LoadPattern, seen: float | None, service_ns: float | None = None
) -> float | None:
    """The rate (requests/s) `workers: auto` plans a phase for, before it runs: a server
    phase's target_qps; an offline phase's target_qps when one is given (LoadGen's offline
    expected QPS), else the larger of HEADROOM × `seen`, the fastest rate a phase reached so
    far against this endpoint (the warm-up's first), and Little's law at *this* phase's
    concurrency, max_concurrency / `service_ns` (the shortest median service time a phase
    saw: a one-at-a-time warm-up's rate says nothing of a phase with 64 in flight; its service
    time does); None when there is nothing to go by."""
    if load.scenario == "server":
        return load.target_qps
    if load.scenario != "offline":
        return None
    planned = HEADROOM * seen if seen else None
    little = load.max_concurrency / (service_ns / 1e9) if service_ns else None
    return max(r for r in (load.target_qps, planned, little, 0.0) if r is not None) or None


def auto_workers(
    scenario: str,
    *,
    ceiling: float | None,
    fraction: float,
    expected_rate: float | None,
    cores: int | None = None,
) -> int:
    """`workers: auto`: as many processes as the client-saturation guard says the expected
    rate needs, capped by the cores. A process is good for `fraction × ceiling` requests/s
    (beyond that the guard calls the phase client-bound)."""
    if scenario not in SPLITTABLE or not ceiling or not expected_rate:
        return 1
    needed = math.ceil(expected_rate / (fraction * ceiling))
    return max(1, min(needed, cores or usable_cores()))


def phase_workers(
    load: LoadConfig,
    spec: RunSpec,
    ceiling: float | None,
    seen_rate: float | None,
    service_ns: float | None = None,
) -> int:
    """The processes a phase of this run gets: `load.workers` (N, or auto: `auto_workers` at
    the `expected_rate` of the phase's own load pattern, `seen_rate` being the fastest rate
    a phase reached so far and `service_ns` the shortest median service time), then
    `plan_workers`' limits."""
    if load.workers == "auto":
        requested = auto_workers(
            spec.load.scenario,
            ceiling=ceiling,
            fraction=load.client_bound_fraction,
            expected_rate=expected_rate(spec.load, seen_rate, service_ns),
        )
    else:
        requested = load.workers
    return plan_workers(spec, requested)


# --- the worker process ------------------------------------------------------------------


@dataclass(frozen=True)
class _Shared:
    """What the processes share: the queue head, the start time, progress and the stop."""

    next_query: Any  # Value('q'), with its lock
    t0: Any  # Value('q'): the phase start on the shared clock (perf_counter ns)
    done: Any  # multiprocessing Array('q', N, lock=False): completions per worker
    ready: Any  # Semaphore-like counter: workers with their connections open
    go: Any  # Event: t0 is set
    stop: Any  # Event: end the phase early


@dataclass(frozen=True)
class _Job:
    spec: RunSpec
    dataset: Dataset
    adapter: EndpointAdapter
    target: HttpTarget
    records_dir: str
    worker: int
    workers: int


class _WorkerDriver(PhaseDriver):
    """A PhaseDriver that issues its share of a phase on the shared schedule and clock."""

    def __init__(self, job: _Job, shared: _Shared) -> None:
        transport = default_transport(job.target)
        super().__init__(job.spec, job.dataset, job.adapter, job.target, transport)
        self.job = job
        self.shared = shared
        self.recorder.worker = job.worker
        self.recorder.sink = PartWriter(job.records_dir, job.worker)
        # this worker's share of the concurrency (offline workers; server's in-flight bound)
        share = _share(self.load.max_concurrency, job.workers, job.worker)
        self.workers = max(1, min(share, self.workers))
        self.share = share
        self._produced = len(self.supply.planned)
        self.sample: Callable[[int], Query] = self._sample

    def _sample(self, position: int) -> Query:
        # the supply extends its order one query at a time: a worker that skips positions
        # (dealt or taken by others) still advances it, so position p is the same everywhere
        planned = self.supply.planned
        if position < len(planned):
            return planned[position]
        while True:
            query = self.supply.query(len(planned))  # the next query of the extended order
            self._produced += 1
            if self._produced > position:
                return query

    def _record(self, attempt: Any, arrived: int | None = None) -> None:
        super()._record(attempt, arrived)
        self.shared.done[self.job.worker] = len(self.recorder)

    async def issue(self) -> None:
        """This worker's share of the phase's queries (a Ray worker leases offline's)."""
        pattern = _offline_shared if self.load.scenario == "offline" else _server_dealt
        await pattern(self)

    async def run(self, stop: asyncio.Event) -> bool:  # noqa: ARG002 (the driver's signature)
        loop = asyncio.get_running_loop()
        pool = max(self.share, 1)
        async with self.transport.session(self.target, pool_size=pool, warm=self.workers) as s:
            self.session = s
            self.shared.ready.release()
            await loop.run_in_executor(None, self.shared.go.wait)
            self.t0 = self.shared.t0.value
            if (wait := (self.t0 - self.now_ns()) / 1e9) > 0:
                await asyncio.sleep(wait)
            main = asyncio.ensure_future(self.issue())
            stopper = asyncio.ensure_future(_watch(self.shared.stop))
            lag = asyncio.ensure_future(self._monitor_lag())
            try:
                await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped = not main.done()
                for task in (main, stopper, lag):
                    task.cancel()
                await asyncio.gather(main, stopper, lag, return_exceptions=True)
                self.reconnects = getattr(s, "reconnects", 0)
                self.timestamp_source = getattr(s, "timestamp_source", None)
            if not stopped and (error := main.exception()) is not None:
                raise error
        return stopped


def _share(total: int, workers: int, worker: int) -> int:
    """Worker `worker`'s part of `total` split as evenly as it goes."""
    return total // workers + (1 if worker < total % workers else 0)


async def _watch(stop: Any) -> None:
    while not stop.is_set():
        await asyncio.sleep(POLL_S)


async def _offline_shared(phase: _WorkerDriver) -> None:
    """Offline over processes: every worker takes the next query from one shared counter."""
    head = phase.shared.next_query

    def take() -> int | None:
        with head.get_lock():
            position = head.value
            if not phase.more(position, phase.elapsed_ns()):
                return None
            head.value = position + 1
        return position

    await offline(phase, take)


async def _server_dealt(phase: _WorkerDriver) -> None:
    """Server over processes: the one seeded Poisson schedule, arrivals dealt round robin."""
    await server(phase, max(1, phase.share), phase.job.worker, phase.job.workers)


def _worker_main(job: _Job, shared: _Shared, results: Any) -> None:
    """A worker process: run its share, flush its records, report lags and reconnects."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        driver = _WorkerDriver(job, shared)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            stopped = runner.run(driver.run(asyncio.Event()))
        driver.recorder.close()
        report = (
            job.worker,
            None,
            stopped,
            driver.lags,
            driver.reconnects,
            driver.outputs,
            driver.timestamp_source,
        )
        results.put(report)
    except BaseException as exc:  # reported to the parent, which raises it
        shared.ready.release()  # never leave the parent waiting for a start that failed
        results.put((job.worker, f"{type(exc).__name__}: {exc}", True, [], 0, []))


# --- the parent ----------------------------------------------------------------------------


def run_phase_workers(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    target: HttpTarget,
    workers: int,
    *,
    records_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[PhaseResult, bool]:
    """Run one phase over `workers` processes; returns the result and whether it was stopped
    (Ctrl-C). Records stream to part files in `records_dir` (a temporary folder if None)."""
    # never fork a process that runs threads (the aio loop): a fork server, started clean once
    # per session with the load generator imported, forks each worker in milliseconds
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_preload())
    own_dir = None
    if records_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="auditkit-workers-")
        records_dir = Path(own_dir.name)
    remove_parts(records_dir)
    shared = _Shared(
        next_query=ctx.Value("q", 0),
        t0=ctx.Value("q", 0, lock=False),
        done=ctx.Array("q", workers, lock=False),
        ready=ctx.Semaphore(0),
        go=ctx.Event(),
        stop=ctx.Event(),
    )
    results = ctx.Queue()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(
                _Job(spec, dataset, adapter, target, str(records_dir), w, workers),
                shared,
                results,
            ),
            name=f"auditkit-worker-{w}",
            daemon=True,
        )
        for w in range(workers)
    ]
    interrupted = False
    reports: dict[int, tuple[Any, ...]] = {}
    try:
        for proc in procs:
            proc.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            for _ in procs:
                if not shared.ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    raise WorkerError("a worker did not start within its time limit")
            # a few ms ahead: every worker is past its wait when the clock starts
            shared.t0.value = time.perf_counter_ns() + 20_000_000
            shared.go.set()
            planned = spec.planned_queries
            while len(reports) < workers:
                _collect(results, reports, timeout=POLL_S)
                if progress is not None:
                    progress(sum(shared.done[:]), planned)
                if any(not p.is_alive() for p in procs) and len(reports) < workers:
                    dead = _dead_workers(procs, results, reports)
                    if dead:
                        raise WorkerError(f"worker {dead[0]} died (exit {procs[dead[0]].exitcode})")
        except KeyboardInterrupt:
            interrupted = True
            shared.stop.set()
            shared.go.set()
            deadline = time.monotonic() + 60
            while len(reports) < workers and time.monotonic() < deadline:
                _collect(results, reports, timeout=POLL_S)
        errors = [r[1] for r in reports.values() if r[1]]
        if errors:
            raise WorkerError(errors[0])
        for proc in procs:
            proc.join(timeout=10)
        parts = tuple(sorted((records_dir / records_io.PARTS).glob("part-*.parquet")))
        rows = sum(pq.read_metadata(p).num_rows for p in parts)
        records: pd.DataFrame | PhaseRecords
        if rows > records_io.LAZY_ROWS and own_dir is None:  # left in the parts, by column
            records = PhaseRecords(records_dir, parts, rows, keep_worker=True)
        else:
            table = read_parts(records_dir)
            records = to_frame(table, keep_worker=True, sort=True)
            del table
        summary = summarize_reports(
            records, spec, list(reports.values()), target, interrupted, started_at
        )
        if progress is not None:
            progress(rows, spec.planned_queries)
        outputs = _in_completion_order([o for r in reports.values() for o in r[5]], records)
        return PhaseResult(spec, records, summary, outputs), interrupted
    finally:
        shared.stop.set()
        shared.go.set()
        for proc in procs:
            if proc.is_alive():
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        if own_dir is not None:
            own_dir.cleanup()


def summarize_reports(
    records: pd.DataFrame | PhaseRecords,
    spec: RunSpec,
    reports: list[tuple[Any, ...]],
    target: HttpTarget,
    interrupted: bool,
    started_at: str,
) -> PhaseSummary:
    """The phase's summary from its records and its workers' reports (worker, error, stopped,
    event-loop lags, reconnects, ...): the lag p99 over every worker's samples, reconnects
    summed. Shared by the one-host processes and the Ray actors."""
    lags = sorted(lag for r in reports for lag in r[3])
    lag_p99 = lags[min(int(len(lags) * 0.99), len(lags) - 1)] if lags else None
    summary = summarize(
        records,
        spec,
        interrupted=interrupted,
        loop_lag_p99_ns=lag_p99,
        request_headers=target.redacted_headers(),
        started_at=started_at,
    )
    reconnects = sum(int(r[4]) for r in reports)
    # the workers' receive-time sources (a process report's 7th field; Ray's do not say)
    parts = {p for r in reports if len(r) > 6 and r[6] for p in r[6].split("+")}
    source = "+".join(p for p in ("kernel", "loop") if p in parts) or None
    return summary.model_copy(
        update={
            "request_settings": target.settings(),
            "reconnects": reconnects,
            "timestamp_source": source,
        }
    )


def _in_completion_order(
    outputs: list[LoggedOutput], records: pd.DataFrame | PhaseRecords
) -> tuple[LoggedOutput, ...]:
    """The workers' logged responses merged in completion order, as one process keeps them."""
    if not outputs:
        return ()
    times = (
        records.columns(("query_id", "completed_ns"))
        if isinstance(records, PhaseRecords)
        else records
    )
    done = dict(zip(times["query_id"].tolist(), times["completed_ns"].tolist(), strict=True))
    return tuple(sorted(outputs, key=lambda o: (done.get(o.query_id, 0), o.query_id)))


def _preload() -> list[str]:
    """What the fork server imports once, so that a worker starts in milliseconds, not
    seconds: this module and every auditkit module the parent has loaded. Every worker
    re-runs the parent's `__main__` (the `auditkit` script, pytest's, a notebook kernel's)
    before it starts; with its imports already loaded that costs ms, without them all of
    auditkit (pandas, scipy, uvicorn: ~4 s per worker on a busy 2-core machine). (Preloading
    "__main__" itself does nothing on Python 3.11: the fork server looks for a key that the
    preparation data does not have.)"""
    loaded = sorted(m for m in sys.modules if m.startswith("auditkit."))
    return [*loaded, __name__]


def _drain(results: Any, reports: dict[int, tuple[Any, ...]]) -> None:
    """Every report already queued (workers that finish together queue theirs together)."""
    import queue

    while True:
        try:
            report = results.get_nowait()
        except queue.Empty:
            return
        reports[report[0]] = report


def _dead_workers(procs: list[Any], results: Any, reports: dict[int, tuple[Any, ...]]) -> list[int]:
    """Exited workers without a report: at once if the exit code says it failed; after a last
    wait and drain if it exited cleanly (its report may still be in the queue's pipe)."""
    _drain(results, reports)
    exited = [w for w, p in enumerate(procs) if not p.is_alive() and w not in reports]
    if any(procs[w].exitcode != 0 for w in exited):
        return [w for w in exited if procs[w].exitcode != 0]
    if exited:
        _collect(results, reports, timeout=1.0)
        _drain(results, reports)
    return [w for w in exited if w not in reports]


def _collect(results: Any, reports: dict[int, tuple[Any, ...]], timeout: float) -> None:
    import queue

    try:
        report = results.get(timeout=timeout)
    except queue.Empty:
        return
    reports[report[0]] = report
