"""The prefix-cache audit's evidence (audit_result.json's `evidence`)."""

from __future__ import annotations

from typing import Literal

from auditkit.results import Evidence


class ArmTiming(Evidence):
    """One hit arm against the miss arm: timing and metadata."""

    timing: Literal["FAIL", "PASS", "INCONCLUSIVE"]
    ks_statistic: float
    ks_p: float
    alpha_per_look: float
    ratio: float  # hit / miss time (Hodges-Lehmann on log times)
    ratio_low: float
    ratio_high: float
    hit_median_ms: float
    miss_median_ms: float
    per_arm: int
    needed_per_arm: int | None
    hit_cached_tokens: float | None  # median usage cached_tokens (or timings.cache_n)
    miss_cached_tokens: float | None
    hit_counter_delta: float | None  # median rise of the Prometheus reuse counters
    miss_counter_delta: float | None
    fired: tuple[str, ...]  # which evidence shows reuse: timing, cached_tokens, prometheus


class PrefixCacheEvidence(Evidence):
    """The numbers behind the verdict."""

    measure: str
    prompt_tokens: int
    prompt_words: int
    shared_words: int
    looks: int
    planned_looks: int
    alpha: float
    scope: Literal["same-client", "cross-client"]
    same_client: ArmTiming
    cross_client: ArmTiming | None = None
    shared_across_users: bool | None = None
    metrics_read: bool = False
