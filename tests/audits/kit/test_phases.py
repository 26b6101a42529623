"""The shared phase checks select phases by role, never by name."""

from auditkit.audits.kit import phases
from auditkit.config import AuditConfig
from auditkit.data import SampleOrder
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, Role, RunSpec
from auditkit.results import PhaseResult, records_frame


def _phase(name: str, role: Role, scenario: str = "offline") -> PhaseResult:
    spec = RunSpec(name, SampleOrder.without_replacement(0), 2, LoadPattern(scenario), role=role)  # type: ignore[arg-type]
    rows = [
        (name, i, i, 0, 0, 9, 9, 9, 9, 9, "ok", 200, None, 4, 4, 0, "", "main") for i in range(2)
    ]
    records = records_frame(rows)
    return PhaseResult(spec, records, summarize(records, spec))


def test_warmup_is_left_out_by_role() -> None:
    ran = [_phase("warmup", "warmup"), _phase("warmup_again", "warmup"), _phase("x", "audit")]
    assert [p.name for p in phases.measured(ran)] == ["x"]
    (warm,) = phases.warmup_phase(AuditConfig(), 4, seed=1)
    assert warm.role == "warmup" and warm.name == "warmup" and warm.fresh_prompts


def test_untimed_roles_are_not_judged_client_bound() -> None:
    one = _phase("whatever", "accuracy", "single-stream")
    bound = PhaseResult(one.spec, one.records, one.summary.model_copy(update={"client_bound": "x"}))
    assert phases.phase_problem([bound]) == "whatever: x"
    assert phases.phase_problem([bound], untimed=("accuracy",)) is None
    assert phases.one_at_a_time(3) == LoadPattern("single-stream", max_concurrency=1, seed=3)
