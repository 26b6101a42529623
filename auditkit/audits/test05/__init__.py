"""TEST05: does the endpoint depend on the official sample order? (alternate seeds;
compliance/nvidia/TEST05 in mlcommons/inference: audit.config, verify_performance.py)

Upstream runs performance mode again with alternate `qsl_rng_seed`, `sample_index_rng_seed`
and `schedule_rng_seed` (audit.config: 313588358309856706, 471397156132239067,
413914573387865862) and compares the scores (verify_performance.py), threshold 0.05, relaxed to
0.20 for SingleStream when the reference score (its early-stopping latency, ns) <= 200000 and
for MultiStream when <= 1600000:

    Offline/Server:           PASS iff test_score > ref_score × (1 − threshold)   (throughput)
    SingleStream/MultiStream: PASS iff test_latency < ref_latency × (1 + threshold)

Removed from the required set in v5.0, still a sound check: a server tuned to (or prefetching
along) the official order is fast only in it. auditkit's phases: *reference* (the run's seed,
`seed`, for the sample order and the server scenario's arrival schedule) and *alternate*
(`sample_index_seed` for the order, `schedule_seed` for the arrivals; auditkit addresses
dataset rows directly, so upstream's `qsl_rng_seed`, which picks the loaded set, has no
counterpart and is recorded only). By default they run counterbalanced, R A A R (each half of
its samples, the halves pooled end to end as TEST04 pools its blocks), so warm-up and drift
cancel instead of favouring the phase that runs second; `design: sequential` runs R then A.

`upstream_verdict` is the rule above on the two point scores. `verdict` is auditkit's decision
with its certainty, TEST04's machinery reused (`auditkit.audits.test04.statistics`): a block
bootstrap interval of the reference/alternate score ratio at 95 %, one-sided limit L
(throughput: L = 1 / (1 − threshold); latency: L = 1 + threshold):

    FAIL iff the interval lies above L;  PASS iff it lies below L;  else INCONCLUSIVE

While INCONCLUSIVE, up to `rounds` extra rounds run (as TEST04's `extend`), each one block of
each kind, `samples / 2` queries, in alternating order (A R, then R A, ...: the planned R A A R
ends on R), continuing each seed's order, pooled with the planned blocks and judged again;
they stop at `max_queries` measured queries (default 4 × 2 × samples). `upstream_verdict` is
then the point rule on the pooled scores.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from auditkit.audits.base import AuditTest
from auditkit.audits.llm import check_samples, measured, phase_problem, warmup_phase
from auditkit.audits.test04 import pool_blocks
from auditkit.audits.test04.statistics import StatisticalView, statistical_view
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import LoadPattern, RunSpec
from auditkit.results import AuditResult, Evidence, PhaseResult

REFERENCE = "reference"
ALTERNATE = "alternate"
VERIFY_FILE = "verify_performance.txt"
#: compliance/nvidia/TEST05/audit.config
QSL_SEED = 313588358309856706
SAMPLE_INDEX_SEED = 471397156132239067
SCHEDULE_SEED = 413914573387865862
THRESHOLD = 0.05


class Test05Config(BaseModel):
    """TEST05 (alternate seeds) knobs."""

    __test__ = False
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    samples: int = Field(256, ge=1, le=10_000_000, description="queries of each phase")
    seed: int = Field(0, ge=0, description="the run's own seed (reference phase)")
    sample_index_seed: int = Field(
        SAMPLE_INDEX_SEED, ge=0, description="alternate sample-order seed (upstream's)"
    )
    schedule_seed: int = Field(
        SCHEDULE_SEED, ge=0, description="alternate server arrival-schedule seed (upstream's)"
    )
    qsl_seed: int = Field(
        QSL_SEED,
        ge=0,
        description="upstream's qsl_rng_seed (recorded; rows are addressed directly)",
    )
    threshold: float | None = Field(
        None, gt=0, lt=1, description="None: upstream's 0.05 (0.20 for very short latencies)"
    )
    warmup: int = Field(16, ge=0, description="salted warm-up queries first (0: none)")
    design: Literal["counterbalanced", "sequential"] = Field(
        "counterbalanced",
        description="counterbalanced: R A A R halves, so warm-up and drift cancel; "
        "sequential: reference then alternate",
    )
    rounds: int = Field(
        2, ge=0, le=64, description="extra rounds (A R, R A, ...) while INCONCLUSIVE (0: none)"
    )
    max_queries: int | None = Field(
        None,
        ge=1,
        description="measured queries at most, extra rounds included (None: 8 × samples)",
    )


class Test05Evidence(Evidence):
    threshold: float
    limit: float
    interval: StatisticalView | None
    seeds: dict[str, int]


def threshold_for(scenario: str, reference_score: float, given: float | None) -> float:
    """Upstream's threshold: 0.05, 0.20 for short latencies (score = 1e9 / latency ns)."""
    if given is not None:
        return given
    latency = 1e9 / reference_score if reference_score else float("inf")
    if (scenario == "single-stream" and latency <= 200_000) or (
        scenario == "multi-stream" and latency <= 1_600_000
    ):
        return 0.20
    return THRESHOLD


