"""Probe runner: sends a probe's plan through the load generator as one phase.

A plan is the probe's queries in send order, each with its role (cold, warm, prime) and round;
one at a time (single-stream, so queueing never hides a speed-up) or in bursts sent at once
(multi-stream). Queries run on auditkit's owned loop (aio.py) through `run_phase_async`, so
probes time requests exactly like an audit does; a target with a fake transport runs them on
its virtual clock instead (tests). Partial results reach `on_update` while the phase runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from auditkit import aio
from auditkit.config import EndpointConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints import EndpointAdapter, make_adapter
from auditkit.loadgen import HttpTarget, run_phase_async
from auditkit.loadgen.transport import Transport
from auditkit.plan import LoadPattern, RunSpec
from auditkit.preflight import discover_model
from auditkit.probes.analysis import (
    PROBE_COLUMNS,
    Findings,
    ProbeResult,
    empty_probe_records,
)
from auditkit.results import PhaseResult, records_frame

UpdateCallback = Callable[[ProbeResult], None]
#: probe records so far → table, finding and signals (an analysis function, options bound)
Analyse = Callable[[pd.DataFrame], Findings]


@dataclass
class ProbeTarget:
    """An endpoint ready to probe: where it is, how to talk to it, and prompts to draw from.

    Mutable on purpose: it counts the prompts it handed out, so none is ever sent twice.
    `transport` None is real HTTP; a fake transport (auditkit.loadgen.fake) simulates.
    """

    base_url: str
    endpoint: EndpointConfig
    model: str
    http: HttpTarget
    dataset: Dataset
    label: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    transport: Transport | None = None
    _next_row: int = field(default=0, init=False, repr=False)
    _serial: int = field(default=0, init=False, repr=False)

    @classmethod
    def connect(
        cls,
        endpoint: EndpointConfig,
        base_url: str,
        dataset: Dataset,
        *,
        api_key: str | None = None,
        label: str = "",
    ) -> ProbeTarget:
        """Check the endpoint answers and resolve the model (SetupError if it does not)."""
        http = HttpTarget.from_config(endpoint, base_url, api_key)
        model = discover_model(endpoint, base_url, dict(http.headers))
        # probes open their connections with ordinary POSTs (with_openers), never a GET burst
        http = replace(http, warm_connections=False)
        return cls(base_url, endpoint, model, http, dataset, label or base_url)

    @classmethod
    def simulated(
        cls, endpoint: EndpointConfig, transport: Transport, dataset: Dataset
    ) -> ProbeTarget:
        """A target answered by `transport` (e.g. FakeTransport(SimulatedSUT(...)))."""
        base_url = "http://sut.invalid"
        http = replace(HttpTarget.from_config(endpoint, base_url, None), warm_connections=False)
        model = endpoint.model or "mock-llm"
        return cls(base_url, endpoint, model, http, dataset, "simulated", transport=transport)

    def adapter(self, temperature: float | None = None) -> EndpointAdapter:
        """The request builder/parser, optionally at another temperature."""
        cfg = self.endpoint
        if temperature is not None:
            cfg = cfg.model_copy(update={"temperature": temperature})
        return make_adapter(cfg, self.model)

    def fresh_texts(self, n: int, rows: int = 1) -> list[str]:
        """n prompts never sent before in this session: unused dataset rows (`rows` of them
        joined per prompt), tagged uniquely (the tag also keeps a previous session's cache
        entries from matching)."""
        out = []
        for _ in range(n):
            parts = []
            for _ in range(rows):
                parts.append(self.dataset[self._next_row % len(self.dataset)].text)
                self._next_row += 1
            self._serial += 1
            out.append(f"[probe {self.tag}-{self._serial}] " + "\n\n".join(parts))
        return out


@dataclass(frozen=True)
class Send:
    """One query of a plan: its text, its role (opener, prime, cold, warm), its round, a short
    label of its prompt (the same label: the same text) and its burst (queries sent at once)."""

    text: str
    role: str
    round: int
    prompt: str
    burst: int = 0


@dataclass(frozen=True)
class Plan:
    """A probe's queries in send order; `burst` queries at a time (1: one at a time)."""

    sends: tuple[Send, ...]
    burst: int = 1
    temperature: float | None = None


