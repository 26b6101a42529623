"""Phase memory: the peak memory one offline phase of N queries adds, end to end.

One offline phase of `--queries` queries through the runner's path: records streamed to part
files of a phase folder; the summary (counts, percentiles, the early-stopping estimate) read
from them a chunk at a time; the client guard's check and TEST04's per-token evidence (the
per-phase verifier inputs; the two-phase ones, TEST01/05's bootstrap and TEST04's decision,
read a few whole columns of each phase and are not run here); records.parquet, phase.json and
the LoadGen logs written; the notebook's figures built and saved. `--simulated` runs it on
the virtual clock (the in-memory transport and simulated mock: no sockets, exact); without it
the mock runs in its own process and the phase goes over HTTP on 127.0.0.1 (only this process
is measured).

Printed: each step's time, then the peak RSS this process added over its RSS after setup
(imports, dataset, mock started), as the last line `<n> MB`. Run it in a fresh process
(ru_maxrss is the process's lifetime peak). Goal (issue 24): <= 150 MB at 3,000,000 queries
on the virtual clock, within 20 % of the 1,000,000 figure.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import resource
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from auditkit import artifacts, plots
from auditkit.audits.test04.evidence import per_token_scores
from auditkit.calibration import client_bound_reason
from auditkit.config import MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.loadgen.fake.sut import JSON_HEADERS
from auditkit.loadgen.fake.transport import FakeRequest, FakeResponse
from auditkit.plan import LoadPattern, RunSpec


def rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 1e6


def peak_mb() -> float:
    """The process's peak RSS so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class NullSUT:
    """An in-memory endpoint as cheap as can be: each completion a prebuilt answer (one of
    512, by prompt) after a fixed virtual service time; the simulated mock costs ~0.5 ms of
    CPU a query, which makes 3M queries a long wait on a shared machine."""

    def __init__(self, service_s: float = 0.0002) -> None:
        self.service_s = service_s
        self.answers = [
            FakeResponse(
                200, JSON_HEADERS, completion_body(f"answer number {i} " * 4), delay_s=service_s
            )
            for i in range(512)
        ]
        self.models = FakeResponse(200, JSON_HEADERS, b'{"object":"list","data":[]}')

    def __call__(self, request: FakeRequest) -> FakeResponse:
        if request.method == "GET":
            return self.models
        return self.answers[hash(request.body) % len(self.answers)]


def completion_body(text: str) -> bytes:
    """An OpenAI completions answer of `text` (4 tokens)."""
    return json.dumps(
        {
            "id": "cmpl-0", "object": "text_completion", "created": 0, "model": "mock-llm",
            "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12},
        }
    ).encode()  # fmt: skip


@contextlib.contextmanager
def endpoint(sut: str, mock: MockConfig) -> Iterator[tuple[str, FakeTransport | None]]:
    """(base URL, transport): an in-memory one (`null` or the simulated `mock`), or (`http`)
    the mock in its own process."""
    if sut != "http":
        handler = NullSUT() if sut == "null" else SimulatedSUT(mock)
        yield "http://in-memory.invalid", FakeTransport(handler, keep_requests=False)
        return
    from auditkit.mock import MockProcess

    with MockProcess(mock) as server:
        yield server.url, None


def report_progress(phase_dir: Path, stop: threading.Event, every_s: float = 60.0) -> None:
    """Every minute while the phase runs: the rows its part files hold so far."""
    started = time.perf_counter()
    while not stop.wait(every_s):
        rows = 0
        for part in (phase_dir / "records.parts").glob("part-*.parquet"):
            with contextlib.suppress(OSError, ValueError):  # a part renamed or removed meanwhile
                rows += pq.read_metadata(part).num_rows
        print(
            f"  [{time.strftime('%H:%M:%S')}] recording: {rows:,} rows in part files after "
            f"{time.perf_counter() - started:.0f} s, peak {peak_mb():.0f} MB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    parser.add_argument("--simulated", action="store_true", help="virtual clock, no HTTP")
    parser.add_argument(
        "--sut",
        choices=("null", "mock"),
        default="null",
        help="with --simulated: a prebuilt answer per prompt (null), or the simulated mock",
    )
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    dataset = Dataset(
        "bench", tuple(Sample(i, f"prompt number {i} of the set") for i in range(512))
    )
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    mock = MockConfig(slots=64, decode_us_per_token=10.0, base_latency_ms=0.2, jitter_cv=0.0)
    load = LoadPattern("offline", max_concurrency=args.concurrency)
    spec = RunSpec("audit", SampleOrder.with_replacement(0), args.queries, load)
    steps: list[tuple[str, float, float]] = []

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps.append((name, now - since, peak_mb()))
        # as it happens too: a long run that is stopped still says how far it got
        print(f"  [{time.strftime('%H:%M:%S')}] {name}: {now - since:.1f} s, peak so far "
              f"+{peak_mb() - before:.0f} MB", flush=True)  # fmt: skip
        return now

    sut = args.sut if args.simulated else "http"
    stop = threading.Event()
    before = 0.0
    with endpoint(sut, mock) as (url, transport), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gc.collect()
        before = rss_mb()
        t = time.perf_counter()
        watch = threading.Thread(
            target=report_progress, args=(folder / spec.name, stop), daemon=True
        )
        watch.start()
        phase = run_phase(
            spec, dataset, adapter, HttpTarget(url), transport=transport,
            records_dir=folder / spec.name,
        )  # fmt: skip
        stop.set()
        t = step(f"record + summarise {phase.summary.completed:,} queries", t)
        summary = phase.summary.model_copy(
            update={"client_bound": client_bound_reason(phase.summary, None, 0.8)}
        )
        per_token_scores(phase)
        t = step("verify (client guard, TEST04 per-token evidence)", t)
        artifacts.write_phase(folder, phase)
        size = (folder / spec.name / artifacts.RECORDS).stat().st_size / 1e6
        t = step(f"write records.parquet ({size:.0f} MB), phase.json, LoadGen logs", t)
        figures = plots.audit_figures([phase])
        plots.save_figures(figures, folder)
        step(f"plots ({len(figures)} figures, saved as PNG)", t)
        peak = peak_mb()
    s = summary
    print(
        f"{args.queries:,} queries, "
        f"{f'virtual clock ({sut} SUT)' if args.simulated else 'HTTP to the mock'}: "
        f"{s.completed:,} ok, {s.samples_per_second:,.0f} samples/s, p99 "
        f"{(s.latency.p99_ns or 0) / 1e6:.2f} ms"
    )
    for name, seconds, peak_then in steps:
        print(f"  {name}: {seconds:.1f} s, peak so far +{peak_then - before:.0f} MB")
    print(f"RSS after setup {before:.0f} MB, peak {peak:.0f} MB")
    print(f"{peak - before:.0f} MB")


if __name__ == "__main__":
    main()