def upstream_rule(scenario: str, ref: float, test: float, threshold: float) -> bool:
    """verify_performance.py's comparison on scores (higher is better in every scenario)."""
    if scenario in ("offline", "server"):
        return test > ref * (1 - threshold)
    # test_latency < ref_latency × (1 + t)  ⇔  1/test < (1 + t)/ref
    return ref < test * (1 + threshold)


def limit_for(scenario: str, threshold: float) -> float:
    """The limit on reference/alternate score ratio that upstream's rule draws."""
    return 1 / (1 - threshold) if scenario in ("offline", "server") else 1 + threshold


def _half(samples: int, cfg: AuditConfig) -> int:
    """The first block's samples (whole multi-stream queries)."""
    per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
    return max(per_query, (samples // per_query // 2) * per_query)


def _issued(kind: str, phases: list[PhaseResult]) -> int:
    """Rows the blocks of one kind issued so far (an extra round continues that order)."""
    blocks = [p for p in phases if p.name == kind or p.name.startswith(f"{kind}_")]
    return sum(int((p.records["variant"] == "main").sum()) for p in blocks)


def _rounds_done(phases: list[PhaseResult]) -> int:
    return sum(1 for p in phases if p.name.startswith(f"{REFERENCE}_x"))


def _pooled(kind: str, phases: list[PhaseResult]) -> PhaseResult:
    """The reference (or alternate) phase: itself, or its two blocks laid end to end."""
    blocks = [p for p in phases if p.name == kind or p.name.startswith(f"{kind}_")]
    return blocks[0] if len(blocks) == 1 else pool_blocks(kind, blocks)


class Test05(AuditTest[Test05Config, Test05Evidence]):
    """TEST05 as an audit plug-in."""

    __test__ = False

    id: ClassVar[str] = "TEST05"
    key: ClassVar[str] = "test05"
    title: ClassVar[str] = "Alternate seeds (MLPerf TEST05)"
    summary: ClassVar[str] = "is the endpoint slower off the official sample order?"
    settings_model = Test05Config
    evidence_model = Test05Evidence

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        t5 = self.settings(cfg)
        check_samples("test05.samples", t5.samples, len(dataset))
        per_query = cfg.load.samples_per_query if cfg.load.scenario == "multi-stream" else 1
        if t5.samples % per_query:
            raise InputError("test05.samples must be a multiple of load.samples_per_query")
        if t5.design == "counterbalanced":
            if t5.samples < 2 * per_query:
                raise InputError(
                    f"test05.design counterbalanced splits each phase in two: test05.samples "
                    f"must be at least {2 * per_query}"
                )
            if cfg.load.min_duration_s > 0:
                raise InputError(
                    "test05.design counterbalanced cannot be combined with load.min_duration_s "
                    "(a timed block would run into the next block's rows); use sequential"
                )

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:
        """Warm-up, reference (the run's seeds), alternate (upstream's test05 seeds)."""
        t5 = self.settings(cfg)
        duration = cfg.load.min_duration_s
        warmup = warmup_phase(cfg, t5.warmup, t5.seed + 7)
        ref_order = SampleOrder.without_replacement(t5.seed)
        alt_order = SampleOrder.without_replacement(t5.sample_index_seed)
        ref_load = LoadPattern.from_config(cfg.load, t5.seed)
        alt_load = LoadPattern.from_config(cfg.load, t5.schedule_seed)
        if t5.design == "sequential":
            return [
                *warmup,
                RunSpec(REFERENCE, ref_order, t5.samples, ref_load, duration),
                RunSpec(ALTERNATE, alt_order, t5.samples, alt_load, duration),
            ]
        half = _half(t5.samples, cfg)
        rest = t5.samples - half
        return [
            *warmup,
            RunSpec(f"{REFERENCE}_1", ref_order, half, ref_load, duration / 2),
            RunSpec(f"{ALTERNATE}_1", alt_order, half, alt_load, duration / 2),
            RunSpec(f"{ALTERNATE}_2", alt_order.skip(half), rest, alt_load, duration / 2),
            RunSpec(f"{REFERENCE}_2", ref_order.skip(half), rest, ref_load, duration / 2),
        ]

    def extend(
        self, cfg: AuditConfig, dataset: Dataset, phases: list[PhaseResult]
    ) -> list[RunSpec]:
        """One more round (one block of each kind, alternating which goes first) while the
        decision is not settled and the budget allows; [] when it is spent."""
        t5 = self.settings(cfg)
        done = _rounds_done(phases)
        if done >= t5.rounds:
            return []
        n = _half(t5.samples, cfg)
        measured_queries = sum(p.summary.issued for p in measured(phases))
        if measured_queries + 2 * n > (t5.max_queries or 8 * t5.samples):
            return []
        r = done + 1
        # each seed's order continues where its blocks stopped, as the planned halves do
        ref = RunSpec(
            f"{REFERENCE}_x{r}",
            SampleOrder.without_replacement(t5.seed).skip(_issued(REFERENCE, phases)),
            n,
            LoadPattern.from_config(cfg.load, t5.seed),
        )
        alt = RunSpec(
            f"{ALTERNATE}_x{r}",
            SampleOrder.without_replacement(t5.sample_index_seed).skip(_issued(ALTERNATE, phases)),
            n,
            LoadPattern.from_config(cfg.load, t5.schedule_seed),
        )
        return [alt, ref] if r % 2 else [ref, alt]

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test05Evidence]:
        t5 = self.settings(cfg)
        scenario = cfg.load.scenario
        base: dict[str, Any] = {"test": self.id, "scenario": scenario}
        base |= {"phases": {p.name: p.summary for p in measured(phases)}}
        base["config"] = cfg.redacted()
        problem = phase_problem(phases)
        named = {kind: _pooled(kind, phases) for kind in (REFERENCE, ALTERNATE)}
        base["phases"] |= {kind: p.summary for kind, p in named.items()}
        ref, alt = named[REFERENCE].summary.score, named[ALTERNATE].summary.score
        if problem is None and (not ref or not alt):
            problem = "a phase has no score"
        if problem is not None:
            return self.result_model(verdict="INVALID", reason=f"INVALID: {problem}", **base)
        assert ref is not None and alt is not None
        threshold = threshold_for(scenario, ref, t5.threshold)
        limit = limit_for(scenario, threshold)
        upstream = "PASS" if upstream_rule(scenario, ref, alt, threshold) else "FAIL"
        # the interval of reference/alternate (the "audit" side is the reference here: FAIL
        # when the official order is meaningfully faster)
        view = statistical_view(
            named[ALTERNATE].records, named[REFERENCE].records, scenario, limit - 1, seed=t5.seed
        )
        ratio = ref / alt
        if view is None:
            verdict, why = "INCONCLUSIVE", "too few completed queries for an interval"
        else:
            verdict = view.verdict
            interval = f"[{view.ci_low:.3g}, {view.ci_high:.3g}]"
            why = {
                "PASS": f"interval {interval} below the {limit:.4g} limit",
                "FAIL": f"interval {interval} above the {limit:.4g} limit: the official order "
                "is served meaningfully faster",
                "INCONCLUSIVE": f"interval {interval} straddles the {limit:.4g} limit",
            }[verdict]
        reason = f"official/alternate-seed score ratio {ratio:.3f}; {why}"
        if upstream != verdict and verdict != "INCONCLUSIVE":
            reason += f"; upstream's point rule says {upstream}"
        evidence = Test05Evidence(
            threshold=threshold,
            limit=limit,
            interval=view,
            seeds={
                "seed": t5.seed,
                "sample_index_seed": t5.sample_index_seed,
                "schedule_seed": t5.schedule_seed,
                "qsl_seed": t5.qsl_seed,
            },
        )
        return self.result_model(
            verdict=verdict,
            upstream_verdict=upstream,
            reason=reason,
            score_name=named[REFERENCE].summary.score_name,
            reference_score=ref,
            audit_score=alt,
            ratio=alt / ref,
            threshold=threshold,
            threshold_source="given" if t5.threshold is not None else "upstream",
            rule="offline/server: test > ref × (1 − t); streams: latency < ref × (1 + t)",
            evidence=evidence,
            **base,
        )

    def files(self, result: AuditResult[Test05Evidence]) -> dict[str, str]:
        upstream = result.upstream_verdict or result.verdict
        if result.reference_score is None or result.audit_score is None:
            return {VERIFY_FILE: f"Verifying performance.\nTEST FAIL: {result.reason}\n"}
        lines = [
            "Verifying performance.",
            f"reference score = {result.reference_score}",
            f"test score = {result.audit_score}",
            "TEST PASS" if upstream == "PASS" else "TEST FAIL: Test score invalid",
            "",
            f"auditkit: verdict {result.verdict} (upstream rule: {upstream})",
            f"auditkit: {result.reason}",
        ]
        return {VERIFY_FILE: "\n".join(lines) + "\n"}

    def advice(self, result: AuditResult[Test05Evidence]) -> str:
        if result.verdict == "FAIL":
            return (
                "the official sample order is served faster than other seeds' orders: look for "
                "anything tuned to that order (samples precomputed or warmed in its sequence, an "
                "order-aware scheduler), remove it and rerun with --overwrite"
            )
        if result.verdict == "INCONCLUSIVE":
            return (
                "rerun with a larger budget (raise --max-queries, --rounds or --samples) or a "
                "quieter endpoint; add --overwrite to replace this run"
            )
        return super().advice(result)

    def summary_lines(self, result: AuditResult[Test05Evidence]) -> list[str]:
        if result.reference_score is None or result.audit_score is None:
            return []
        return [
            f"{result.score_name}: official order {result.reference_score:.4g}, alternate seeds "
            f"{result.audit_score:.4g} (threshold {result.threshold:g}, upstream "
            f"{result.upstream_verdict})"
        ]

    def panel_rows(self, result: AuditResult[Test05Evidence]) -> list[tuple[str, str]]:
        return [("seeds", line) for line in self.summary_lines(result)]


__all__ = ["Test05", "Test05Config", "Test05Evidence", "limit_for", "threshold_for"]
