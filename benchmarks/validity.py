"""How often is auditkit's default verdict right? Default TEST04 audits against the mock taught
each behaviour of real servers, each audit against a freshly started mock.

    python benchmarks/validity.py                 # real HTTP, the mock in its own process
    python benchmarks/validity.py --simulated     # the same mock on a virtual clock (fast)
    python benchmarks/validity.py --runs 30 --scenario single-stream --only partial-cache
    python benchmarks/validity.py --simulated --scenario offline --only "heavy tail" --samples 2048
    python benchmarks/validity.py --simulated --only "heavy tail" --runs 500 --first-seed 1000

Correct means: no cache of the measured prompts → PASS; any cache of them → FAIL. Prints one
markdown row per behaviour × scenario (docs/validity.md holds a run's table) and, last, the
share of correct verdicts over all rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkit.audits import build_config
from auditkit.mock import MockProcess
from auditkit.resources import default_dataset
from auditkit.runner import run_audit

#: rows of the shipped dataset
DATASET_ROWS = 1024
#: single-stream rows use a short request so 30 runs fit in minutes (the ratio is what counts)
SINGLE_STREAM_MOCK = {"decode_us_per_token": 60.0, "base_latency_ms": 0.3}


@dataclass(frozen=True)
class Row:
    """One behaviour: mock settings, audit settings, and the verdict a correct audit gives."""

    name: str
    expected: str
    mock: dict[str, Any] = field(default_factory=dict)
    test04: dict[str, Any] = field(default_factory=dict)
    #: run the audit twice against one mock and score the second run
    second_run: bool = False
    #: scenarios where the behaviour cannot act (e.g. coalescing with one query in flight)
    expected_by_scenario: dict[str, str] = field(default_factory=dict)


ROWS = (
    Row("no cache", "PASS"),
    Row("cold start (first 20 requests +20 ms)", "PASS",
        {"behaviour": {"cold_start_requests": 20, "cold_start_ms": 20.0}}),
    Row("drift (15% faster per 1000 requests)", "PASS", {"behaviour": {"drift_per_1000": 0.15}}),
    Row("heavy tail (2% of requests 10× slower)", "PASS",
        {"behaviour": {"tail_rate": 0.02, "tail_multiplier": 10.0}}),
    Row("needs warm connections (+50 ms first request)", "PASS",
        {"behaviour": {"connection_setup_ms": 50.0}}),
    Row("output cache", "FAIL", {"cache": "output"}),
    Row("output cache, second audit", "FAIL", {"cache": "output"}, second_run=True),
    Row("admission cache (stores at the 2nd request)", "FAIL",
        {"cache": "output", "behaviour": {"cache_admit_after": 2}}),
    Row("TTL cache (1 s)", "FAIL", {"cache": "output", "behaviour": {"cache_ttl_s": 1.0}}),
    Row("key-normalising cache", "FAIL",
        {"cache": "output", "behaviour": {"cache_normalize": True}}),
    Row("partial cache (every 4th repeat recomputed)", "FAIL",
        {"cache": "output", "behaviour": {"cache_miss_every": 4}}),
    Row("partial cache (every 2nd repeat recomputed)", "FAIL",
        {"cache": "output", "behaviour": {"cache_miss_every": 2}}),
    # hits only back to back (the audit blocks), never in the control phase
    Row("cache of the previous prompt only (prefill ~40%)", "FAIL",
        {"cache": "last-prompt", "prefill_us_per_token": 50.0}),
    Row("request coalescing", "FAIL", {"behaviour": {"coalesce": True}},
        expected_by_scenario={"single-stream": "PASS"}),
    Row("prefix cache (prefill ~40% of a request)", "FAIL",
        {"cache": "prefix", "prefill_us_per_token": 50.0}),
    Row("pre-populated cache, --no-salt", "FAIL",
        {"behaviour": {"prepopulate": "DATASET"}}, {"salt": False}),
    Row("mock's work burns the client's CPU", "PASS", {"behaviour": {"burn_cpu": True}}),
    # caches that know how auditkit works (docs/validity.md, "Dodges")
    Row("pre-filled cache keyed without the [...] tag", "FAIL",
        {"behaviour": {"prepopulate": "DATASET", "cache_key": "strip_tag"}}),
    Row("pre-filled semantic cache (the prompt's words)", "FAIL",
        {"behaviour": {"prepopulate": "DATASET", "cache_key": "words"}}),
    Row("pre-filled + run-time cache keyed without the tag", "FAIL",
        {"cache": "output", "behaviour": {"prepopulate": "DATASET", "cache_key": "strip_tag"}}),
    Row("run-time semantic cache (the prompt's words)", "FAIL",
        {"cache": "output", "behaviour": {"cache_key": "words"}}),
)  # fmt: skip


def _mock_settings(row: Row, scenario: str, seed: int) -> dict[str, Any]:
    mock = {**(SINGLE_STREAM_MOCK if scenario == "single-stream" else {}), **row.mock}
    behaviour = dict(mock.get("behaviour", {}))
    if behaviour.get("prepopulate") == "DATASET":
        behaviour["prepopulate"] = str(default_dataset())
    if behaviour:
        mock["behaviour"] = behaviour
    return {**mock, "seed": seed}


def larger_dataset(rows: int, folder: str) -> str:
    """The shipped prompts repeated with a distinct prefix per copy until there are `rows`
    (a JSONL file in `folder`): the same workload, more distinct samples."""
    shipped = [json.loads(line) for line in default_dataset().read_text().splitlines() if line]
    path = Path(folder) / f"prompts_{rows}.jsonl"
    with path.open("w") as f:
        for i in range(rows):
            copy, row = divmod(i, len(shipped))
            prompt = f"(copy {copy}) {shipped[row]['prompt']}" if copy else shipped[row]["prompt"]
            f.write(json.dumps({"prompt": prompt}) + "\n")
    return str(path)


def one_audit(
    row: Row,
    scenario: str,
    seed: int,
    simulated: bool,
    test04: dict[str, Any] | None = None,
    dataset: str | None = None,
) -> tuple[str, float, str | None]:
    """One default audit (with `test04` settings over the row's, on `dataset` when given);
    returns (verdict, seconds, the fingerprint's cache kind)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        mock = {**_mock_settings(row, scenario, seed), "simulated": simulated}
        data: dict[str, Any] = {
            "output_dir": out,
            # a second-audit row runs twice into one folder on purpose: the second replaces it
            "overwrite": True,
            "load": {"scenario": scenario},
            "test04": {**row.test04, **(test04 or {})},
            "mock": mock,
        }
        if dataset:
            data["dataset"] = {"path": dataset}
        if row.second_run and not simulated:
            # one mock for both audits: the first run's traffic is in its cache
            with MockProcess(build_config({"mock": mock}).mock) as server:
                data["endpoint"] = {"url": server.url}
                run_audit(build_config(data))
                result = run_audit(build_config(data)).result
        elif row.second_run:
            from auditkit.config import MockConfig
            from auditkit.loadgen.fake import FakeTransport, SimulatedSUT

            transport = FakeTransport(SimulatedSUT(MockConfig.model_validate(mock)))
            run_audit(build_config(data), transport=transport)
            result = run_audit(build_config(data), transport=transport).result
        else:
            result = run_audit(build_config(data)).result
    evidence = getattr(result, "evidence", None)
    fingerprint = getattr(evidence, "fingerprint", None)
    kind = getattr(fingerprint, "kind", None)
    return result.verdict, time.perf_counter() - started, kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="audits per row (default 30)")
    parser.add_argument("--scenario", action="append", choices=["offline", "single-stream"])
    parser.add_argument("--only", action="append", help="rows whose name contains this")
    parser.add_argument("--simulated", action="store_true", help="the mock on a virtual clock")
    parser.add_argument(
        "--samples", type=int, help="test04.samples (a larger dataset is made when needed)"
    )
    parser.add_argument("--max-queries", type=int, help="test04.max_queries")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the first mock seed (to split a long count)"
    )
    args = parser.parse_args()
    test04: dict[str, Any] = {}
    if args.samples:
        test04["samples"] = args.samples
    if args.max_queries:
        test04["max_queries"] = args.max_queries
    workdir = tempfile.TemporaryDirectory()
    dataset = None
    if args.samples and args.samples >= DATASET_ROWS:
        # the alternating reference never issues the audit row, and extra rounds need rows too
        dataset = larger_dataset(4 * args.samples, workdir.name)
    scenarios = args.scenario or ["offline", "single-stream"]
    rows = [r for r in ROWS if not args.only or any(o in r.name for o in args.only)]
    print(
        "| behaviour | scenario | expected | correct | INCONCLUSIVE | INVALID | wrong | s/audit "
        "| FAIL beside kind none | kinds named on FAIL |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    correct_total = audits_total = contradictions = 0
    for row in rows:
        for scenario in scenarios:
            expected = row.expected_by_scenario.get(scenario, row.expected)
            counts: Counter[str] = Counter()
            seconds: list[float] = []
            none_beside_fail = 0
            kinds: Counter[str] = Counter()
            for seed in range(args.first_seed, args.first_seed + args.runs):
                verdict, took, kind = one_audit(
                    row, scenario, seed, args.simulated, test04, dataset
                )
                counts[verdict] += 1
                seconds.append(took)
                none_beside_fail += verdict == "FAIL" and kind == "none"
                if verdict == "FAIL":
                    kinds[str(kind)] += 1
            contradictions += none_beside_fail
            right = counts[expected]
            wrong = args.runs - right - counts["INCONCLUSIVE"] - counts["INVALID"]
            correct_total += right
            audits_total += args.runs
            print(
                f"| {row.name} | {scenario} | {expected} | {right / args.runs:.0%} | "
                f"{counts['INCONCLUSIVE'] / args.runs:.0%} | {counts['INVALID'] / args.runs:.0%} "
                f"| {wrong / args.runs:.0%} | {statistics.median(seconds):.1f} "
                f"| {none_beside_fail} | {', '.join(f'{k} {n}' for k, n in kinds.most_common())} |",
                flush=True,
            )
    print(f"correct verdicts: {correct_total}/{audits_total} = {correct_total / audits_total:.1%}")
    print(f"FAIL beside 'cache kind seen: none': {contradictions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
