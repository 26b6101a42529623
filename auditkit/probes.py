"""Caching probes: small, targeted experiments that tell caching kinds apart.

Each probe sends a few groups of queries one at a time (single-stream, so queueing never hides
a speed-up) and returns a ProbeResult: per-query records, a per-group table and a plain-words
finding. What the signatures look like:

| probe | response (output) cache | prefix / KV cache | no cache |
|---|---|---|---|
| repeat vs distinct | repeats much faster | repeats faster (prefill skipped) | same |
| cold vs warm | warm TTFT *and* decode collapse | warm TTFT drops, decode does not | flat |
| shared prefix | — (different prompts) | TTFT drops if partial prefixes are reused | flat |
| identical outputs at T>0 | byte-identical outputs | outputs differ | outputs differ |

Every probe uses prompts nobody sent before (a per-session tag plus unused dataset rows), so the
first query of a group is really cold. Queries run on auditkit's owned loop (aio.py) through the
load generator, so the probes time requests exactly like an audit does; `on_update` receives
partial results while a probe runs (the widgets use it for live plots).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from auditkit import aio, loadgen
from auditkit.config import EndpointConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints import EndpointAdapter, make_adapter
from auditkit.loadgen import Transport
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import records_frame

# Probes that compare cold and warm use prompts of several dataset rows: prefill cost grows
# with prompt length, so a skipped prefill (prefix/KV cache) stands out from per-request
# overheads that a single short prompt would drown it in.
LONG_PROMPT_ROWS = 4
# a warm/cold ratio below this counts as "dropped" (the mock's jitter is ~5%; real endpoints
# vary more, so a clear signature is asked for rather than a statistically fine one)
DROP_RATIO = 0.7
PROBE_COLUMNS = (
    "group",
    "step",
    "latency_ms",
    "ttft_ms",
    "decode_ms",
    "cached_tokens",
    "output_tokens",
    "output_sha256",
    "status",
    "error",
)

UpdateCallback = Callable[["ProbeResult"], None]


@dataclass
class ProbeTarget:
    """An endpoint ready to probe: where it is, how to talk to it, and prompts to draw from."""

    base_url: str
    endpoint: EndpointConfig
    model: str
    transport: Transport
    dataset: Dataset
    label: str = ""
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    _next_row: int = 0
    _serial: int = 0

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
        from auditkit.preflight import discover_model

        transport = Transport.from_config(endpoint, base_url, api_key)
        model = discover_model(endpoint, base_url, dict(transport.headers))
        return cls(base_url, endpoint, model, transport, dataset, label or base_url)

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


@dataclass
class ProbeResult:
    """What a probe measured: per-query records, a per-group table and a finding."""

    name: str
    title: str
    records: pd.DataFrame
    table: pd.DataFrame
    finding: str
    signals: dict[str, Any] = field(default_factory=dict)
    done: bool = True


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
        return self._flag.is_set()

    def _watch(self, event: asyncio.Event) -> None:
        with self._lock:
            self._events.append(event)
            if self._flag.is_set():
                aio.call_soon(event.set)


def to_probe_records(records: pd.DataFrame, group: str) -> pd.DataFrame:
    """Load-generator records → probe rows in ms. Query 0 is the connection warm-up and is
    dropped; step = 1-based position of the measured query in the group."""
    rec = records[records["query_id"] > 0].sort_values("query_id")
    if len(rec) == 0:
        return pd.DataFrame(columns=list(PROBE_COLUMNS))
    lat = rec["latency_ns"].astype("float64") / 1e6
    ttft = rec["ttft_ns"].astype("float64") / 1e6
    return pd.DataFrame(
        {
            "group": group,
            "step": rec["query_id"].to_numpy(),
            "latency_ms": lat.to_numpy(),
            "ttft_ms": ttft.to_numpy(),
            "decode_ms": (lat - ttft).to_numpy(),
            "cached_tokens": rec["cached_tokens"].to_numpy(),
            "output_tokens": rec["output_tokens"].to_numpy(),
            "output_sha256": rec["output_sha256"].to_numpy(),
            "status": rec["status"].to_numpy(),
            "error": rec["error"].to_numpy(),
        }
    )


def _group_spec(name: str, n: int) -> RunSpec:
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
    transport: Transport,
    on_rows: Callable[[list[tuple[Any, ...]]], None],
    stop: StopFlag,
) -> pd.DataFrame:
    # loadgen's phase runner, watched row by row (on_rows fires on the loop thread, ~10/s)
    event = asyncio.Event()
    stop._watch(event)
    result = await loadgen.run_phase_async(
        spec, dataset, adapter, transport, stop=event, on_rows=on_rows
    )
    records = result.records.sort_values("sent_ns", kind="stable").reset_index(drop=True)
    on_rows(list(records.itertuples(index=False, name=None)))
    return records


class _Runner:
    """Runs a probe's groups in order and streams partial results to `on_update`."""

    def __init__(
        self,
        target: ProbeTarget,
        name: str,
        title: str,
        summarize: Callable[[pd.DataFrame], tuple[pd.DataFrame, str, dict[str, Any]]],
        on_update: UpdateCallback | None,
        stop: StopFlag | None,
    ) -> None:
        self.target = target
        self.name = name
        self.title = title
        self.summarize = summarize
        self.on_update = on_update
        self.stop = stop or StopFlag()
        self.done_groups: list[pd.DataFrame] = []

    def _emit(self, frame: pd.DataFrame, done: bool) -> ProbeResult:
        table, finding, signals = self.summarize(frame)
        result = ProbeResult(self.name, self.title, frame, table, finding, signals, done)
        if self.on_update is not None:
            self.on_update(result)
        return result

    def _partial(self, group: str, rows: list[tuple[Any, ...]]) -> None:
        live = to_probe_records(records_frame(rows), group)
        frame = pd.concat([*self.done_groups, live], ignore_index=True)
        self._emit(frame, done=False)

    def group(self, group: str, texts: list[str], temperature: float | None = None) -> None:
        """Send `texts` one at a time, in order, as group `group`.

        A throwaway query with its own fresh prompt goes first: it opens the connection, so
        the group's first measured query is cold for the *cache*, not for TCP/TLS setup (which
        would otherwise pass for a cache speed-up on every later query).
        """
        if self.stop.is_set():
            return
        sent = [*self.target.fresh_texts(1), *texts]
        dataset = Dataset("probe", tuple(Sample(i, t) for i, t in enumerate(sent)))
        records = aio.wait(
            aio.submit(
                _run_group_async(
                    _group_spec(group, len(sent)),
                    dataset,
                    self.target.adapter(temperature),
                    self.target.transport,
                    lambda rows: self._partial(group, rows),
                    self.stop,
                )
            )
        )
        self.done_groups.append(to_probe_records(records, group))

    def finish(self) -> ProbeResult:
        frames = [f for f in self.done_groups if len(f)]
        frame = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=list(PROBE_COLUMNS))
        )
        return self._emit(frame, done=True)


