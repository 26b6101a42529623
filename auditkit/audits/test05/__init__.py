"""TEST05: does the endpoint depend on the official sample order? (alternate seeds)

auditkit's own check, NOT an MLPerf requirement: MLPerf removed TEST05 in November 2024
(mlcommons/inference #1925, commit 4763c6b5); its rule is read from the last version,
compliance/nvidia/TEST05/ at 4763c6b5^ (audit.config, verify_performance.py). That script
matched only `Early stopping 90th percentile estimate`, which today's LoadGen prints as
`90.0th`; auditkit's summary reader takes both.

Upstream runs performance mode again with alternate `qsl_rng_seed`, `sample_index_rng_seed`
and `schedule_rng_seed` (audit.config: 313588358309856706, 471397156132239067,
413914573387865862) and compares the scores (verify_performance.py), threshold 0.05, relaxed to
0.20 for SingleStream when the reference score (its early-stopping latency, ns) <= 200000 and
for MultiStream when <= 1600000:

    Offline/Server:           PASS iff test_score > ref_score × (1 − threshold)   (throughput)
    SingleStream/MultiStream: PASS iff test_latency < ref_latency × (1 + threshold)

Kept because it is still a sound check: a server tuned to (or prefetching along) the official
order is fast only in it. auditkit's phases: *reference* (the run's seed,
`seed`, for the sample order and the server scenario's arrival schedule) and *alternate*
(`sample_index_seed` for the order, `schedule_seed` for the arrivals; auditkit addresses
dataset rows directly, so upstream's `qsl_rng_seed`, which picks the loaded set, has no
counterpart and is recorded only). By default they run counterbalanced, R A A R (each half of
its samples, the halves pooled end to end: `kit.designs`), so warm-up and drift cancel instead
of favouring the phase that runs second; `design: sequential` runs R then A.

`upstream_verdict` is the rule above on the two point scores. `verdict` is auditkit's decision
with its certainty (`auditkit.audits.kit.ratio`): a block bootstrap interval of the
reference/alternate score ratio at 95 %, one-sided limit L (throughput: L = 1 / (1 − threshold);
latency: L = 1 + threshold):

    FAIL iff the interval lies above L;  PASS iff it lies below L;  else INCONCLUSIVE

While INCONCLUSIVE, up to `rounds` extra rounds run (`designs.extra_round`), each one block of
each kind, `samples / 2` queries, in alternating order (A R, then R A, ...: the planned R A A R
ends on R), continuing each seed's order, pooled with the planned blocks and judged again;
they stop at `max_queries` measured queries (default 4 × 2 × samples). `upstream_verdict` is
then the point rule on the pooled scores.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from auditkit.audits.base import AuditSettings, AuditTest
from auditkit.audits.kit import designs, upstream
from auditkit.audits.kit.phases import (
    check_samples,
    measured,
    phase_problem,
    query_size,
    warmup_phase,
)
from auditkit.audits.kit.ratio import (
    StatisticalView,
    interval_text,
    statistical_view,
    view_columns,
)
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.loadgen_logs import LogFile, parse_summary
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import AuditResult, Evidence, PhaseResult

REFERENCE: Role = "reference"
ALTERNATE: Role = "alternate"
VERIFY_FILE = upstream.VERIFY_PERFORMANCE
#: compliance/nvidia/TEST05/audit.config (mlcommons/inference 4763c6b5^, its last version)
QSL_SEED = 313588358309856706
SAMPLE_INDEX_SEED = 471397156132239067
SCHEDULE_SEED = 413914573387865862


#: what TEST05's files say about it (never presented as an MLPerf requirement)
RETIRED = (
    "auditkit: TEST05 is auditkit's own alternate-seed check, not an MLPerf requirement since "
    "November 2024 (mlcommons/inference #1925)"
)


class Test05Config(AuditSettings):
    """TEST05 (alternate seeds) knobs."""

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
    return upstream.threshold(scenario, latency, upstream.TEST05_THRESHOLD)


def limit_for(scenario: str, threshold: float) -> float:
    """The limit on reference/alternate score ratio that upstream's rule draws."""
    return 1 / (1 - threshold) if scenario in ("offline", "server") else 1 + threshold


def _specs(t5: Test05Config, cfg: AuditConfig, slots: list[designs.Slot]) -> list[RunSpec]:
    """Each slot with its role's seeds: the run's for the reference, upstream's for the
    alternate phases (each block continuing its role's order)."""
    seeds = {REFERENCE: (t5.seed, t5.seed), ALTERNATE: (t5.sample_index_seed, t5.schedule_seed)}
    out = []
    for slot in slots:
        order_seed, schedule_seed = seeds[slot.role]
        order = SampleOrder.without_replacement(order_seed).skip(slot.skip)
        out.append(designs.spec(slot, order, LoadPattern.from_config(cfg.load, schedule_seed)))
    return out


