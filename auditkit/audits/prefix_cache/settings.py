"""The prefix-cache audit's config block (`prefix_cache:` in YAML, `--prefix-cache-*` flags)."""

from __future__ import annotations

from pydantic import Field

from auditkit.audits.base import AuditSettings


class PrefixCacheConfig(AuditSettings):
    """Prefix-cache audit knobs (Gu et al., ICML 2025, with a sequential stop)."""

    prompt_tokens: int = Field(
        1024, ge=32, le=200_000, description="length of each probe prompt, in the server's tokens"
    )
    prefix_fraction: float = Field(
        0.95, gt=0, lt=1, description="share of the victim's prompt a hit probe starts with"
    )
    probes_per_arm: int = Field(
        25, ge=5, le=10_000, description="most probes per arm (hit, miss) before it stops"
    )
    look_every: int = Field(
        5, ge=1, le=10_000, description="probes per arm between two looks at the evidence"
    )
    alpha: float = Field(
        1e-8, gt=0, lt=0.5, description="false-FAIL rate of the one-sided KS test, over all looks"
    )
    min_effect: float = Field(
        0.10,
        gt=0,
        lt=1,
        description="PASS only when the interval excludes hits this much faster than misses",
    )
    confidence: float = Field(
        0.99, gt=0.5, lt=1, description="coverage of the hit/miss ratio's interval, over all looks"
    )
    delay_ms: float = Field(0.0, ge=0, description="pause between two requests (ms)")
    second_api_key_env: str | None = Field(
        None,
        description="environment variable with a second API key: hit probes also come from "
        "this other client (is the cache shared across users?)",
    )
    second_user: bool = Field(
        False,
        description="one key, two OpenAI `user` values: hit probes also come from another user",
    )
    metrics_url: str | None = Field(
        None, description="the server's Prometheus text; None: <base>/metrics when it answers"
    )
    timing_only: bool = Field(
        False,
        description="decide on timing alone (metadata still reported): timing's own power",
    )
    nonce: str | None = Field(None, description="the run's secret nonce; None: a random one")
    seed: int = Field(0, ge=0, description="seed of the prompts' words and the arms' order")
