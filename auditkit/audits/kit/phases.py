"""What every audit's phases share: the salted warm-up phase, the phase checks that make a
verdict INVALID, the one-at-a-time load of an "accuracy" phase and the input checks. Pure:
plans and summaries only."""

from __future__ import annotations

from typing import Literal

from auditkit.config import AuditConfig, LoadConfig
from auditkit.data import SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, Role, RunSpec, WarmupRule
from auditkit.results import PhaseResult

WARMUP = "warmup"
#: an "auto" warm-up stops at this many seconds even if latency is not stable yet
WARMUP_CAP_S = 60.0


def warmup_phase(cfg: AuditConfig, queries: int | Literal["auto"], seed: int) -> list[RunSpec]:
    """`queries` salted warm-up queries at the scenario's load (none when 0; "auto": until
    latency is stable, within caps): every prompt carries its own random prefix, so the
    warm-up primes no cache with a measured prompt."""
    load = LoadPattern.from_config(cfg.load, seed)
    order = SampleOrder.salted(seed + 1)
    if queries == "auto":
        least = max(2 * cfg.load.max_concurrency, 32)
        rule = WarmupRule(least, max_queries=max(8 * least, 256), max_duration_s=WARMUP_CAP_S)
        return [RunSpec(WARMUP, order, least, load, warmup=rule, role="warmup")]
    if queries <= 0:
        return []
    return [RunSpec(WARMUP, order, queries, load, role="warmup")]


def query_size(load: LoadConfig) -> int:
    """Samples per query: load.samples_per_query in multi-stream, else 1."""
    return load.samples_per_query if load.scenario == "multi-stream" else 1


def one_at_a_time(seed: int) -> LoadPattern:
    """The load of an accuracy-style phase: single-stream, one query at a time."""
    return LoadPattern("single-stream", max_concurrency=1, seed=seed)


def measured(phases: list[PhaseResult]) -> list[PhaseResult]:
    """The phases a verdict reads (not the warm-up)."""
    return [p for p in phases if p.spec.role != "warmup"]


def phase_problem(phases: list[PhaseResult], untimed: tuple[Role, ...] = ()) -> str | None:
    """Why these phases cannot give PASS/FAIL (None: they can): incomplete, any failed
    query, or bound by the client rather than the SUT (not checked for
    phases of an `untimed` role: phases whose answers count, not their timing; a late client
    changes no answer)."""
    for p in measured(phases):
        s = p.summary
        if not s.complete:
            return f"{p.name}: only {s.completed} of {s.requested} queries completed"
        if s.failed:
            kinds = ", ".join(f"{k} {v}" for k, v in s.failures_by_status.items())
            return f"{p.name}: {s.failed} failed queries ({kinds})"
        if s.client_bound and p.spec.role not in untimed:
            return f"{p.name}: {s.client_bound}"
    return None


def require_temperature_zero(cfg: AuditConfig, test_id: str) -> None:
    """Content comparisons need greedy decoding: the same prompt must give the same answer."""
    if cfg.endpoint.temperature != 0.0:
        raise InputError(
            f"{test_id} compares answers, which needs endpoint.temperature 0 "
            f"(got {cfg.endpoint.temperature:g})"
        )


def require_openai(cfg: AuditConfig, test_id: str, why: str) -> None:
    """Audits that read streamed chunks, usage or logprobs need an OpenAI-style API."""
    if cfg.endpoint.api == "json":
        raise InputError(f"{test_id} needs an OpenAI-compatible endpoint.api ({why})")


def check_samples(name: str, samples: int, size: int) -> None:
    """A phase of distinct samples cannot ask for more rows than the dataset has."""
    if samples > size:
        raise InputError(f"{name} ({samples}) exceeds the dataset's {size} rows")
