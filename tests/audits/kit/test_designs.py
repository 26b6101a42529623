"""Designs lay out roles, blocks, rounds and sample counts; pooling selects by role."""

from auditkit.audits.kit import designs
from auditkit.audits.kit.designs import Slot
from auditkit.data import SampleOrder
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, Role
from auditkit.results import PhaseResult, records_frame


def _layout(slots: list[Slot]) -> list[tuple[str, str, int | None, int, int, int]]:
    return [(s.name, s.role, s.block, s.round, s.samples, s.skip) for s in slots]


def test_sequential() -> None:
    slots = designs.sequential("reference", "audit", (64, 32), 10.0, twins=4)
    assert _layout(slots) == [
        ("reference", "reference", None, 0, 64, 0),
        ("audit", "audit", None, 0, 32, 0),
    ]
    assert [s.twins for s in slots] == [4, 0]
    assert [s.duration_s for s in slots] == [10.0, 10.0]


def test_counterbalanced_is_r_a_a_r_in_whole_queries() -> None:
    slots = designs.counterbalanced("reference", "alternate", (10, 12), 2, 8.0, twins=3)
    assert _layout(slots) == [
        ("reference_1", "reference", 1, 0, 4, 0),
        ("alternate_1", "alternate", 1, 0, 6, 0),
        ("alternate_2", "alternate", 2, 0, 6, 6),
        ("reference_2", "reference", 2, 0, 6, 4),
    ]
    assert [s.twins for s in slots] == [3, 0, 0, 0]
    assert {s.duration_s for s in slots} == {4.0}


def test_alternating_pairs_swap_order_and_continue_the_first_role() -> None:
    sizes = (designs.split(10, 4, 1), designs.split(8, 4, 2))
    assert sizes == ([3, 3, 2, 2], [2, 2, 2, 2])
    slots = designs.alternating("reference", "audit", sizes, [1, 1, 5, 0], round_=0, skip=0)
    assert [s.name for s in slots] == [
        "reference_1", "audit_1", "audit_2", "reference_2",
        "reference_3", "audit_3", "audit_4", "reference_4",
    ]  # fmt: skip
    refs = [s for s in slots if s.role == "reference"]
    assert [(s.skip, s.twins) for s in refs] == [(0, 1), (3, 1), (6, 2), (8, 0)]  # twins <= size
    extra = designs.alternating("reference", "audit", ([2, 2], [2, 2]), [0, 0], 1, skip=10)
    assert [s.name for s in extra] == [
        "reference_x1_1",
        "audit_x1_1",
        "audit_x1_2",
        "reference_x1_2",
    ]
    assert {s.round for s in extra} == {1} and extra[0].skip == 10


def test_extra_rounds_alternate_which_role_goes_first() -> None:
    one = designs.extra_round("reference", "audit", 1, (4, 2), (8, 0))
    two = designs.extra_round("reference", "audit", 2, (4, 2), (12, 0))
    assert _layout(one) == [
        ("audit_x1", "audit", None, 1, 2, 0),
        ("reference_x1", "reference", None, 1, 4, 8),
    ]
    assert [s.name for s in two] == ["reference_x2", "audit_x2"]


def test_spec_carries_the_slot() -> None:
    slot = Slot("reference", 2, 1, 8, skip=3, twins=2)
    spec = designs.spec(
        slot, SampleOrder.without_replacement(0), LoadPattern("offline"), twin_salt="t"
    )
    assert (spec.name, spec.role, spec.block, spec.round) == ("reference_x1_2", "reference", 2, 1)
    assert (spec.samples, spec.twins) == (8, 2)


def _phase(name: str, role: Role, round_: int, n: int) -> PhaseResult:
    spec = designs.spec(
        Slot(role, None, round_, n), SampleOrder.without_replacement(0), LoadPattern("offline")
    )
    rows = [
        (name, i, i, 0, 0, t, t, t, t, t, "ok", 200, None, 4, 4, 0, "", "main")
        for i, t in enumerate(1_000 * (i + 1) for i in range(n))
    ]
    records = records_frame(rows)
    return PhaseResult(spec, records, summarize(records, spec))


def test_pool_selects_by_role_not_name() -> None:
    phases = [
        _phase("warmup", "warmup", 0, 2),
        _phase("reference_1", "reference", 0, 4),
        _phase("weird_name", "reference", 1, 2),  # an extra round: role and round, not name
        _phase("audit_1", "audit", 0, 3),
    ]
    pooled = designs.pool("reference", phases)
    assert pooled.name == "reference" and pooled.spec.samples == 6
    assert list(pooled.records["block"].unique()) == [1, 2]
    assert designs.pool("reference", designs.planned(phases)) is phases[1]
    assert designs.rounds_done(phases) == 1
    assert designs.issued("reference", phases) == 6
