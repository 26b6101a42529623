"""A phase spread over several client hosts: Ray actors running today's worker code.

`--ray-address ADDR` (`load.ray_address`; `auto` joins the running cluster, `local` starts one
here) runs each offline or server phase as `_PhaseWorker` actors, at least one per node of
the cluster, each running the multi-process `_WorkerDriver` of loadgen/workers.py unchanged
(its own uvloop, connections and part files). What crosses hosts (docs/scale.md):

- the schedule: server needs nothing (every actor computes the seeded Poisson schedule and
  takes its round-robin share, as the processes do); offline's shared counter becomes a small
  `_Coordinator` actor that leases blocks of query positions (one actor call per query would
  itself be the bottleneck);
- the clock: before the phase the driver measures each host's clock offset (NTP-style,
  loadgen/clock_offsets.py), refuses the phase when one is known worse than
  `max_clock_offset_ms`, and hands every actor the phase start mapped onto its host's clock,
  so every record's times, relative to that start, are on the driver's axis;
- the records: each actor streams its part files to a folder of its own host and returns
  them as one Arrow table (Ray's object store moves it); the driver writes them as the
  phase's part files, `part-w<worker>-*.parquet`, the files and record schema a one-host
  multi-process run writes, and summarises them the same way.

Ray is an optional extra (`pip install auditkit[ray]`): it is imported only here, only when a
phase is spread, and its absence is a one-line setup error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import uvloop

from auditkit.data import Dataset
from auditkit.endpoints.base import EndpointAdapter
from auditkit.errors import SetupError
from auditkit.loadgen.clock_offsets import (
    ROUNDS,
    ClockOffset,
    ClockSample,
    check_offsets,
    estimate_offset,
)
from auditkit.loadgen.driver import ProgressCallback
from auditkit.loadgen.schedulers import offline
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.workers import (
    POLL_S,
    START_TIMEOUT_S,
    WorkerError,
    _Job,
    _Shared,
    _WorkerDriver,
    plan_workers,
    summarize_reports,
)
from auditkit.plan import RunSpec
from auditkit.records_io import PartWriter, read_parts, remove_parts, to_frame
from auditkit.results import HostShare, PhaseResult

INSTALL_HINT = "pip install 'auditkit[ray]'"
#: at most this many clock ping-pongs per host while the offset is not yet known well enough
MAX_ROUNDS = 64
#: offline positions an actor leases at once: few coordinator calls, little left unsent
MAX_LEASE = 1024
#: the phase starts this long after the go (the go must reach every host first)
START_DELAY_NS = 200_000_000


def import_ray() -> ModuleType:
    """Ray, or a one-line SetupError (exit 3) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SetupError(f"--ray-address needs Ray, not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> ModuleType:
    """Join (or, for `local`, start) the Ray cluster at `address` once per session."""
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level="WARNING",
            )
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SetupError(
                f"cannot join the Ray cluster at {address!r}: {first} (check --ray-address)"
            ) from None
    return ray


def spreads(spec: RunSpec) -> bool:
    """Whether a phase can be spread over hosts at all (offline and server phases whose
    semantics survive splitting; the others run on the driver, in one process)."""
    return plan_workers(spec, 2) > 1


def place(workers: int, nodes: int) -> list[int]:
    """Worker w's node: round robin, at least one worker per node. Pure."""
    if nodes < 1:
        raise ValueError("no nodes")
    return [w % nodes for w in range(max(workers, nodes))]


