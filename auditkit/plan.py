"""Declarative phase plans: what a load phase issues and how (the load generator's input)."""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from auditkit.config import LoadConfig, Scenario
from auditkit.data import SampleOrder


@dataclass(frozen=True)
class LoadPattern:
    """How queries are issued; knows scenarios, never test names."""

    scenario: Scenario
    max_concurrency: int = 32
    samples_per_query: int = 1
    target_qps: float | None = None
    target_latency_ns: int | None = None
    seed: int = 0
    client_delay_ms: float = 0.0

    @classmethod
    def from_config(cls, load: LoadConfig, seed: int) -> LoadPattern:
        latency_ns = int(load.target_latency_ms * 1e6) if load.target_latency_ms else None
        per_query = load.samples_per_query if load.scenario == "multi-stream" else 1
        return cls(
            scenario=load.scenario,
            max_concurrency=load.max_concurrency,
            samples_per_query=per_query,
            target_qps=load.target_qps,
            target_latency_ns=latency_ns,
            seed=seed,
            client_delay_ms=load.client_delay_ms,
        )


def new_salt() -> str:
    """A fresh run nonce: 8 random hex characters (the caller builds the prefix text from it)."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class WarmupRule:
    """How long a warm-up phase runs: until the SUT's latency has settled, within caps.

    The phase keeps issuing until at least `min_queries` completed and the median of the last
    `window` completed latencies is within `tolerance` (relative) of the median of the `window`
    before them, or until a cap is hit: `max_queries` issued, or `max_duration_s` elapsed on the
    phase clock. Stability needs two full windows, so fewer than 2 × window completions never
    count as settled. The load generator judges each request's service time (completion − send):
    offline schedules every query at t=0, so its scheduled latency only ever grows.
    """

    min_queries: int
    max_queries: int
    max_duration_s: float
    window: int = 8
    tolerance: float = 0.10

    def __post_init__(self) -> None:
        if self.min_queries < 1 or self.window < 1:
            raise ValueError("WarmupRule: min_queries and window must be >= 1")
        if self.max_queries < self.min_queries:
            raise ValueError("WarmupRule: max_queries must be >= min_queries")
        if self.max_duration_s <= 0 or self.tolerance < 0:
            raise ValueError("WarmupRule: max_duration_s must be > 0 and tolerance >= 0")

    def stable(self, latencies: Sequence[int]) -> bool:
        """Whether the last `window` latencies' median is within tolerance of the window before."""
        w = self.window
        if len(latencies) < 2 * w:
            return False
        last = statistics.median(latencies[-w:])
        before = statistics.median(latencies[-2 * w : -w])
        return abs(last - before) <= self.tolerance * before

    def settled(self, latencies: Sequence[int]) -> bool:
        """Enough completions (`min_queries`) and a stable rolling median: warm-up may stop."""
        return len(latencies) >= self.min_queries and self.stable(latencies)


@dataclass(frozen=True)
class Exchanges:
    """A phase of explicit prompts instead of dataset rows: `texts` sent one at a time in this
    order, each from client `clients[i]` (0: the run's API key; 1: the key in the environment
    variable `second_key_env`, else the run's key too; `users` tells them apart by `user`),
    labelled `variants[i]` (the records' variant) and `groups[i]` (its procedure: the records'
    query_id). Prometheus text at `metrics_url` is read before and after each group; `gap_s`
    pauses between requests; `max_tokens` overrides the endpoint's."""

    texts: tuple[str, ...]
    variants: tuple[str, ...]
    clients: tuple[int, ...]
    groups: tuple[int, ...]
    second_key_env: str | None = None
    metrics_url: str | None = None
    gap_s: float = 0.0
    max_tokens: int | None = None
    #: OpenAI `user` values of clients 0 and 1 (None: no `user` field is sent)
    users: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        if not n or any(len(x) != n for x in (self.variants, self.clients, self.groups)):
            raise ValueError("Exchanges: texts, variants, clients and groups need one entry each")


#: what a phase is for in its audit's design (the audits' verdicts select phases by it)
Role = Literal[
    "warmup", "reference", "audit", "alternate", "accuracy", "performance", "measured", "control"
]


