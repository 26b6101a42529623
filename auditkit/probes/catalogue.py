"""The probe catalogue: which probes exist, what each sends, and which analysis reads it.

Each entry is declarative: a name, a label, a function that builds the plan (the queries in
send order, with their roles) from fresh prompts, and the analysis of the records that come
back. Every probe is replicated over `k` rounds, each a cold query (a fresh prompt) beside a
warm one, so its effect comes with a confidence interval (analysis.py).

What each probe's warm queries show, by server (cold: fresh prompts):

- (a) back-to-back (P_i, P_i): response cache → TTFT and decode collapse; prefix/KV and
  last-prompt KV → TTFT drops, decode does not; coalescing, none → flat.
- (b) interleaved (A, B_i, A, …): as (a), except a last-prompt KV cache → flat (A is never last).
- (c) shared prefix: TTFT drops only where partial prefixes are reused.
- (d) identity at T>0 (B_i, A): response cache → identical and faster; an endpoint ignoring
  sampling → identical, not faster; one ignoring its prompt → the same text for every prompt.
- (e) bursts (c × P_i at once beside c distinct): coalescing → faster, one shared answer;
  response cache → flat (all miss together); prefix/KV → little.

Every probe uses prompts nobody sent before (a per-session tag plus unused dataset rows), so a
cold query is really cold, and the warm ones differ from probe to probe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from auditkit.probes import analysis
from auditkit.probes.analysis import Findings, ProbeResult
from auditkit.probes.runner import Plan, ProbeTarget, Send, StopFlag, UpdateCallback, run_plan

# Probes that compare cold and warm use prompts of several dataset rows: prefill cost grows
# with prompt length, so a skipped prefill (prefix/KV cache) stands out from per-request
# overheads that a single short prompt would drown it in.
LONG_PROMPT_ROWS = 4


class PromptSource(Protocol):
    """Hands out prompts never sent before (ProbeTarget is one)."""

    def fresh_texts(self, n: int, rows: int = 1) -> list[str]: ...


@dataclass(frozen=True)
class ProbeOptions:
    """A probe's knobs: rounds, and the options only some probes use."""

    k: int = 10  # rounds (each: one cold and one warm query, or burst)
    temperature: float = 0.8  # output_identity, burst: sampling must vary the answer
    prefix_rows: int = 3  # shared_prefix: dataset rows in the long prefix
    burst: int = 4  # burst: requests sent at once


@dataclass(frozen=True)
class Probe:
    """One catalogue entry: what to send (`plan`) and how to read it (`analysis`)."""

    name: str
    label: str
    pattern: str  # how the warm queries follow each other (reported as "patterns that hit")
    plan: Callable[[PromptSource, ProbeOptions], Plan]
    analysis: Callable[[pd.DataFrame, ProbeOptions], Findings]
    doc: str

    def run(
        self,
        target: ProbeTarget,
        options: ProbeOptions | None = None,
        *,
        on_update: UpdateCallback | None = None,
        stop: StopFlag | None = None,
    ) -> ProbeResult:
        """Build the plan from `target`'s fresh prompts, send it and analyse the records."""
        opts = options or ProbeOptions()

        def analyse(records: pd.DataFrame) -> Findings:
            return self.analysis(records, opts)

        plan = self.plan(target, opts)
        return run_plan(
            target, self.name, self.label, plan, analyse, on_update=on_update, stop=stop
        )


# --- what each probe sends -------------------------------------------------------------------


def _back_to_back(prompts: PromptSource, o: ProbeOptions) -> Plan:
    # round i: a fresh prompt, then the same prompt again at once
    sends: list[Send] = []
    for i, text in enumerate(prompts.fresh_texts(o.k, LONG_PROMPT_ROWS), start=1):
        sends += [Send(text, "cold", i, f"P{i}"), Send(text, "warm", i, f"P{i}")]
    return Plan(tuple(sends))


def _interleaved(prompts: PromptSource, o: ProbeOptions) -> Plan:
    # A once (prime), then round i: a fresh B_i, then A again (never two A in a row)
    a, *bs = prompts.fresh_texts(o.k + 1, LONG_PROMPT_ROWS)
    sends = [Send(a, "prime", 0, "A")]
    for i, b in enumerate(bs, start=1):
        sends += [Send(b, "cold", i, f"B{i}"), Send(a, "warm", i, "A")]
    return Plan(tuple(sends))


