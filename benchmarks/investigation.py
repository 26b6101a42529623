"""Does the caching investigation name each server behaviour correctly? The confusion table of
docs/investigation.md.

For each mock behaviour (auditkit.mock.presets: no cache, response cache, prefix cache,
coalescing, partial cache, last-prompt-only cache, same text at T>0), `--runs` times:

- the probes: a fresh probe session (new prompts) runs (a) back-to-back, (b) interleaved,
  (d) identical outputs at T>0 and (e) bursts with k rounds each (a probe that asks for more
  rounds gets them once, as a user would), and `diagnose_kind` combines them;
- the fingerprint: a TEST04 audit (offline, streamed, 128 samples) and the fingerprint of its
  reference and audit phases.

Correct means the kind the preset names (PRESETS). Real HTTP, the mock in its own process (one
per behaviour; every run uses fresh prompts, and every audit a fresh salt). Prints a markdown
table: per behaviour, the share of correct probe diagnoses and fingerprints, and what the wrong
ones said; last, the overall shares and how often "no cache" was called a cache.

    python benchmarks/investigation.py                  # 30 runs per behaviour
    python benchmarks/investigation.py --runs 3 --simulated   # the mock on a virtual clock
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from auditkit import probes
from auditkit.audits import build_config
from auditkit.audits.kit.designs import pool
from auditkit.audits.test04.fingerprint import fingerprint
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig
from auditkit.data import Dataset, load_dataset
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mock import MockProcess
from auditkit.mock.presets import INVESTIGATION_LATENCY, PRESETS
from auditkit.runner import run_audit

PROBES = ("back_to_back", "interleaved", "output_identity", "burst")
#: TEST04 for the fingerprint: offline (4 in flight on the mock's 2 slots: queueing is in the
#: first-token time), streamed
AUDIT: dict[str, Any] = {
    "endpoint": {"stream": True},
    "load": {"scenario": "offline", "max_concurrency": 4},
    "test04": {"samples": 128},
}


def probe_run(target: probes.ProbeTarget, k: int) -> str:
    """One probe session's diagnosis. A probe that says "not enough evidence: run k more" is
    run once more with that many rounds more (fresh prompts), as its finding asks a user to."""
    results = {}
    for name in PROBES:
        result = probes.run_probe(name, target, k)
        more = result.signals.get("more") or max(
            (e.more or 0 for e in result.signals.get("effects", {}).values()), default=0
        )
        if result.kind == "not enough evidence" and more:
            result = probes.run_probe(name, target, k + min(int(more), 3 * k))
        results[name] = result
    return probes.diagnose_kind(results).kind


def fingerprint_run(url: str | None, mock: dict[str, Any], simulated: bool) -> str:
    """One TEST04 audit's fingerprint kind."""
    with tempfile.TemporaryDirectory() as out:
        data: dict[str, Any] = {**AUDIT, "output_dir": out, "overwrite": True}
        transport = None
        if simulated:
            transport = FakeTransport(SimulatedSUT(MockConfig.model_validate(mock)))
        else:
            data["endpoint"] = {**data["endpoint"], "url": url}
        run = run_audit(build_config(data), transport=transport)
        ref, aud = (pool(role, run.phases).records for role in ("reference", "audit"))
        return fingerprint(ref, aud).kind


def row(
    name: str, runs: int, k: int, dataset: Dataset, simulated: bool, fingerprints: bool
) -> dict[str, Any]:
    """Runs of one behaviour: counts of what the probes and the fingerprint said."""
    settings, expected = PRESETS[name]
    mock = {**INVESTIGATION_LATENCY, **settings}
    endpoint = EndpointConfig(stream=True)
    said: Counter[str] = Counter()
    printed: Counter[str] = Counter()
    started = time.monotonic()

    def each(make_target: Callable[[], probes.ProbeTarget], url: str | None) -> None:
        for _ in range(runs):
            said[probe_run(make_target(), k)] += 1
            if fingerprints:
                printed[fingerprint_run(url, mock, simulated)] += 1

    if simulated:
        sut = SimulatedSUT(MockConfig.model_validate(mock))
        each(lambda: probes.ProbeTarget.simulated(endpoint, FakeTransport(sut), dataset), None)
    else:
        with MockProcess(MockConfig.model_validate(mock)) as server:
            each(lambda: probes.ProbeTarget.connect(endpoint, server.url, dataset), server.url)
    return {
        "name": name,
        "expected": expected,
        "probes": said,
        "fingerprint": printed,
        "seconds": time.monotonic() - started,
    }


def _share(counts: Counter[str], expected: str) -> str:
    total = sum(counts.values())
    return f"{counts[expected]}/{total} ({counts[expected] / total:.0%})" if total else "—"


def _wrong(counts: Counter[str], expected: str) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.most_common() if k != expected) or "—"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table."""
    lines = [
        "| behaviour | correct kind | probes correct | probes said otherwise | "
        "fingerprint correct | fingerprint said otherwise | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['expected']} | {_share(r['probes'], r['expected'])} | "
            f"{_wrong(r['probes'], r['expected'])} | {_share(r['fingerprint'], r['expected'])} | "
            f"{_wrong(r['fingerprint'], r['expected'])} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """Overall shares, and how often no cache was called a cache."""
    out = []
    for what in ("probes", "fingerprint"):
        total = sum(sum(r[what].values()) for r in rows)
        right = sum(r[what][r["expected"]] for r in rows)
        if total:
            out.append(f"{what}: {right}/{total} correct ({right / total:.1%})")
    for r in rows:
        if r["expected"] == "none" and r["name"] == "no cache":
            for what in ("probes", "fingerprint"):
                total = sum(r[what].values())
                quiet = ("none", "not enough evidence")
                cache = sum(v for k, v in r[what].items() if k not in quiet)
                if total:
                    out.append(f'"no cache" called a cache by the {what}: {cache}/{total}')
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per behaviour")
    parser.add_argument("--k", type=int, default=8, help="rounds per probe")
    parser.add_argument("--only", action="append", choices=list(PRESETS), help="behaviours")
    parser.add_argument("--simulated", action="store_true", help="virtual clock, no HTTP")
    parser.add_argument("--no-fingerprint", action="store_true", help="probes only")
    args = parser.parse_args(argv)
    dataset = load_dataset(DatasetConfig())
    rows = []
    for name in args.only or list(PRESETS):
        rows.append(row(name, args.runs, args.k, dataset, args.simulated, not args.no_fingerprint))
        said = f"probes {dict(rows[-1]['probes'])} fingerprint {dict(rows[-1]['fingerprint'])}"
        print(f"{name}: {said}", file=sys.stderr, flush=True)
    print(table(rows))
    print()
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
