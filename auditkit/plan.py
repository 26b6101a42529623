"""Declarative phase plans: what a load phase issues and how (the load generator's input)."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RunSpec:
    """One phase: a name, a sample order, how many samples, and the load pattern.

    The phase issues at least `samples` samples and keeps issuing (extending its order) until
    `min_duration_s` has also passed, as LoadGen's min_duration does.
    """

    name: str
    order: SampleOrder
    samples: int
    load: LoadPattern
    min_duration_s: float = 0.0

    def describe(self) -> str:
        duration = f", min {self.min_duration_s:g} s" if self.min_duration_s else ""
        return (
            f"{self.name}: {self.samples} samples, order {self.order.describe()}, "
            f"{self.load.scenario}{duration}"
        )
