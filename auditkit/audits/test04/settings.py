"""TEST04's config block (`test04:` in the YAML; its fields are also CLI flags and notebook
parameters, derived by `auditkit.options`). Defaults follow MLPerf."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from auditkit.audits.base import AuditSettings

ThresholdMode = Literal["upstream", "intended"]
Design = Literal["auto", "sequential", "counterbalanced", "alternating"]


class Test04Config(AuditSettings):
    """TEST04 (output caching) knobs."""

    samples: int = Field(256, ge=1, le=10_000_000, description="reference phase: distinct samples")
    audit_samples: int | None = Field(
        None, ge=1, le=10_000_000, description="audit phase queries; None: same as samples"
    )
    sample_index: int | Literal["median"] = Field(
        3,
        description="dataset row repeated in the audit phase (MLPerf "
        "performance_issue_same_index), or 'median' for the most typical prompt",
    )
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="None: MLPerf's default for the scenario (0.10/0.20)"
    )
    threshold_mode: ThresholdMode = Field(
        "upstream",
        description="upstream: relax to 0.20 exactly as verify_performance.py does; intended: "
        "only for very short latencies",
    )
    design: Design = Field(
        "auto",
        description="sequential: reference then audit (MLPerf); counterbalanced: blocks "
        "R A A R so warm-up and drift cancel; alternating: 8 reference/audit block pairs "
        "(R A, A R, ...) so a busy client or server hits both phases alike; auto: alternating "
        "when each phase has at least 32 queries and the dataset a row to spare, sequential "
        "otherwise and for timed runs",
    )
    warmup: int | Literal["auto"] = Field(
        "auto",
        description="salted warm-up queries before the first phase: auto (until latency is "
        "stable, at least max(2 × concurrency, 32)), a number, or 0 for none",
    )
    salt: bool = Field(
        True,
        description="prefix every measured prompt with a random run nonce so nothing from "
        "before this run can answer from a cache (--no-salt: the dataset byte for byte)",
    )
    run_salt: str | None = Field(
        None,
        description="the run nonce; None: a new random one per run (set it to repeat a run)",
    )
    control_twins: int | Literal["auto"] = Field(
        "auto",
        description="salted twins of reference samples interleaved in the reference phase "
        "(the primed-cache control); auto: an eighth of samples, 8 to 32",
    )
    controls: int | Literal["auto"] = Field(
        "auto",
        description="never-seen, cost-matched controls: pairs of (repeated sample, a prompt "
        "synthesised at run time as long) and as many of (fresh dataset row, a synthesised "
        "prompt as long), interleaved in a control phase after the planned phases; auto: a "
        "quarter of samples, at least 32; 0: none (not in multi-stream)",
    )
    allow_small: bool = Field(
        False,
        description="allow fewer queries than the early-stopping estimate needs to be more "
        "than a few queries (the verdict then says it is not reliable)",
    )
    max_queries: int | None = Field(
        None,
        ge=1,
        description="budget for extra rounds while the decision is not settled (all measured "
        "queries); None: 4 × (samples + audit_samples)",
    )
    max_duration_s: float = Field(
        600.0, gt=0, description="budget for extra rounds: measured time in seconds"
    )
    rounds: int = Field(
        3, ge=0, le=20, description="extra counterbalanced rounds at most (0: a fixed length)"
    )
    seed: int = Field(0, ge=0, description="seed of the reference phase's sample order")

    @field_validator("sample_index", "warmup", "control_twins", "controls")
    @classmethod
    def _not_negative(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0")
        return value

    @field_validator("run_salt")
    @classmethod
    def _check_salt(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("-", "").isalnum():
            raise ValueError("run_salt must be letters, digits and dashes")
        return value

    def twins(self) -> int:
        """Control twins in the reference phase."""
        if self.control_twins == "auto":
            return min(32, max(8, self.samples // 8))
        return int(self.control_twins)

    def control_pairs(self) -> int:
        """Pairs of each kind in the planned control phase (repeated sample and fresh row)."""
        if self.controls == "auto":
            return max(32, self.samples // 4)
        return int(self.controls)

    @property
    def effective_audit_samples(self) -> int:
        """audit_samples, or samples when not given."""
        return self.audit_samples if self.audit_samples is not None else self.samples
