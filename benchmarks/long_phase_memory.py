"""Long phase memory: one long offline phase against the mock, RSS sampled as it runs.

A submission-grade offline phase (`--mlperf-run-rules`) runs 600 s and is sized at
1.1 × 600 s × the target rate. This runs one offline phase of `--duration` seconds (scaled
down to what fits a shared machine) sized the same way from a short pilot's rate, through the
runner's path (records streamed to part files of a phase folder, then records.parquet), with
the mock in its own process. The load generator's RSS is sampled every second. Printed: the
samples every `--every` seconds, the records, and the RSS growth from 10 % of the phase to its
end (flat means the record path holds no per-query memory), beside what the old tuple list
would have grown (~510 bytes a record). The phase's end is reported apart (since issue 24 a
phase this large is summarised from its files; benchmarks/phase_memory.py measures it).
Last line: the in-phase growth as `<number> MB`.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from auditkit import artifacts
from auditkit.config import MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.openai import CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.mock import MockProcess
from auditkit.plan import LoadPattern, RunSpec

TUPLE_ROW_BYTES = 510  # one record as a Python tuple (issue 13's measurement)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=150.0, help="phase length (s)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--every", type=float, default=15.0, help="print a sample this often")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    dataset = Dataset(
        "bench", tuple(Sample(i, f"prompt number {i} of the set") for i in range(512))
    )
    adapter = CompletionsAdapter("mock-llm", 4, 0.0, False)
    mock_cfg = MockConfig(slots=64, decode_us_per_token=10.0, base_latency_ms=0.2, jitter_cv=0.0)
    load = LoadPattern("offline", max_concurrency=args.concurrency)
    with MockProcess(mock_cfg) as mock, tempfile.TemporaryDirectory() as tmp:
        target = HttpTarget(mock.url)
        pilot = RunSpec("pilot", SampleOrder.with_replacement(1), 3000, load)
        rate = run_phase(pilot, dataset, adapter, target).summary.samples_per_second
        n = int(1.1 * args.duration * rate)  # the run rules' offline sizing, scaled down
        print(f"pilot rate {rate:.0f}/s: {n:,} queries for ~{args.duration:.0f} s", flush=True)
        spec = RunSpec("audit", SampleOrder.with_replacement(0), n, load)
        samples: list[tuple[float, float, int]] = []  # (s since start, RSS MB, completed)
        running = threading.Event()
        running.set()
        done: list[int] = [0]

        def sample() -> None:
            start = time.monotonic()
            while running.is_set():
                samples.append((time.monotonic() - start, rss_mb(), done[0]))
                time.sleep(1.0)

        def progress(completed: int, _total: int) -> None:
            done[0] = completed

        sampler = threading.Thread(target=sample, daemon=True)
        before = rss_mb()
        sampler.start()
        phase_dir = Path(tmp) / "audit"
        t0 = time.monotonic()
        result = run_phase(
            spec, dataset, adapter, target, progress=progress, records_dir=phase_dir,
            workers=args.workers,
        )  # fmt: skip
        ran = time.monotonic() - t0
        running.clear()
        sampler.join()
        after_frame = rss_mb()
        artifacts.write_phase(Path(tmp), result)
        size = (phase_dir / "records.parquet").stat().st_size / 1e6
    records = result.summary.completed
    # the phase proper: from 10 % in to the last sample before every query had completed
    # (after that the phase's end: summary, records.parquet; reported apart)
    in_phase = [(t, m) for t, m, completed in samples if completed < n]
    start_t = 0.1 * in_phase[-1][0]
    steady = [(t, m) for t, m in in_phase if t >= start_t]
    next_print = 0.0
    for t, m in in_phase:
        if t >= next_print:
            print(f"t = {t:5.0f} s  RSS {m:7.1f} MB (+{m - before:.1f})")
            next_print += args.every
    growth = steady[-1][1] - steady[0][1]
    share = records * (steady[-1][0] - steady[0][0]) / max(ran, 1e-9)
    print(
        f"phase: {records:,} records in {ran:.0f} s ({records / ran:.0f}/s), "
        f"{args.workers} process(es); records.parquet {size:.1f} MB"
    )
    print(
        f"RSS growth from 10 % of the phase to its end: {growth:+.1f} MB over ~{share:,.0f} "
        f"records (the old tuple list: +{share * TUPLE_ROW_BYTES / 1e6:.0f} MB); peak in phase "
        f"{max(m for _, m in in_phase) - before:+.1f} MB over the start"
    )
    # since issue 24 a phase this large leaves its records in its files (read by column):
    # benchmarks/phase_memory.py measures the whole end of the phase
    print(
        f"after the phase (summarised from its files): {after_frame - before:+.1f} MB "
        "over the start"
    )
    print(f"{growth:.1f} MB")


if __name__ == "__main__":
    main()
