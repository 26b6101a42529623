"""How often the prefix-cache audit detects a prefix cache, against probes per arm, and how
often it FAILs an honest server (docs/prefix_cache.md's tables come from this script).

    .venv/bin/python benchmarks/prefix_power.py mock      # virtual clock: power and nulls
    .venv/bin/python benchmarks/prefix_power.py llama     # real llama.cpp (xllamacpp) over HTTP

`mock`: the simulated mock's block prefix cache (kv-prefix, metadata hidden so timing alone
must find it) at prefill shares of 5, 20 and 50 % of a max_tokens-1 request, fixed designs of
n probes per arm (one look at alpha 1e-8, as Gu et al. but smaller), and the default sequential
design; then `--nulls` audits of an honest mock at the defaults. The audit runs as
`auditkit run` runs it (plan, exchanges phases on the in-memory transport, verify, extend)
without writing its files. `llama`: 30 audits with the prompt cache on and 30 off at the
defaults, then timing alone (`timing_only`) at the defaults, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditkit.audits import get_test, load_config
from auditkit.data import load_dataset
from auditkit.endpoints import make_adapter
from auditkit.loadgen import HttpTarget
from auditkit.loadgen.exchanges import run_exchanges
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.results import AuditResult
from auditkit.runner import IN_MEMORY_URL, run_audit

#: the mock's fixed cost of a max_tokens-1 request (base 0.5 ms + one decoded token 150 µs)
OTHER_US = 650.0
PROMPT_TOKENS = 1024


def simulate(over: dict[str, Any]) -> AuditResult[Any]:
    """One audit on the simulated mock, as the runner runs it, without its files."""
    cfg = load_config(None, {**over, "mock": {**over.get("mock", {}), "simulated": True}})
    test = get_test("prefix_cache")
    dataset = load_dataset(cfg.dataset)
    cfg = test.resolve(cfg, dataset)
    test.validate(cfg, dataset)
    transport = FakeTransport(SimulatedSUT(cfg.mock))
    adapter = make_adapter(cfg.endpoint, cfg.mock.model)
    http = HttpTarget.from_config(cfg.endpoint, IN_MEMORY_URL, None)

    def run(specs: list[Any]) -> list[Any]:
        return [run_exchanges(s, adapter, http, transport=transport) for s in specs]

    phases = run(test.plan(cfg, dataset))
    result = test.verify(phases, cfg)
    while result.verdict == "INCONCLUSIVE" and (more := test.extend(cfg, dataset, phases)):
        phases += run(more)
        result = test.verify(phases, cfg)
    return result


def prefill_us(share: float) -> float:
    """Prefill µs per token that make prefill `share` of a max_tokens-1 request."""
    return share / (1 - share) * OTHER_US / PROMPT_TOKENS


def mock_power(reps: int, sizes: list[int]) -> None:
    print(f"## detection rate, simulated mock (kv-prefix, metadata hidden), {reps} audits each")
    print(
        "| prefill share | "
        + " | ".join(f"n={n}" for n in sizes)
        + " | default (≤25, looks of 5) |"
    )
    print("|---" * (len(sizes) + 2) + "|")
    for share in (0.05, 0.20, 0.50):
        row = []
        designs: list[dict[str, Any]] = [{"probes_per_arm": n, "look_every": n} for n in sizes]
        designs.append({})
        for design in designs:
            fails = 0
            used = []
            for r in range(reps):
                mock = {
                    "cache": "kv-prefix",
                    "prefill_us_per_token": prefill_us(share),
                    "seed": r,
                    "behaviour": {"kv_hide_cached": True},
                }
                res = simulate({"mock": mock, "prefix_cache": design})
                fails += res.verdict == "FAIL"
                assert res.evidence is not None
                used.append(res.evidence.same_client.per_arm)
            cell = f"{fails}/{reps}"
            if not design:
                cell += f" (median {statistics.median(used):g} per arm)"
            row.append(cell)
        print(f"| {share:.0%} | " + " | ".join(row) + " |")
        sys.stdout.flush()


def mock_nulls(n: int) -> None:
    verdicts: Counter[str] = Counter()
    started = time.monotonic()
    for r in range(n):
        res = simulate({"mock": {"cache": "none", "seed": r}})
        verdicts[res.verdict] += 1
    took = time.monotonic() - started
    print(f"\n## {n} null audits (honest mock, defaults, virtual clock): {dict(verdicts)}")
    print(f"({took:.0f} s)")


def llama(runs: int, timing_only: bool) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.llama_server import llama_server, make_gguf

    with tempfile.TemporaryDirectory() as tmp:
        model = make_gguf(Path(tmp) / "tiny.gguf")
        print(f"## real llama.cpp (xllamacpp, tiny random GGUF) over HTTP, {runs} audits each")
        print(
            "| prompt cache | settings | FAIL | PASS | INCONCLUSIVE | INVALID | probes per arm "
            "(median, max) | evidence that fired |"
        )
        print("|---|---|---|---|---|---|---|---|")
        rows = [(True, "defaults", {}), (False, "defaults", {})]
        if timing_only:
            rows.append((True, "timing_only", {"timing_only": True}))
        for on, label, extra in rows:
            with llama_server(model, cache_prompt=on) as url:
                counts: Counter[str] = Counter()
                used: list[int] = []
                fired: Counter[str] = Counter()
                for r in range(runs):
                    over = {
                        "endpoint": {"url": url, "api": "openai-completions"},
                        "output_dir": str(Path(tmp) / f"o{on}{label}{r}"),
                        "prefix_cache": extra,
                    }
                    res = run_audit(load_config(None, over), "prefix_cache").result
                    counts[res.verdict] += 1
                    if res.evidence is None:
                        print(f"  {res.verdict}: {res.reason}")
                        continue
                    used.append(res.evidence.same_client.per_arm)
                    fired.update(res.evidence.same_client.fired)
            print(
                f"| {'on' if on else 'off'} | {label} | {counts['FAIL']} | {counts['PASS']} | "
                f"{counts['INCONCLUSIVE']} | {counts['INVALID']} | "
                f"{statistics.median(used or [0]):g}, {max(used or [0])} | "
                f"{', '.join(f'{k} {v}' for k, v in sorted(fired.items())) or 'none'} |"
            )
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["mock", "llama"])
    parser.add_argument("--reps", type=int, default=20, help="audits per cell (mock)")
    parser.add_argument("--sizes", default="15,25,50,100", help="fixed probes per arm (mock)")
    parser.add_argument("--nulls", type=int, default=1000, help="null audits (mock)")
    parser.add_argument("--runs", type=int, default=30, help="audits per row (llama)")
    parser.add_argument(
        "--timing-only", action="store_true", help="llama: add a row deciding on timing alone"
    )
    args = parser.parse_args()
    if args.what == "mock":
        mock_power(args.reps, [int(s) for s in args.sizes.split(",")])
        mock_nulls(args.nulls)
    else:
        llama(args.runs, args.timing_only)


if __name__ == "__main__":
    main()
