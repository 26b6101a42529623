"""Detection power: how often each verdict view calls a cache, by true cache speed-up.

Runs many short TEST04 audits (offline, N = 64 + 64 queries, threshold 0.10) against the
embedded mock with lognormal per-query latency noise (CV 10 %) and an output cache whose hits are
1.0×, 1.1×, 1.2×, 1.5× and 2× faster than a miss (`mock.cache_speedup`). A fresh mock per trial,
so no trial warms the next. For the upstream rule (point scores) and the statistical view
(block-bootstrap interval; INCONCLUSIVE counts as "not FAIL"), prints the FAIL rate per speed-up:
at 1.0× that is the false-FAIL rate, above it the detection rate.

    python benchmarks/detection_power.py --trials 100 > docs/detection_power.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from auditkit.audits import build_config
from auditkit.audits.kit.ratio import statistical_view
from auditkit.audits.test04 import Test04
from auditkit.data import load_dataset
from auditkit.endpoints import make_adapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.mock import MockServer

SPEEDUPS = (1.0, 1.1, 1.2, 1.5, 2.0)


def trial(speedup: float, seed: int, samples: int) -> tuple[str, str]:
    """One audit; returns (upstream verdict, statistical verdict)."""
    cfg = build_config(
        {
            "load": {"scenario": "offline", "max_concurrency": 4},
            "test04": {"samples": samples, "seed": seed},
            "mock": {
                "cache": "output",
                "cache_speedup": speedup,
                "jitter_cv": 0.10,
                "slots": 2,
                "base_latency_ms": 0.5,
                "prefill_us_per_token": 10.0,
                "decode_us_per_token": 150.0,
                "seed": seed,
            },
        }
    )
    test = Test04()
    dataset = load_dataset(cfg.dataset)
    specs = test.plan(cfg, dataset)
    with MockServer(cfg.mock) as mock:
        adapter = make_adapter(cfg.endpoint, cfg.mock.model)
        phases = [run_phase(s, dataset, adapter, HttpTarget(mock.url)) for s in specs]
    result = test.verify(phases, cfg)
    view = statistical_view(
        phases[0].records, phases[1].records, "offline", result.threshold, seed=seed
    )
    return result.verdict, view.verdict if view else "INCONCLUSIVE"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="audits per speed-up")
    parser.add_argument("--samples", type=int, default=64, help="queries per phase")
    parser.add_argument(
        "--speedups", type=float, nargs="+", default=list(SPEEDUPS), help="cache speed-ups"
    )
    args = parser.parse_args()
    started = time.time()
    rows = []
    for speedup in args.speedups:
        upstream: Counter[str] = Counter()
        stat: Counter[str] = Counter()
        for seed in range(args.trials):
            u, s = trial(speedup, seed, args.samples)
            upstream[u] += 1
            stat[s] += 1
        rows.append((speedup, upstream, stat))
        print(f"# done {speedup}× after {time.time() - started:.0f} s", file=sys.stderr)
    n = args.trials
    print(
        f"Offline, N = {args.samples} + {args.samples} queries, threshold 0.10, "
        f"lognormal noise CV 10 %, {n} audits per row, fresh mock per audit.\n"
    )
    print(
        "| cache speed-up | upstream rule: FAIL | statistical: FAIL | statistical: "
        "INCONCLUSIVE | statistical: PASS |"
    )
    print("|---|---|---|---|---|")
    for speedup, upstream, stat in rows:
        print(
            f"| {speedup:.1f}× | {upstream['FAIL'] / n:.1%} | {stat['FAIL'] / n:.1%} | "
            f"{stat['INCONCLUSIVE'] / n:.1%} | {stat['PASS'] / n:.1%} |"
        )
    print(f"\n({time.time() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
