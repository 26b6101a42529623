"""TEST04's config block (`test04:` in the YAML; its fields are also CLI flags and notebook
parameters, derived by `auditkit.options`). Defaults follow MLPerf."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ThresholdMode = Literal["upstream", "intended"]
Design = Literal["sequential", "counterbalanced"]


class Test04Config(BaseModel):
    """TEST04 (output caching) knobs."""

    __test__ = False  # a "Test…" name, not a pytest test class

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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
        "sequential",
        description="sequential: reference then audit (MLPerf); counterbalanced: blocks "
        "R A A R so warm-up and drift cancel",
    )
    warmup_queries: int = Field(
        0, ge=0, le=1_000_000, description="salted warm-up queries before the first phase"
    )
    seed: int = Field(0, ge=0, description="seed of the reference phase's sample order")

    @field_validator("sample_index")
    @classmethod
    def _check_index(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("sample_index must be >= 0")
        return value

    @property
    def effective_audit_samples(self) -> int:
        """audit_samples, or samples when not given."""
        return self.audit_samples if self.audit_samples is not None else self.samples