def _shared_prefix(prompts: PromptSource, o: ProbeOptions) -> Plan:
    # round i: a prompt with a unique long prefix, then one sharing the common long prefix
    # (the prime sent it first); suffixes lose their tag so the prefix alone decides
    suffixes = [t.split("] ", 1)[-1] for t in prompts.fresh_texts(o.k + 1)]
    shared = "\n\n".join(prompts.fresh_texts(o.prefix_rows))
    sends = [Send(f"{shared}\n\nTask: {suffixes[0]}", "prime", 0, "S0")]
    for i in range(1, o.k + 1):
        unique = "\n\n".join(prompts.fresh_texts(o.prefix_rows))
        sends += [
            Send(f"{unique}\n\nTask: {suffixes[i]}", "cold", i, f"U{i}"),
            Send(f"{shared}\n\nTask: {suffixes[i]}", "warm", i, f"S{i}"),
        ]
    return Plan(tuple(sends))


def _output_identity(prompts: PromptSource, o: ProbeOptions) -> Plan:
    # at T > 0: A once (prime), then round i: a fresh B_i, then A again
    plan = _interleaved(prompts, o)
    return Plan(plan.sends, temperature=o.temperature)


def _burst(prompts: PromptSource, o: ProbeOptions) -> Plan:
    # round i: `burst` distinct fresh prompts at once, then `burst` copies of one fresh prompt
    sends: list[Send] = []
    for i in range(1, o.k + 1):
        distinct = prompts.fresh_texts(o.burst, LONG_PROMPT_ROWS)
        same = prompts.fresh_texts(1, LONG_PROMPT_ROWS)[0]
        sends += [Send(t, "cold", i, f"D{i}.{j}", 2 * i - 1) for j, t in enumerate(distinct)]
        sends += [Send(same, "warm", i, f"P{i}", 2 * i) for _ in range(o.burst)]
    return Plan(tuple(sends), burst=o.burst, temperature=o.temperature)


# --- the catalogue ---------------------------------------------------------------------------

CATALOGUE: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe(
            "back_to_back",
            "(a) back-to-back repeats",
            "back-to-back",
            _back_to_back,
            lambda records, _o: analysis.repeat_findings(records, "back-to-back"),
            "k rounds of a fresh prompt sent twice in a row: is the repeat faster, and how?",
        ),
        Probe(
            "interleaved",
            "(b) interleaved repeats",
            "interleaved",
            _interleaved,
            lambda records, _o: analysis.repeat_findings(records, "interleaved"),
            "A, B1, A, B2, …: repeats of A never follow each other (a last-prompt KV cache "
            "misses them; a response or prefix cache does not)",
        ),
        Probe(
            "shared_prefix",
            "(c) shared prefix",
            "shared prefix",
            _shared_prefix,
            lambda records, _o: analysis.shared_prefix_findings(records),
            "prompts with unique long prefixes beside prompts sharing one long prefix "
            "(different suffixes): partial-prefix KV reuse lowers TTFT of the shared ones",
        ),
        Probe(
            "output_identity",
            "(d) identical outputs at T>0",
            "interleaved, T>0",
            _output_identity,
            lambda records, o: analysis.output_identity_findings(records, o.temperature),
            "A, B1, A, B2, … at temperature > 0: sampling should vary A's answers; identical "
            "and faster is a replay, identical and not faster an endpoint ignoring sampling",
        ),
        Probe(
            "burst",
            "(e) identical requests at once",
            "in flight at once",
            _burst,
            lambda records, o: analysis.burst_findings(records, o.temperature),
            "bursts of identical requests beside bursts of distinct ones: identical requests "
            "in flight sharing one computation (request coalescing) finish together, faster",
        ),
    )
}


def run_probe(
    name: str,
    target: ProbeTarget,
    k: int = 10,
    *,
    burst: int = 4,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """Run catalogue probe `name` with `k` rounds (KeyError names the probes there are)."""
    if name not in CATALOGUE:
        raise KeyError(f"no probe {name!r}; probes: {', '.join(CATALOGUE)}")
    options = ProbeOptions(k, burst=burst)
    return CATALOGUE[name].run(target, options, on_update=on_update, stop=stop)