class StopFlag:
    """Thread-safe request to stop a running probe (the widget's Stop button)."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._events: list[asyncio.Event] = []
        self._lock = threading.Lock()

    def set(self) -> None:
        """Stop: the running probe ends early."""
        self._flag.set()
        with self._lock:
            for event in self._events:
                aio.call_soon(event.set)

    def is_set(self) -> bool:
        """True once `set` was called."""
        return self._flag.is_set()

    @contextlib.contextmanager
    def watching(self, event: asyncio.Event) -> Iterator[None]:
        """Set `event` (on auditkit's loop) when the flag is set, while the block runs."""
        with self._lock:
            self._events.append(event)
            if self._flag.is_set():
                aio.call_soon(event.set)
        try:
            yield
        finally:
            with self._lock:
                self._events.remove(event)


def plan_spec(name: str, n: int, burst: int) -> RunSpec:
    """The load-generator phase for n queries in send order, one at a time or in bursts."""
    # rows are laid out in send order, so the block order 0..n-1 replays them as given
    if burst <= 1:
        pattern = LoadPattern("single-stream", max_concurrency=1)
    else:
        pattern = LoadPattern("multi-stream", max_concurrency=burst, samples_per_query=burst)
    return RunSpec(name, SampleOrder.repeated_block(0, n), n, pattern)


def with_openers(target: ProbeTarget, plan: Plan) -> Plan:
    """The plan led by throwaway queries (fresh prompts, one per connection): they open the
    connections, so the first measured query is cold for the *cache*, not for TCP/TLS setup.
    Ordinary POSTs, unlike a burst of GET /v1/models a cache could learn to recognise."""
    openers = tuple(Send(t, "opener", 0, "opener", -1) for t in target.fresh_texts(plan.burst))
    return replace(plan, sends=openers + plan.sends)


def to_probe_records(records: pd.DataFrame, name: str, plan: Plan) -> pd.DataFrame:
    """Load-generator records → probe rows in ms, each with its send's role, round and prompt.
    The openers are dropped."""
    if len(records) == 0:
        return empty_probe_records()
    rec = records.sort_values("sent_ns", kind="stable")
    sends = [plan.sends[int(i)] for i in rec["sample_index"]]
    keep = [s.role != "opener" for s in sends]
    rec = rec[keep]
    sends = [s for s in sends if s.role != "opener"]
    if not sends:
        return empty_probe_records()
    lat = rec["latency_ns"].astype("float64") / 1e6
    ttft = rec["ttft_ns"].astype("float64") / 1e6
    decode = lat - ttft
    tokens = rec["output_tokens"].astype("float64") - 1
    tpot = decode / tokens.where(tokens > 0)
    frame = pd.DataFrame(
        {
            "probe": name,
            "group": [s.role for s in sends],
            "step": [s.round for s in sends],
            "round": [s.round for s in sends],
            "role": [s.role for s in sends],
            "prompt": [s.prompt for s in sends],
            "burst": [s.burst for s in sends],
            "sent_ms": rec["sent_ns"].astype("float64").to_numpy() / 1e6,
            "latency_ms": lat.to_numpy(),
            "ttft_ms": ttft.to_numpy(),
            "decode_ms": decode.to_numpy(),
            "tpot_ms": tpot.to_numpy(),
            "cached_tokens": rec["cached_tokens"].to_numpy(),
            "output_tokens": rec["output_tokens"].to_numpy(),
            "output_sha256": rec["output_sha256"].to_numpy(),
            "status": rec["status"].to_numpy(),
            "error": rec["error"].to_numpy(),
        }
    )
    return frame[list(PROBE_COLUMNS)].reset_index(drop=True)


def _run(
    target: ProbeTarget,
    phase: Callable[[asyncio.Event], Coroutine[Any, Any, PhaseResult]],
    stop: StopFlag,
) -> PhaseResult:
    transport = target.transport
    if transport is not None and transport.loop_factory is not None:
        # a simulated target: the phase runs on its own virtual-time loop in this thread
        with asyncio.Runner(loop_factory=transport.loop_factory) as runner:
            return runner.run(phase(asyncio.Event()))

    async def watched() -> PhaseResult:
        event = asyncio.Event()
        with stop.watching(event):
            return await phase(event)

    return aio.wait(aio.submit(watched()))


def run_plan(
    target: ProbeTarget,
    name: str,
    title: str,
    plan: Plan,
    analyse: Analyse,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """Send `plan` to `target` as one phase and analyse what came back.

    Blocks the calling thread (the work runs on auditkit's loop). `on_update` receives a
    partial ProbeResult (done=False) as records arrive, then the final one (done=True); a set
    `stop` ends the probe early (the records keep what completed).
    """
    stop = stop or StopFlag()

    def emit(frame: pd.DataFrame, done: bool) -> ProbeResult:
        found = analyse(frame)
        result = ProbeResult(name, title, frame, found.table, found.finding, found.signals, done)
        if on_update is not None:
            on_update(result)
        return result

    if stop.is_set():
        return emit(empty_probe_records(), done=True)
    full = with_openers(target, plan)
    dataset = Dataset("probe", tuple(Sample(i, s.text) for i, s in enumerate(full.sends)))
    spec = plan_spec(name, len(full.sends), full.burst)
    adapter = target.adapter(plan.temperature)

    def on_rows(rows: list[tuple[Any, ...]]) -> None:
        emit(to_probe_records(records_frame(rows), name, full), done=False)

    def phase(event: asyncio.Event) -> Coroutine[Any, Any, PhaseResult]:
        return run_phase_async(
            spec,
            dataset,
            adapter,
            target.http,
            stop=event,
            on_rows=on_rows if on_update is not None else None,
            transport=target.transport,
        )

    result = _run(target, phase, stop)
    return emit(to_probe_records(result.records, name, full), done=True)