class Test05(AuditTest[Test05Config, Test05Evidence]):
    """TEST05 as an audit plug-in."""

    id: ClassVar[str] = "TEST05"
    key: ClassVar[str] = "test05"
    title: ClassVar[str] = "Alternate seeds (auditkit's own; not MLPerf-required since Nov 2024)"
    summary: ClassVar[str] = (
        "is the endpoint slower off the official sample order? (auditkit's own check: MLPerf "
        "retired TEST05 in November 2024)"
    )
    settings_model = Test05Config
    evidence_model = Test05Evidence
    panel_label: ClassVar[str | None] = "seeds"
    log_inputs: ClassVar[tuple[str, ...]] = ("reference", "test")

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:
        t5 = self.settings(cfg)
        check_samples("test05.samples", t5.samples, len(dataset))
        unit = query_size(cfg.load)
        if t5.samples % unit:
            raise InputError("test05.samples must be a multiple of load.samples_per_query")
        if t5.design == "counterbalanced":
            timed = cfg.load.min_duration_s > 0
            designs.check_blocks(self.key, t5.design, 2, t5.samples, unit, timed)

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:  # noqa: ARG002 (hook signature)
        """Warm-up, reference (the run's seeds), alternate (upstream's test05 seeds)."""
        t5 = self.settings(cfg)
        duration = cfg.load.min_duration_s
        samples = (t5.samples, t5.samples)
        unit = query_size(cfg.load)
        if t5.design == "sequential":
            slots = designs.sequential(REFERENCE, ALTERNATE, samples, duration)
        else:
            slots = designs.counterbalanced(REFERENCE, ALTERNATE, samples, unit, duration)
        return [*warmup_phase(cfg, t5.warmup, t5.seed + 7), *_specs(t5, cfg, slots)]

    def extend(
        self,
        cfg: AuditConfig,
        dataset: Dataset,  # noqa: ARG002 (hook signature)
        phases: list[PhaseResult],
    ) -> list[RunSpec]:
        """One more round (one block of each kind, alternating which goes first) while the
        decision is not settled and the budget allows; [] when it is spent."""
        t5 = self.settings(cfg)
        done = designs.rounds_done(phases)
        if done >= t5.rounds:
            return []
        n = designs.half(t5.samples, query_size(cfg.load))
        measured_queries = sum(p.summary.issued for p in measured(phases))
        if measured_queries + 2 * n > (t5.max_queries or 8 * t5.samples):
            return []
        # each seed's order continues where its blocks stopped, as the planned halves do
        skip = (designs.issued(REFERENCE, phases), designs.issued(ALTERNATE, phases))
        return _specs(t5, cfg, designs.extra_round(REFERENCE, ALTERNATE, done + 1, (n, n), skip))

    def verify(self, phases: list[PhaseResult], cfg: AuditConfig) -> AuditResult[Test05Evidence]:
        t5 = self.settings(cfg)
        scenario = cfg.load.scenario
        base = base_fields(self.id, cfg, phases)
        problem = phase_problem(phases)
        named = {kind: designs.pool(kind, phases) for kind in (REFERENCE, ALTERNATE)}
        base["phases"] |= {kind: p.summary for kind, p in named.items()}
        ref, alt = named[REFERENCE].summary.score, named[ALTERNATE].summary.score
        if problem is None and (not ref or not alt):
            problem = "a phase has no score"
        if problem is not None:
            return invalid(self.result_model, base, problem)
        assert ref is not None and alt is not None
        threshold = threshold_for(scenario, ref, t5.threshold)
        limit = limit_for(scenario, threshold)
        upstream_ok = upstream.not_slower(scenario, ref, alt, threshold)
        verdict_upstream = "PASS" if upstream_ok else "FAIL"
        # the interval of reference/alternate (the "audit" side is the reference here: FAIL
        # when the official order is meaningfully faster)
        view = statistical_view(
            view_columns(named[ALTERNATE]),
            view_columns(named[REFERENCE]),
            scenario,
            limit - 1,
            seed=t5.seed,
        )
        ratio = ref / alt
        if view is None:
            verdict, why = "INCONCLUSIVE", "too few completed queries for an interval"
        else:
            verdict = view.verdict
            interval = interval_text(view.ci_low, view.ci_high, limit)
            why = {
                "PASS": f"interval {interval} below the {limit:.4g} limit",
                "FAIL": f"interval {interval} above the {limit:.4g} limit: the official order "
                "is served meaningfully faster",
                "INCONCLUSIVE": f"interval {interval} straddles the {limit:.4g} limit",
            }[verdict]
        reason = f"official/alternate-seed score ratio {ratio:.3f}; {why}"
        if verdict_upstream != verdict and verdict != "INCONCLUSIVE":
            reason += f"; upstream's point rule says {verdict_upstream}"
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
            upstream_verdict=verdict_upstream,
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
        verdict = result.upstream_verdict or result.verdict
        if result.reference_score is None or result.audit_score is None:
            text = upstream.verify_performance(None, False, [RETIRED], failure=result.reason)
            return {VERIFY_FILE: text}
        scores = (f"{result.reference_score}", f"{result.audit_score}")
        lines = [*upstream.verdict_lines(result.verdict, verdict, result.reason), RETIRED]
        return {VERIFY_FILE: upstream.verify_performance(scores, verdict == "PASS", lines)}

    def verify_logs(
        self, inputs: dict[str, LogFile], settings: Test05Config
    ) -> tuple[AuditResult[Test05Evidence], dict[str, str]]:
        """The retired verify_performance.py's verdict on two LoadGen summaries (its messages,
        its raw scores), reading today's `90.0th` spelling as well as its `90th`."""
        ref = parse_summary(inputs["reference"].summary, inputs["reference"].source)
        test = parse_summary(inputs["test"].summary, inputs["test"].source)
        if ref.scenario != test.scenario:
            raise InputError(
                f"Test and reference scenarios do not match: {ref.source} is {ref.scenario}, "
                f"{test.source} is {test.scenario}"
            )
        scenario = ref.auditkit_scenario
        warnings = [
            f"WARNING: {s.errors} ERROR reported in {label} results"
            for label, s in (("reference", ref), ("test", test))
            if s.errors
        ]
        base = {
            "test": self.id,
            "scenario": scenario,
            "config": {"reference_summary": ref.source, "test_summary": test.source,
                       "settings": settings.model_dump(mode="json")},
        }  # fmt: skip
        failure = (
            "Reference results are invalid"
            if not ref.valid
            else "Test results are invalid"
            if not test.valid
            else "Server target latency mismatch"
            if scenario == "server" and ref.target_latency_text != test.target_latency_text
            else None
        )
        if failure is None and (not ref.score or not test.score):
            failure = "no score in a summary"
        if failure is not None:
            result = self.result_model(verdict="INVALID", reason=f"INVALID: {failure}", **base)
            text = upstream.verify_performance(None, False, [RETIRED], failure=failure)
            return result, {VERIFY_FILE: text}
        assert ref.score is not None and test.score is not None
        # upstream's rule on the raw numbers it read (latency in ns for the streams), not on
        # 1e9 / latency: at the boundary the division's rounding could flip the comparison
        ref_v, test_v = float(ref.score_text or 0), float(test.score_text or 0)
        streams = scenario in upstream.LATENCY_SCENARIOS
        threshold = settings.threshold or upstream.threshold(
            scenario, ref_v if streams else None, upstream.TEST05_THRESHOLD
        )
        ok = test_v < ref_v * (1 + threshold) if streams else test_v > ref_v * (1 - threshold)
        verdict = "PASS" if ok else "FAIL"
        result = self.result_model(
            verdict=verdict,
            upstream_verdict=verdict,
            reason=f"upstream's rule on the two summaries (threshold {threshold:g}): {verdict}",
            reference_score=ref.score,
            audit_score=test.score,
            ratio=test.score / ref.score,
            threshold=threshold,
            threshold_source="given" if settings.threshold is not None else "upstream",
            evidence=Test05Evidence(
                threshold=threshold,
                limit=limit_for(scenario, threshold),
                interval=None,
                seeds={},
            ),
            **base,
        )
        scores = (ref.score_text or "", test.score_text or "")
        text = upstream.verify_performance(scores, ok, [RETIRED], warnings=warnings)
        return result, {VERIFY_FILE: text}

    def advice(self, result: AuditResult[Test05Evidence]) -> str:
        if result.verdict == "FAIL":
            return (
                "the official sample order is served faster than other seeds' orders: look for "
                "anything tuned to that order (samples precomputed or warmed in its sequence, an "
                "order-aware scheduler), remove it and rerun"
            )
        if result.verdict == "INCONCLUSIVE":
            return (
                "rerun with a larger budget (raise --max-queries, --rounds or --samples) or a "
                "quieter endpoint"
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
