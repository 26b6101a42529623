"""What streaming costs the load generator: the client guard's ceiling (an offline phase against
the in-process null endpoint, 32 in flight) with non-streamed answers and with event streams of
`--tokens` chunks, for each HTTP client, in alternating rounds.

    python benchmarks/stream_ceiling.py --rounds 3 --tokens 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from auditkit import calibration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32, help="chunks per streamed answer")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rates: dict[tuple[str, bool], list[float]] = {}
    for r in range(args.rounds):
        for client in ("h1", "aiohttp"):
            for stream in (False, True):
                calibration._cache.clear()  # measure again, not the process's cached value
                rate = calibration.client_ceiling(
                    args.concurrency, 0.0, client, stream, args.tokens
                )
                rates.setdefault((client, stream), []).append(rate)
                print(
                    f"round {r + 1} {client:7s} {'streamed' if stream else 'whole':8s} "
                    f"{rate:7.0f} req/s  (load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    for client in ("h1", "aiohttp"):
        whole = statistics.median(rates[(client, False)])
        streamed = statistics.median(rates[(client, True)])
        print(
            f"{client}: median {whole:.0f} req/s whole, {streamed:.0f} streamed "
            f"({args.tokens} chunks): {streamed / whole:.2f}×, "
            f"{1e6 / streamed - 1e6 / whole:.0f} µs more per query"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
