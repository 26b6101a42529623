"""Probe runner: issues a probe's groups through the load generator, one query at a time.

Queries run on auditkit's owned loop (aio.py) through `run_phase_async`, so probes time
requests exactly like an audit does (single-stream, so queueing never hides a speed-up).
Partial results reach `on_update` while a group runs (the widgets draw live plots with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from auditkit import aio
from auditkit.config import EndpointConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints import EndpointAdapter, make_adapter
from auditkit.loadgen import HttpTarget, run_phase_async
from auditkit.plan import LoadPattern, RunSpec
from auditkit.preflight import discover_model
from auditkit.probes.analysis import (
    Findings,
    ProbeResult,
    empty_probe_records,
    to_probe_records,
)
from auditkit.results import records_frame

UpdateCallback = Callable[[ProbeResult], None]
#: probe records so far → table, finding and signals (an analysis function, options bound)
Analyse = Callable[[pd.DataFrame], Findings]


@dataclass
class ProbeTarget:
    """An endpoint ready to probe: where it is, how to talk to it, and prompts to draw from.

    Mutable on purpose: it counts the prompts it handed out, so none is ever sent twice.
    """

    base_url: str
    endpoint: EndpointConfig
    model: str
    http: HttpTarget
    dataset: Dataset
    label: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
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
        return cls(base_url, endpoint, model, http, dataset, label or base_url)

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
class Group:
    """One group of a probe: prompts sent one at a time, in order, at an optional temperature."""

    name: str
    texts: tuple[str, ...]
    temperature: float | None = None


class StopFlag:
    """Thread-safe request to stop a running probe (the widget's Stop button)."""

    def __init__(self) -> None:
        self._flag = threading.Event()
        self._events: list[asyncio.Event] = []
        self._lock = threading.Lock()

    def set(self) -> None:
        """Stop: the running group ends early, no further group starts."""
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


def group_spec(name: str, n: int) -> RunSpec:
    """The load-generator phase for a group of n queries: single-stream, rows in send order."""
    # rows are laid out in send order, so the block order 0..n-1 replays them as given
    return RunSpec(
        name,
        SampleOrder.repeated_block(0, n),
        n,
        LoadPattern("single-stream", max_concurrency=1),
    )


async def _run_group_async(
    spec: RunSpec,
    dataset: Dataset,
    adapter: EndpointAdapter,
    http: HttpTarget,
    on_rows: Callable[[list[tuple[Any, ...]]], None],
    stop: StopFlag,
) -> pd.DataFrame:
    # loadgen's phase runner, watched row by row (on_rows fires on the loop thread, ~10/s)
    event = asyncio.Event()
    with stop.watching(event):
        result = await run_phase_async(spec, dataset, adapter, http, stop=event, on_rows=on_rows)
    records = result.records.sort_values("sent_ns", kind="stable").reset_index(drop=True)
    on_rows(list(records.itertuples(index=False, name=None)))
    return records


class _ProbeRun:
    """One probe's groups run in order, with partial results streamed to `on_update`."""

    def __init__(
        self,
        target: ProbeTarget,
        name: str,
        title: str,
        analyse: Analyse,
        on_update: UpdateCallback | None,
        stop: StopFlag,
    ) -> None:
        self.target = target
        self.name = name
        self.title = title
        self.analyse = analyse
        self.on_update = on_update
        self.stop = stop
        self.done_groups: list[pd.DataFrame] = []

    def _emit(self, frame: pd.DataFrame, done: bool) -> ProbeResult:
        found = self.analyse(frame)
        result = ProbeResult(
            self.name, self.title, frame, found.table, found.finding, found.signals, done
        )
        if self.on_update is not None:
            self.on_update(result)
        return result

    def _partial(self, group: str, rows: list[tuple[Any, ...]]) -> None:
        live = to_probe_records(records_frame(rows), group)
        frame = pd.concat([*self.done_groups, live], ignore_index=True)
        self._emit(frame, done=False)

    def group(self, group: Group) -> None:
        """Send the group's texts one at a time, in order.

        A throwaway query with its own fresh prompt goes first: it opens the connection, so
        the group's first measured query is cold for the *cache*, not for TCP/TLS setup (which
        would otherwise pass for a cache speed-up on every later query).
        """
        if self.stop.is_set():
            return
        sent = [*self.target.fresh_texts(1), *group.texts]
        dataset = Dataset("probe", tuple(Sample(i, t) for i, t in enumerate(sent)))
        records = aio.wait(
            aio.submit(
                _run_group_async(
                    group_spec(group.name, len(sent)),
                    dataset,
                    self.target.adapter(group.temperature),
                    self.target.http,
                    lambda rows: self._partial(group.name, rows),
                    self.stop,
                )
            )
        )
        self.done_groups.append(to_probe_records(records, group.name))

    def finish(self) -> ProbeResult:
        frames = [f for f in self.done_groups if len(f)]
        frame = pd.concat(frames, ignore_index=True) if frames else empty_probe_records()
        return self._emit(frame, done=True)


def run_groups(
    target: ProbeTarget,
    name: str,
    title: str,
    groups: Sequence[Group],
    analyse: Analyse,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """Run `groups` in order against `target` and analyse what came back.

    Blocks the calling thread (the work runs on auditkit's loop). `on_update` receives a
    partial ProbeResult (done=False) as records arrive, then the final one (done=True); a set
    `stop` ends the running group early and skips the rest.
    """
    run = _ProbeRun(target, name, title, analyse, on_update, stop or StopFlag())
    for group in groups:
        run.group(group)
    return run.finish()