def lease_size(planned: int, workers: int) -> int:
    """Offline positions per lease: about eight leases per worker over the planned queries
    (so the shares stay even), at most MAX_LEASE."""
    return max(1, min(MAX_LEASE, planned // (8 * workers)))


def stitch_parts(phase_dir: str | Path, tables: Mapping[int, pa.Table]) -> int:
    """Write each worker's table as that worker's part files of `phase_dir` (the files a
    one-host run streams); returns the rows written. A table must carry its own worker id."""
    rows = 0
    for worker, table in sorted(tables.items()):
        ids = table.column("worker").unique().to_pylist() if table.num_rows else []
        if any(i != worker for i in ids):
            raise ValueError(f"worker {worker}'s records carry worker ids {ids}")
        writer = PartWriter(phase_dir, worker)
        try:
            for batch in table.combine_chunks().to_batches():
                writer.write(batch)
        finally:
            writer.close()
        rows += table.num_rows
    return rows


def measure_offset(
    ray: ModuleType, actor: Any, enough_ns: int, rounds: int = ROUNDS, most: int = MAX_ROUNDS
) -> ClockOffset:
    """A host's clock offset from ping-pongs with one of its actors (after one unmeasured
    call that warms the path): `rounds`, then more, up to `most`, while the best sample's
    uncertainty is above `enough_ns` (a busy host answers some calls late, not all)."""
    ray.get(actor.clock.remote())
    samples: list[ClockSample] = []
    while len(samples) < rounds or (
        len(samples) < most and estimate_offset(samples).uncertainty_ns > enough_ns
    ):
        sent = time.perf_counter_ns()
        host = ray.get(actor.clock.remote())
        samples.append(ClockSample(sent, int(host), time.perf_counter_ns()))
    return estimate_offset(samples)


# --- on the hosts -----------------------------------------------------------------------------


class _Coordinator:
    """The phase's shared state between hosts: offline's next position, readiness, the start
    (one per worker, on its host's clock) and the stop."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A new phase (the coordinator, like the workers, serves every phase of a session)."""
        self.head = 0
        self.ready_workers = 0
        self.starts: dict[int, int] | None = None
        self.stopped = False

    def lease(self, n: int) -> int:
        start = self.head
        self.head += n
        return start

    def ready(self) -> None:
        self.ready_workers += 1

    def ready_count(self) -> int:
        return self.ready_workers

    def go(self, starts: dict[int, int]) -> None:
        self.starts = starts

    def start(self, worker: int) -> tuple[int | None, bool]:
        return (None if self.starts is None else self.starts[worker]), self.stopped

    def stop(self) -> None:
        self.stopped = True

    def is_stopped(self) -> bool:
        return self.stopped


class _Value:
    def __init__(self) -> None:
        self.value = 0


class _Ready:
    def __init__(self, coordinator: Any) -> None:
        self.coordinator = coordinator

    def release(self) -> None:
        self.coordinator.ready.remote()


class _Go:
    """Waits (in an executor thread, as the processes' Event) for this worker's start."""

    def __init__(self, ray: ModuleType, coordinator: Any, worker: int, t0: _Value) -> None:
        self.ray, self.coordinator, self.worker, self.t0 = ray, coordinator, worker, t0

    def wait(self) -> None:
        while True:
            start, stopped = self.ray.get(self.coordinator.start.remote(self.worker))
            if start is not None or stopped:
                self.t0.value = start if start is not None else time.perf_counter_ns()
                return
            time.sleep(0.005)


class _Stop:
    """The coordinator's stop, polled by a thread (never a blocking call on the event loop)."""

    def __init__(self, ray: ModuleType, coordinator: Any) -> None:
        self.event = threading.Event()
        self.done = threading.Event()

        def poll() -> None:
            while not self.done.wait(POLL_S):
                try:
                    if ray.get(coordinator.is_stopped.remote()):
                        self.event.set()
                        return
                except Exception:  # the coordinator is gone: the phase is over
                    self.event.set()
                    return

        threading.Thread(target=poll, name="auditkit-ray-stop", daemon=True).start()

    def is_set(self) -> bool:
        return self.event.is_set()

    def close(self) -> None:
        self.done.set()


class _RayWorkerDriver(_WorkerDriver):
    """The worker driver with offline's positions leased from the coordinator."""

    def __init__(self, job: _Job, shared: _Shared, coordinator: Any, lease: int) -> None:
        super().__init__(job, shared)
        self.coordinator = coordinator
        self.lease = lease

    async def issue(self) -> None:
        if self.load.scenario != "offline":
            await super().issue()
            return
        import ray

        start = end = 0

        def take() -> int | None:
            nonlocal start, end
            if start >= end:  # one short blocking call per lease, not per query
                start = int(ray.get(self.coordinator.lease.remote(self.lease)))
                end = start + self.lease
            if not self.more(start, self.elapsed_ns()):
                return None
            start += 1
            return start - 1

        await offline(self, take)


class _PhaseWorker:
    """One worker on one host: answers clock pings, then runs its share of the phase."""

    def where(self) -> tuple[str, str]:
        import ray

        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def clock(self) -> int:
        return time.perf_counter_ns()

    def run(
        self, job: _Job, worker: int, coordinator: Any, lease: int
    ) -> tuple[pa.Table | None, tuple[Any, ...]]:
        """Run worker `worker`'s share; its records as one table and its report (worker,
        error, stopped, loop lags, reconnects), as a worker process reports."""
        import ray

        folder = tempfile.mkdtemp(prefix="auditkit-ray-")
        t0 = _Value()
        stop = _Stop(ray, coordinator)
        shared = _Shared(
            next_query=None,
            t0=t0,
            done=[0] * job.workers,
            ready=_Ready(coordinator),
            go=_Go(ray, coordinator, worker, t0),
            stop=stop,
        )
        try:
            mine = dataclasses.replace(job, records_dir=folder, worker=worker)
            driver = _RayWorkerDriver(mine, shared, coordinator, lease)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                stopped = runner.run(driver.run(asyncio.Event()))
            driver.recorder.close()
            return read_parts(folder), (worker, None, stopped, driver.lags, driver.reconnects)
        except BaseException as exc:  # reported to the driver, which raises it
            shared.ready.release()
            return None, (worker, f"{type(exc).__name__}: {exc}", True, [], 0)
        finally:
            stop.close()
            shutil.rmtree(folder, ignore_errors=True)


# --- the driver -------------------------------------------------------------------------------


@dataclass
class _Pool:
    """The session's actors, kept between phases: an actor's process imports Ray and auditkit
    when it starts (seconds on a busy host), once per session rather than once per phase."""

    job: str = ""
    coordinator: Any = None
    workers: dict[str, list[Any]] = field(default_factory=dict)  # node id -> its actors


_POOL = _Pool()


def _pooled(ray: ModuleType, nodes: Sequence[tuple[str, str]], placement: Sequence[int]) -> Any:
    """The coordinator and one actor per worker on its placed node (new ones as needed)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    job = ray.get_runtime_context().get_job_id()
    if _POOL.job != job:  # a new Ray session: the old handles are gone
        _POOL.job, _POOL.coordinator, _POOL.workers = job, None, {}
    if _POOL.coordinator is None:
        _POOL.coordinator = ray.remote(num_cpus=0)(_Coordinator).remote()
    actor_cls = ray.remote(num_cpus=0, max_restarts=0)(_PhaseWorker)
    actors: list[Any] = []
    for node in placement:
        node_id = nodes[node][0]
        pool = _POOL.workers.setdefault(node_id, [])
        taken = sum(1 for n in placement[: len(actors)] if nodes[n][0] == node_id)
        if taken == len(pool):
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            pool.append(actor_cls.options(scheduling_strategy=strategy).remote())
        actors.append(pool[taken])
    ray.get(_POOL.coordinator.reset.remote())
    return _POOL.coordinator, actors


def _drop_pool(ray: ModuleType) -> None:
    """After a failed phase: end every pooled actor (the next phase starts fresh ones)."""
    for actor in [_POOL.coordinator, *(a for pool in _POOL.workers.values() for a in pool)]:
        if actor is not None:
            ray.kill(actor, no_restart=True)
    _POOL.coordinator, _POOL.workers = None, {}


def _nodes(ray: ModuleType) -> list[tuple[str, str]]:
    """(node id, address) of every live node."""
    return sorted(
        (n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n.get("Alive", False)
    )


def run_phase_ray(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    target: HttpTarget,
    workers: int,
    *,
    address: str,
    max_clock_offset_ms: float = 1.0,
    records_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[PhaseResult, bool]:
    """Run one phase over the Ray cluster at `address`: max(`workers`, nodes) actors, at
    least one per node. Returns the result and whether it was stopped (Ctrl-C)."""
    ray = connect(address)
    nodes = _nodes(ray)
    if not nodes:
        raise SetupError(f"the Ray cluster at {address!r} has no live node")
    placement = place(workers, len(nodes))
    n = len(placement)
    coordinator, actors = _pooled(ray, nodes, placement)
    own_dir = None
    failed = True
    if records_dir is None:
        own_dir = tempfile.TemporaryDirectory(prefix="auditkit-ray-")
        records_dir = Path(own_dir.name)
    remove_parts(records_dir)
    interrupted = False
    try:
        try:
            landed = ray.get([a.where.remote() for a in actors], timeout=START_TIMEOUT_S)
        except Exception as exc:
            raise SetupError(f"Ray workers did not start on every node: {exc}") from None
        offsets: dict[int, ClockOffset] = {}
        for node in range(len(nodes)):
            enough = int(max_clock_offset_ms * 1e6 / 2)  # well inside the bound
            offsets[node] = measure_offset(ray, actors[placement.index(node)], enough)
        labels = {node: f"{nodes[node][1]} ({nodes[node][0][:8]})" for node in offsets}
        check_offsets({labels[k]: v for k, v in offsets.items()}, max_clock_offset_ms)
        job = ray.put(_Job(spec, dataset, adapter, target, "", 0, n))
        lease = lease_size(spec.planned_queries, n)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        refs = {a.run.remote(job, w, coordinator, lease): w for w, a in enumerate(actors)}
        pending = list(refs)
        results: dict[int, tuple[pa.Table | None, tuple[Any, ...]]] = {}

        def collect(timeout: float) -> None:
            nonlocal pending
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=timeout)
            for ref in done:
                results[refs[ref]] = ray.get(ref)

        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while ray.get(coordinator.ready_count.remote()) < n and not results:
                if time.monotonic() > deadline:
                    raise WorkerError("a Ray worker did not start within its time limit")
                collect(POLL_S)
            if results:  # a worker ended before the start: its error, not a phase
                coordinator.stop.remote()
                collect(60.0)
                raise WorkerError(next((r[1] for _, r in results.values() if r[1]), "stopped"))
            # one instant on the driver's clock, on each host's own clock
            t0 = time.perf_counter_ns() + START_DELAY_NS
            coordinator.go.remote({w: offsets[placement[w]].to_host(t0) for w in range(n)})
            while pending:
                collect(POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            coordinator.stop.remote()
            collect(60.0)
        errors = [r[1][1] for r in results.values() if r[1][1]]
        if errors:
            raise WorkerError(errors[0])
        if pending:
            raise WorkerError("a Ray worker did not finish after the stop")
        tables = {w: t for w, (t, _) in results.items() if t is not None}
        stitch_parts(records_dir, tables)
        records = to_frame(read_parts(records_dir), keep_worker=True, sort=True)
        reports = [r for _, r in results.values()]
        summary = summarize_reports(records, spec, reports, target, interrupted, started_at)
        hosts = host_shares(nodes, landed, placement, offsets, tables)
        summary = summary.model_copy(update={"hosts": hosts})
        if progress is not None:
            progress(len(records), spec.planned_queries)
        failed = interrupted
        return PhaseResult(spec, records, summary), interrupted
    finally:
        if failed:
            _drop_pool(ray)
        if own_dir is not None:
            own_dir.cleanup()


def host_shares(
    nodes: Sequence[tuple[str, str]],
    landed: Sequence[tuple[str, str]],
    placement: Sequence[int],
    offsets: Mapping[int, ClockOffset],
    tables: Mapping[int, pa.Table],
) -> tuple[HostShare, ...]:
    """phase.json's `hosts`: per node its workers, records and clock offset. A worker that
    landed elsewhere than placed (it cannot: placement is strict) would be a SetupError."""
    for w, node in enumerate(placement):
        if landed[w][0] != nodes[node][0]:
            raise SetupError(f"Ray placed worker {w} on {landed[w][1]}, not {nodes[node][1]}")
    out = []
    for node, off in sorted(offsets.items()):
        mine = tuple(w for w, p in enumerate(placement) if p == node)
        out.append(
            HostShare(
                host=nodes[node][1],
                node_id=nodes[node][0],
                workers=mine,
                records=sum(tables[w].num_rows for w in mine if w in tables),
                clock_offset_ns=off.offset_ns,
                clock_rtt_ns=off.rtt_ns,
                clock_uncertainty_ns=off.uncertainty_ns,
            )
        )
    return tuple(out)
