"""The probe catalogue: which probes exist, what each sends, and which analysis reads it.

Each entry is declarative: a name, a label, a function that builds the groups to issue from
fresh prompts, and the analysis of the records that come back. The public probe functions
(`cold_vs_warm(target, k)` …) run an entry through the runner.

| probe | response (output) cache | prefix / KV cache | no cache |
|---|---|---|---|
| repeat vs distinct | repeats much faster | repeats faster (prefill skipped) | same |
| cold vs warm | warm TTFT *and* decode collapse | warm TTFT drops, decode does not | flat |
| shared prefix | — (different prompts) | TTFT drops if partial prefixes are reused | flat |
| identical outputs at T>0 | byte-identical outputs | outputs differ | outputs differ |

Every probe uses prompts nobody sent before (a per-session tag plus unused dataset rows), so the
first query of a group is really cold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from auditkit.probes import analysis
from auditkit.probes.analysis import Findings, ProbeResult
from auditkit.probes.runner import Group, ProbeTarget, StopFlag, UpdateCallback, run_groups

# Probes that compare cold and warm use prompts of several dataset rows: prefill cost grows
# with prompt length, so a skipped prefill (prefix/KV cache) stands out from per-request
# overheads that a single short prompt would drown it in.
LONG_PROMPT_ROWS = 4


class PromptSource(Protocol):
    """Hands out prompts never sent before (ProbeTarget is one)."""

    def fresh_texts(self, n: int, rows: int = 1) -> list[str]: ...


@dataclass(frozen=True)
class ProbeOptions:
    """A probe's knobs: queries per group, and the options only some probes use."""

    k: int = 8
    temperature: float = 0.8  # output_identity: sampling must vary the answer
    prefix_rows: int = 3  # shared_prefix: dataset rows in the long prefix


@dataclass(frozen=True)
class Probe:
    """One catalogue entry: what to send (`groups`) and how to read it (`analysis`)."""

    name: str
    label: str
    groups: Callable[[PromptSource, ProbeOptions], tuple[Group, ...]]
    analysis: Callable[[pd.DataFrame, ProbeOptions], Findings]

    def run(
        self,
        target: ProbeTarget,
        options: ProbeOptions,
        *,
        on_update: UpdateCallback | None = None,
        stop: StopFlag | None = None,
    ) -> ProbeResult:
        """Build the groups from `target`'s fresh prompts, run them and analyse the records."""

        def analyse(records: pd.DataFrame) -> Findings:
            return self.analysis(records, options)

        groups = self.groups(target, options)
        return run_groups(
            target, self.name, self.label, groups, analyse, on_update=on_update, stop=stop
        )


# --- what each probe sends -----------------------------------------------------------------


def _repeat_vs_distinct_groups(prompts: PromptSource, o: ProbeOptions) -> tuple[Group, ...]:
    # k distinct fresh prompts, then one fresh prompt k times
    return (
        Group("distinct", tuple(prompts.fresh_texts(o.k, LONG_PROMPT_ROWS))),
        Group("repeated", tuple(prompts.fresh_texts(1, LONG_PROMPT_ROWS) * o.k)),
    )


def _cold_vs_warm_groups(prompts: PromptSource, o: ProbeOptions) -> tuple[Group, ...]:
    return (Group("repeats of one prompt", tuple(prompts.fresh_texts(1, LONG_PROMPT_ROWS) * o.k)),)


def _shared_prefix_prompts(prompts: PromptSource, o: ProbeOptions, shared: bool) -> list[str]:
    # suffixes lose their tag: the prefix alone decides whether two prompts start alike
    suffixes = [t.split("] ", 1)[-1] for t in prompts.fresh_texts(o.k)]
    heads = prompts.fresh_texts(o.prefix_rows if shared else o.prefix_rows * o.k)
    if shared:
        prefix = "\n\n".join(heads)
        return [f"{prefix}\n\nTask: {s}" for s in suffixes]
    chunks = [heads[i * o.prefix_rows : (i + 1) * o.prefix_rows] for i in range(o.k)]
    return ["\n\n".join(c) + f"\n\nTask: {s}" for c, s in zip(chunks, suffixes, strict=True)]


def _shared_prefix_groups(prompts: PromptSource, o: ProbeOptions) -> tuple[Group, ...]:
    # k prompts with unique long prefixes vs k sharing one long prefix (different suffixes)
    return (
        Group("unique prefixes", tuple(_shared_prefix_prompts(prompts, o, shared=False))),
        Group("shared prefix", tuple(_shared_prefix_prompts(prompts, o, shared=True))),
    )


def _output_identity_groups(prompts: PromptSource, o: ProbeOptions) -> tuple[Group, ...]:
    texts = tuple(prompts.fresh_texts(1) * o.k)
    return (Group(f"same prompt, T={o.temperature:g}", texts, o.temperature),)


# --- the catalogue -------------------------------------------------------------------------

CATALOGUE: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe(
            "repeat_vs_distinct",
            "(a) repeated vs distinct",
            _repeat_vs_distinct_groups,
            lambda records, _o: analysis.repeat_vs_distinct_findings(records),
        ),
        Probe(
            "cold_vs_warm",
            "(b) cold vs warm repeats",
            _cold_vs_warm_groups,
            lambda records, _o: analysis.cold_vs_warm_findings(records),
        ),
        Probe(
            "shared_prefix",
            "(c) shared prefix",
            _shared_prefix_groups,
            lambda records, _o: analysis.shared_prefix_findings(records),
        ),
        Probe(
            "output_identity",
            "(d) identical outputs at T>0",
            _output_identity_groups,
            lambda records, o: analysis.output_identity_findings(records, o.temperature),
        ),
    )
}


# --- the probes as functions (the notebook's and widgets' entry points) ---------------------


def repeat_vs_distinct(
    target: ProbeTarget,
    k: int = 8,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """k distinct fresh prompts, then one fresh prompt k times: is repetition faster?"""
    probe = CATALOGUE["repeat_vs_distinct"]
    return probe.run(target, ProbeOptions(k), on_update=on_update, stop=stop)


def cold_vs_warm(
    target: ProbeTarget,
    k: int = 8,
    *,
    on_update: UpdateCallback | None = None,
    stop: StopFlag | None = None,
) -> ProbeResult:
    """One fresh prompt sent k times: compare the first (cold) query with the rest (warm),
    for total latency, TTFT and decode time separately."""
    probe = CATALOGUE["cold_vs_warm"]
    return probe.run(target, ProbeOptions(k), on_update=on_update, stop=stop)


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
    probe = CATALOGUE["shared_prefix"]
    options = ProbeOptions(k, prefix_rows=prefix_rows)
    return probe.run(target, options, on_update=on_update, stop=stop)


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
    probe = CATALOGUE["output_identity"]
    options = ProbeOptions(k, temperature=temperature)
    return probe.run(target, options, on_update=on_update, stop=stop)


PROBES: dict[str, Callable[..., ProbeResult]] = {
    "repeat_vs_distinct": repeat_vs_distinct,
    "cold_vs_warm": cold_vs_warm,
    "shared_prefix": shared_prefix,
    "output_identity": output_identity,
}
