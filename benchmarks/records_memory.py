"""Records memory: peak memory a phase's record path adds per 1,000,000 records.

Feeds `--records` synthetic requests through the real `Recorder` (one `Attempt` and one parsed
response each, as the driver records them; distinct output texts so the hash column does not
compress away) with a part-file sink in a temporary phase folder, then closes it. Reports:
  - the peak RSS the record path added (ru_maxrss after − RSS before), the figure the issue
    targets (<= 150 MB per 1M records; the old tuple list was ~510 MB before its DataFrame);
  - the time to record and write them (ns per record on the loop thread, and the whole write);
  - separately, the peak added by materialising the whole DataFrame afterwards (what
    `PhaseResult.records` costs; summaries read columns instead), and the file size.
Run it in a fresh process (ru_maxrss is the process's lifetime peak). Last line: `<number> MB`.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path

from auditkit import records_io
from auditkit.endpoints.base import ParsedResponse
from auditkit.loadgen.recorder import Attempt, Recorder


def rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def peak_mb() -> float:
    """The process's peak RSS so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def synthetic_cost(outputs: list[ParsedResponse], n: int) -> float:
    """ns per synthetic request without recording it (Attempt + the output hash)."""
    start = time.perf_counter()
    t = 0
    for i in range(n):
        t += 10_000
        attempt = Attempt(i, i % 5000, 0, t, "main", t + 100_000, t + 200_000)
        attempt.http_status = 200
        attempt.parsed = outputs[i % 1000]
        _ = attempt.parsed.sha256
    return (time.perf_counter() - start) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--frame", action="store_true", help="also build the whole DataFrame")
    parser.add_argument(
        "--old",
        action="store_true",
        help="the previous design for comparison: tuples kept until the phase ends, no sink",
    )
    args = parser.parse_args()
    n = args.records
    # 1000 distinct outputs, reused: the parsed objects are not what is measured
    outputs = [ParsedResponse(f"output text number {i} " * 8, 32, 64, 0) for i in range(1000)]
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        phase_dir = Path(tmp) / "audit"
        before = rss_mb()
        start = time.perf_counter()
        if args.old:  # never seals: exactly the tuple list of before
            recorder = Recorder("audit", [], chunk_rows=n + 1, flush_ns=2**62)
        else:
            recorder = Recorder("audit", [], sink=records_io.PartWriter(phase_dir))
        t = 0
        for i in range(n):
            t += 10_000
            attempt = Attempt(i, i % 5000, 0, t, "main", t + 100_000, t + 200_000)
            attempt.http_status = 200
            attempt.parsed = outputs[i % 1000]
            recorder.record(attempt, t + 5_000_000)
        recorded = time.perf_counter()
        if not args.old:  # the old design wrote nothing until the phase's frame
            recorder.close()
        closed = time.perf_counter()
        added = peak_mb() - before
        parts = sorted((phase_dir / records_io.PARTS).glob("*.parquet"))
        on_disk = sum(p.stat().st_size for p in parts) / 1e6
        how = "tuples kept in memory (old design)" if args.old else "a part-file sink"
        print(f"records: {n:,} through Recorder with {how} ({len(parts)} parts)")
        baseline = synthetic_cost(outputs, min(n, 200_000))
        cost = (recorded - start) / n * 1e9
        print(
            f"record path: {cost:.0f} ns/record on the caller's thread, of which "
            f"{cost - baseline:.0f} ns the recorder ({baseline:.0f} ns making the request)"
        )
        print(f"record + write: {closed - start:.2f} s in all ({on_disk:.1f} MB of parquet)")
        if args.frame:
            base = peak_mb()
            t0 = time.perf_counter()
            frame = recorder.frame()
            rows = len(frame)
            print(
                f"whole DataFrame ({rows:,} rows): +{max(0.0, peak_mb() - base):.0f} MB peak over "
                f"the record path's, built in {time.perf_counter() - t0:.2f} s; "
                f"{frame.memory_usage(deep=True).sum() / 1e6:.0f} MB deep"
            )
            del frame
        per_million = added * 1e6 / n
        print(f"peak memory added by the record path: {added:.0f} MB for {n:,} records")
        print(f"{per_million:.0f} MB")


if __name__ == "__main__":
    main()