@dataclass(frozen=True)
class RunSpec:
    """One phase: a name, a sample order, how many samples, and the load pattern.

    `role`, `block` and `round` say where the phase sits in its audit's design: its role, its
    block number when the role is split in blocks (None: one phase), and its round (0: the
    planned phases, r: extra round r). The name is the phase's folder name only.

    The phase issues at least `samples` samples and keeps issuing (extending its order) until
    `min_duration_s` has also passed, as LoadGen's min_duration does.

    `salt` is a prefix every prompt of the phase carries (see `Sample.salted`): the same sample
    with the same salt is byte-identical, so the audit sample still repeats exactly, while
    nothing sent before the run can match. `twins` control queries are interleaved evenly
    through the order, each the same row as the main query just before it but prefixed with
    `twin_salt` instead, a prompt no cache can have seen (a row twinned again in the same
    phase gets `twin_salt#2`, `#3`, ... so twins never repeat each other). The phase sends
    `samples + twins` queries (`planned_queries`); a min_duration extension keeps the ratio.

    With a `warmup` rule the phase is a warm-up: the rule decides how many queries it sends
    (`samples` is ignored), and every query, like every query of a `SampleOrder.salted` order,
    carries its own random prefix so the warm-up primes no cache with the measured prompts.
    """

    name: str
    order: SampleOrder
    samples: int
    load: LoadPattern
    min_duration_s: float = 0.0
    salt: str | None = None
    twins: int = 0
    twin_salt: str | None = None
    #: "salted": a twin is its row with `twin_salt`; "synthetic": a prompt synthesised at run
    #: time (seeded by `twin_salt` and its position) as long in words as the main query's
    #: prompt, sharing none of its words' order and no tag (variant "control")
    twin_kind: Literal["salted", "synthetic"] = "salted"
    warmup: WarmupRule | None = None
    #: dataset rows whose responses the phase keeps whole (`PhaseResult.outputs`: upstream's
    #: accuracy log, for audits that check content); None keeps none
    log_outputs: frozenset[int] | None = None
    #: stream this phase's responses or not; None: as endpoint.stream says
    stream: bool | None = None
    role: Role = "measured"
    block: int | None = None
    round: int = 0
    #: explicit prompts sent instead of the dataset's rows (None: the order's rows)
    exchanges: Exchanges | None = None

    def __post_init__(self) -> None:
        if self.twins < 0:
            raise ValueError(f"phase {self.name}: twins must be >= 0")
        if self.twins and (self.twin_salt is None or self.twin_salt == self.salt):
            # a twin carrying the main salt would be its original byte for byte
            raise ValueError(f"phase {self.name}: twins need a twin_salt other than salt")
        if self.twins and self.samples < 1:
            raise ValueError(f"phase {self.name}: twins need at least one main sample")
        if self.twins and self.fresh_prompts:
            raise ValueError(f"phase {self.name}: a warm-up has no control twins")

    @property
    def fresh_prompts(self) -> bool:
        """Every query carries its own random prefix (a warm-up: rule or salted order)."""
        return self.warmup is not None or self.order.kind == "salted"

    @property
    def planned_queries(self) -> int:
        """Queries the phase plans: samples + twins (a warm-up rule: its min_queries; the rule
        decides the rest)."""
        if self.warmup is not None:
            return self.warmup.min_queries
        return self.samples + self.twins

    def describe(self) -> str:
        duration = f", min {self.min_duration_s:g} s" if self.min_duration_s else ""
        if self.warmup is not None:
            rule = self.warmup
            count = (
                f"warm-up until stable ({rule.min_queries} to {rule.max_queries} queries, "
                f"at most {rule.max_duration_s:g} s)"
            )
        else:
            count = f"{self.samples} samples"
        kind = "synthesised controls" if self.twin_kind == "synthetic" else "salted twins"
        twins = f" + {self.twins} {kind}" if self.twins else ""
        salt = f", salt {self.salt!r}" if self.salt else ""
        return (
            f"{self.name}: {count}{twins}, order {self.order.describe()}{salt}, "
            f"{self.load.scenario}{duration}"
        )
