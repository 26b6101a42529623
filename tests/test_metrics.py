"""Phase summaries with control twins and warm-ups; phases without them score as before."""

from typing import Any

import pytest

from auditkit.data import SampleOrder
from auditkit.metrics import summarize
from auditkit.plan import LoadPattern, RunSpec, WarmupRule
from auditkit.results import records_frame

MS = 1_000_000


def rows(indices: list[int], variants: list[str] | None = None) -> list[tuple[Any, ...]]:
    """One-at-a-time records (single-stream shape), 10 ms ± a little each, old 17 columns
    (plus `variant` when given)."""
    out: list[tuple[Any, ...]] = []
    t = 0
    for qid, index in enumerate(indices):
        latency = (10 + qid % 3) * MS
        row: tuple[Any, ...] = (
            "p", qid, index, t, t, t + MS, None, t + latency, latency, None,
            "ok", 200, None, 20, 10, 0, f"{index:064x}",
        )  # fmt: skip
        if variants is not None:
            row = (*row, variants[qid])
        out.append(row)
        t += latency
    return out


def spec(scenario: str, samples: int, **kw: Any) -> RunSpec:
    load = LoadPattern(scenario, max_concurrency=4, samples_per_query=2, target_qps=80.0)  # type: ignore[arg-type]
    return RunSpec("p", SampleOrder.without_replacement(0), samples, load, **kw)


@pytest.mark.parametrize("scenario", ["offline", "single-stream", "multi-stream", "server"])
@pytest.mark.parametrize("repeats", [False, True])
def test_phase_without_twins_scores_as_before(scenario: str, repeats: bool) -> None:
    indices = [i % 50 if repeats else i for i in range(120)]
    old = records_frame(rows(indices))  # as written before the variant column
    new = records_frame(rows(indices, ["main"] * len(indices)))
    assert (old["variant"] == "main").all()
    before = summarize(old, spec(scenario, 120))
    after = summarize(new, spec(scenario, 120))
    assert before == after
    assert before.requested == 120 and before.distinct_samples == (50 if repeats else 120)
    assert any("repeated samples" in r for r in before.invalid_reasons) == repeats


def test_twins_count_as_queries_and_are_distinct_from_their_originals() -> None:
    indices = list(range(100))
    variants = ["main"] * 100
    for k in (10, 30, 50, 70, 90):  # each twin right after its original
        indices.insert(k + 1, indices[k])
        variants.insert(k + 1, "twin")
    records = records_frame(rows(indices, variants))
    summary = summarize(records, spec("single-stream", 100, twins=5, twin_salt="[c]"))
    assert summary.requested == summary.issued == summary.completed == 105
    assert summary.distinct_samples == 105
    assert not any("repeated" in r for r in summary.invalid_reasons)
    assert summary.complete and summary.loadgen_valid
    # the twins are scored like any query of the phase
    plain = summarize(records.drop(columns=["variant"]), spec("single-stream", 105))
    assert summary.score == plain.score and summary.latency == plain.latency


def test_repeated_main_samples_are_invalid_even_with_twins() -> None:
    indices = [i % 40 for i in range(80)] + [3]
    records = records_frame(rows(indices, ["main"] * 80 + ["twin"]))
    summary = summarize(records, spec("single-stream", 80, twins=1, twin_salt="[c]"))
    assert any("repeated samples" in r for r in summary.invalid_reasons)


def test_missing_twins_make_the_phase_incomplete() -> None:
    records = records_frame(rows(list(range(100)), ["main"] * 100))
    summary = summarize(records, spec("single-stream", 100, twins=4, twin_salt="[c]"))
    assert summary.requested == 104 and not summary.complete


def test_a_warmup_rule_requested_what_it_issued() -> None:
    rule = WarmupRule(min_queries=16, max_queries=100, max_duration_s=10.0)
    records = records_frame(rows(list(range(37)), ["warmup"] * 37))
    load = LoadPattern("offline", max_concurrency=4)
    summary = summarize(records, RunSpec("warmup", SampleOrder.salted(1), 16, load, warmup=rule))
    assert summary.requested == 37 and summary.complete
