"""The four MLPerf scenarios as issue patterns: when each query is sent, and from which time
its latency counts (the *scheduled* time, so client-side queueing is included)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from auditkit.config import Scenario
from auditkit.loadgen.supply import Query
from auditkit.plan import LoadPattern


class Issuer(Protocol):
    """What a scheduler needs from the running phase."""

    load: LoadPattern
    #: offline: concurrent workers (max_concurrency, fewer when the phase can never need them)
    workers: int

    def elapsed_ns(self) -> int:
        """Nanoseconds since the phase clock started."""
        ...

    def more(self, issued: int, last_ns: int) -> bool:
        """Whether to issue another query (planned samples and min_duration)."""
        ...

    def sample(self, position: int) -> Query:
        """The `position`-th sample issued: dataset row, variant and request body."""
        ...

    async def request(self, query_id: int, query: Query, scheduled_ns: int) -> None:
        """Send one sample and record it (also when it fails or is cancelled)."""
        ...


async def offline(phase: Issuer, take: Callable[[], int | None] | None = None) -> None:
    """All samples queued at t=0; at most max_concurrency in flight. `take` gives the next
    query's position (None: no more); workers pass one over a shared counter."""
    taken = 0

    def next_query() -> int | None:
        nonlocal taken
        if not phase.more(taken, phase.elapsed_ns()):
            return None
        taken += 1
        return taken - 1

    take = take or next_query

    async def worker() -> None:
        while (qid := take()) is not None:
            await phase.request(qid, phase.sample(qid), 0)

    await asyncio.gather(*(worker() for _ in range(phase.workers)))


async def single_stream(phase: Issuer) -> None:
    """One query at a time; the next is scheduled when the previous completes."""
    qid, last = 0, -1
    while phase.more(qid, last):
        last = phase.elapsed_ns()
        await phase.request(qid, phase.sample(qid), last)
        qid += 1


async def multi_stream(phase: Issuer) -> None:
    """Queries of samples_per_query samples; the next query when all of them complete."""
    per_query = phase.load.samples_per_query
    qid, issued, last = 0, 0, -1
    while phase.more(issued, last):
        block = [phase.sample(issued + i) for i in range(per_query)]
        last = phase.elapsed_ns()
        await asyncio.gather(*(phase.request(qid, q, last) for q in block))
        qid, issued = qid + 1, issued + per_query


async def server(
    phase: Issuer, concurrency: int | None = None, mine: int = 0, every: int = 1
) -> None:
    """Seeded Poisson arrivals at target_qps; client queueing counts in latency. Over worker
    processes every worker computes the one schedule and sends arrivals mine, mine + every, ...
    with at most `concurrency` (default max_concurrency) in flight."""
    qps = phase.load.target_qps
    assert qps is not None
    rng = random.Random(phase.load.seed)
    limit = asyncio.Semaphore(concurrency or phase.load.max_concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def bounded(qid: int, query: Query, scheduled: int) -> None:
        async with limit:
            await phase.request(qid, query, scheduled)

    arrival = 0.0
    qid, scheduled = 0, -1
    try:
        while phase.more(qid, scheduled):
            arrival += rng.expovariate(qps)
            scheduled = int(arrival * 1e9)
            if qid % every == mine:
                query = phase.sample(qid)
                # loop timers can fire up to ~1 ms early: never send before the arrival time
                while (delay := (scheduled - phase.elapsed_ns()) / 1e9) > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(bounded(qid, query, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            qid += 1
        if tasks:
            await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


SCHEDULERS: dict[Scenario, Callable[[Issuer], Awaitable[None]]] = {
    "offline": offline,
    "single-stream": single_stream,
    "multi-stream": multi_stream,
    "server": server,
}