def _median(values: pd.Series) -> float | None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return float(np.median(v)) if len(v) else None


def group_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per group: queries, failures, median latency/TTFT/decode (ms), distinct outputs."""
    rows = []
    for group in dict.fromkeys(records["group"]):
        g = records[records["group"] == group]
        ok = g[g["status"] == "ok"]
        rows.append(
            {
                "group": group,
                "queries": len(g),
                "failed": int((g["status"] != "ok").sum()),
                "median latency (ms)": _median(ok["latency_ms"]),
                "median TTFT (ms)": _median(ok["ttft_ms"]),
                "median decode (ms)": _median(ok["decode_ms"]),
                "distinct outputs": int(ok["output_sha256"].nunique()),
            }
        )
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index("group").round(3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --- probe (a): one sample repeated k times vs k distinct samples -------------------------


def repeat_vs_distinct(
    target: ProbeTarget,
    k: int = 8,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """k distinct fresh prompts, then one fresh prompt k times: is repetition faster?"""

    def summarize(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, dict[str, Any]]:
        table = group_table(frame)
        if {"distinct", "repeated"} - set(table.index):
            return table, "running…", {}
        rep = frame[(frame["group"] == "repeated") & (frame["step"] > 1)]
        distinct = frame[frame["group"] == "distinct"]
        ratio = _ratio(_median(rep["latency_ms"]), _median(distinct["latency_ms"]))
        faster = ratio is not None and ratio < DROP_RATIO
        finding = (
            f"repeated prompt (after its first query) takes {ratio:.2f}× the latency of "
            f"distinct prompts: "
            + ("repetition is served faster — some cache is at work" if faster else "no speed-up")
            if ratio is not None
            else "not enough completed queries to compare"
        )
        return table, finding, {"repeat_ratio": ratio, "cache_suspected": faster}

    run = _Runner(
        target, "repeat_vs_distinct", "(a) repeated vs distinct", summarize, on_update, stop
    )
    run.group("distinct", target.fresh_texts(k, LONG_PROMPT_ROWS))
    run.group("repeated", target.fresh_texts(1, LONG_PROMPT_ROWS) * k)
    return run.finish()


# --- probe (b): latency of the 1st, 2nd, …, k-th repeat (cold vs warm) ---------------------


def cold_vs_warm(
    target: ProbeTarget,
    k: int = 8,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """One fresh prompt sent k times: compare the first (cold) query with the rest (warm),
    for total latency, TTFT and decode time separately."""

    def summarize(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, dict[str, Any]]:
        ok = frame[frame["status"] == "ok"]
        cold, warm = ok[ok["step"] == 1], ok[ok["step"] > 1]
        rows = {}
        for label, part in (("cold (1st query)", cold), ("warm (2nd…kth)", warm)):
            rows[label] = {
                "queries": len(part),
                "median latency (ms)": _median(part["latency_ms"]),
                "median TTFT (ms)": _median(part["ttft_ms"]),
                "median decode (ms)": _median(part["decode_ms"]),
                "distinct outputs": int(part["output_sha256"].nunique()),
            }
        table = pd.DataFrame.from_dict(rows, orient="index").round(3)
        if cold.empty or warm.empty:
            return table, "running…", {}
        signals: dict[str, Any] = {
            "latency_ratio": _ratio(_median(warm["latency_ms"]), _median(cold["latency_ms"])),
            "ttft_ratio": _ratio(_median(warm["ttft_ms"]), _median(cold["ttft_ms"])),
            "decode_ratio": _ratio(_median(warm["decode_ms"]), _median(cold["decode_ms"])),
        }
        signals["kind"] = classify_warm(signals)
        return table, _warm_finding(signals), signals

    run = _Runner(target, "cold_vs_warm", "(b) cold vs warm repeats", summarize, on_update, stop)
    run.group("repeats of one prompt", target.fresh_texts(1, LONG_PROMPT_ROWS) * k)
    return run.finish()


def classify_warm(signals: dict[str, Any]) -> str:
    """'output' (everything collapses), 'prefix' (TTFT drops, decode does not), 'none', or
    'unknown' (e.g. not streamed, so TTFT and decode cannot be split)."""
    lat, ttft, dec = (
        signals.get("latency_ratio"),
        signals.get("ttft_ratio"),
        signals.get("decode_ratio"),
    )
    if ttft is not None and dec is not None:
        if dec < DROP_RATIO and ttft < DROP_RATIO:
            return "output"
        if ttft < DROP_RATIO:
            return "prefix"
        return "output" if lat is not None and lat < DROP_RATIO else "none"
    if lat is None:
        return "unknown"
    return "unknown" if lat < DROP_RATIO else "none"


def _warm_finding(s: dict[str, Any]) -> str:
    def f(x: Any) -> str:
        return "n/a" if x is None else f"{x:.2f}×"

    head = (
        f"warm/cold: latency {f(s['latency_ratio'])}, TTFT {f(s['ttft_ratio'])}, "
        f"decode {f(s['decode_ratio'])} — "
    )
    kind = s["kind"]
    if kind == "output":
        return head + "the whole response is served faster: response (output) cache signature"
    if kind == "prefix":
        return head + "prefill is skipped, decoding is not: prefix/KV cache signature"
    if kind == "none":
        return head + "repeats are not faster: no cache signature"
    return head + "repeats are faster; stream the responses to tell prefix from output caching"


# --- probe (c): shared prefix, different suffixes -------------------------------------------


def shared_prefix(
    target: ProbeTarget,
    k: int = 8,
    *,
    prefix_rows: int = 3,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """k prompts with unique long prefixes vs k prompts sharing one long prefix (different
    short suffixes). Partial-prefix KV reuse lowers TTFT of the shared group only."""

    def prompts(shared: bool) -> list[str]:
        suffixes = [t.split("] ", 1)[-1] for t in target.fresh_texts(k)]
        heads = target.fresh_texts(prefix_rows if shared else prefix_rows * k)
        if shared:
            prefix = "\n\n".join(heads)
            return [f"{prefix}\n\nTask: {s}" for s in suffixes]
        chunks = [heads[i * prefix_rows : (i + 1) * prefix_rows] for i in range(k)]
        return ["\n\n".join(c) + f"\n\nTask: {s}" for c, s in zip(chunks, suffixes, strict=True)]

    def summarize(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, dict[str, Any]]:
        table = group_table(frame)
        if {"unique prefixes", "shared prefix"} - set(table.index):
            return table, "running…", {}
        shared = frame[(frame["group"] == "shared prefix") & (frame["step"] > 1)]
        metric = "ttft_ms" if shared["ttft_ms"].notna().any() else "latency_ms"
        uniq = frame[frame["group"] == "unique prefixes"]
        ratio = _ratio(_median(shared[metric]), _median(uniq[metric]))
        what = "TTFT" if metric == "ttft_ms" else "latency"
        reused = ratio is not None and ratio < DROP_RATIO
        finding = (
            f"shared-prefix {what} is {ratio:.2f}× that of unique prefixes: "
            + (
                "the shared prefix is reused (prefix/KV cache across prompts)"
                if reused
                else "no partial-prefix reuse seen (an exact-prompt cache would not show here)"
            )
            if ratio is not None
            else "not enough completed queries to compare"
        )
        return table, finding, {"prefix_ratio": ratio, "prefix_reused": reused}

    run = _Runner(target, "shared_prefix", "(c) shared prefix", summarize, on_update, stop)
    run.group("unique prefixes", prompts(shared=False))
    run.group("shared prefix", prompts(shared=True))
    return run.finish()


# --- probe (d): identical outputs at temperature > 0 ----------------------------------------


def output_identity(
    target: ProbeTarget,
    k: int = 8,
    *,
    temperature: float = 0.8,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """One fresh prompt sent k times at temperature > 0: sampling should vary the output;
    byte-identical answers mean a stored response is replayed (or sampling is ignored)."""

    def summarize(frame: pd.DataFrame) -> tuple[pd.DataFrame, str, dict[str, Any]]:
        table = group_table(frame)
        ok = frame[frame["status"] == "ok"]
        if len(ok) < 2:
            return table, "running…", {}
        distinct = int(ok["output_sha256"].nunique())
        identical = distinct == 1
        finding = (
            f"{distinct} distinct output(s) in {len(ok)} answers at temperature {temperature:g}: "
            + (
                "identical outputs — a response cache replays them (or the endpoint ignores "
                "temperature)"
                if identical
                else "outputs vary as sampling should: no response replay"
            )
        )
        return table, finding, {"distinct_outputs": distinct, "identical": identical}

    run = _Runner(
        target, "output_identity", "(d) identical outputs at T>0", summarize, on_update, stop
    )
    run.group(f"same prompt, T={temperature:g}", target.fresh_texts(1) * k, temperature)
    return run.finish()


PROBES: dict[str, Callable[..., ProbeResult]] = {
    "repeat_vs_distinct": repeat_vs_distinct,
    "cold_vs_warm": cold_vs_warm,
    "shared_prefix": shared_prefix,
    "output_identity": output_identity,
}


def diagnose(results: dict[str, ProbeResult]) -> str:
    """Combine the probes run so far into one reading of what kind of caching is present."""
    warm = results.get("cold_vs_warm")
    ident = results.get("output_identity")
    kind = warm.signals.get("kind") if warm else None
    identical = ident.signals.get("identical") if ident else None
    if kind == "output" or (identical and kind != "none"):
        return "response (output) cache: repeated prompts replay a stored answer"
    if kind == "prefix":
        return "prefix/KV cache: prefill is reused, answers are still generated"
    if kind == "none" and not identical:
        return "no caching detected"
    return "run (b) cold vs warm with streaming and (d) identical outputs for a diagnosis"


__all__ = [
    "PROBES",
    "ProbeResult",
    "ProbeTarget",
    "StopFlag",
    "classify_warm",
    "cold_vs_warm",
    "diagnose",
    "output_identity",
    "repeat_vs_distinct",
    "shared_prefix",
]
