"""`run_phase`: one phase to completion from synchronous code (the CLI, notebooks, tests)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from auditkit import aio
from auditkit.data import Dataset
from auditkit.endpoints.base import EndpointAdapter
from auditkit.loadgen.driver import (
    PhaseInterrupted,
    ProgressCallback,
    quiet_gc,
    run_phase_async,
)
from auditkit.loadgen.ray_hosts import run_phase_ray, spreads
from auditkit.loadgen.target import HttpTarget
from auditkit.loadgen.transport import Transport
from auditkit.loadgen.workers import plan_workers, run_phase_workers
from auditkit.plan import RunSpec
from auditkit.results import PhaseResult


def run_phase(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    target: HttpTarget,
    *,
    progress: ProgressCallback | None = None,
    transport: Transport | None = None,
    records_dir: Path | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    max_clock_offset_ms: float = 1.0,
) -> PhaseResult:
    """Run one phase to completion (works inside Jupyter too).

    The default transport (loadgen/choice.py) runs on auditkit's own loop (aio.py); one with a
    `loop_factory` (the fake) runs on a fresh loop of that kind in the calling thread. Ctrl-C
    stops the phase: in-flight requests are recorded as cancelled and PhaseInterrupted carries
    the partial result. `records_dir` (the phase's folder) receives the records as part
    files while the phase runs; `workers` > 1 spreads an offline or server phase over that many
    processes (`auto_workers`, `plan_workers` in loadgen/workers.py); `ray_address` spreads it
    over the hosts of a Ray cluster instead (loadgen/ray_hosts.py).
    """

    if transport is None and ray_address is not None and spreads(spec):
        result, stopped = run_phase_ray(
            spec, dataset, adapter, target, workers, address=ray_address,
            max_clock_offset_ms=max_clock_offset_ms, records_dir=records_dir, progress=progress,
        )  # fmt: skip
        if stopped or result.summary.interrupted:
            raise PhaseInterrupted(result)
        return result

    if transport is None and plan_workers(spec, workers) > 1:
        result, stopped = run_phase_workers(
            spec, dataset, adapter, target, plan_workers(spec, workers),
            records_dir=records_dir, progress=progress,
        )  # fmt: skip
        if stopped or result.summary.interrupted:
            raise PhaseInterrupted(result)
        return result

    def phase(stop: asyncio.Event) -> Coroutine[Any, Any, PhaseResult]:
        return run_phase_async(
            spec, dataset, adapter, target, progress=progress, stop=stop, transport=transport,
            records_dir=records_dir,
        )  # fmt: skip

    with quiet_gc():
        if transport is not None and transport.loop_factory is not None:
            result = _run_on_own_loop(transport.loop_factory, phase)
        else:
            stop = asyncio.Event()  # binds to the owned loop on first use (Python >= 3.10)
            future = aio.submit(phase(stop))
            try:
                result = aio.wait(future)
            except KeyboardInterrupt:
                aio.call_soon(stop.set)
                result = future.result(timeout=60)
                raise PhaseInterrupted(result) from None
    if result.summary.interrupted:
        raise PhaseInterrupted(result)
    return result


def _run_on_own_loop(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    phase: Callable[[asyncio.Event], Coroutine[Any, Any, PhaseResult]],
) -> PhaseResult:
    """Run on a fresh loop; Ctrl-C (asyncio.Runner cancels the main task) stops the phase.

    Under a running loop (Jupyter) the fresh loop gets a worker thread of its own.
    """

    async def main() -> PhaseResult:
        stop = asyncio.Event()
        task = asyncio.ensure_future(phase(stop))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            stop.set()  # keep the partial result: in-flight requests end as cancelled rows
            return await task

    def run() -> PhaseResult:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(main())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="auditkit-fake") as pool:
        return pool.submit(run).result()
