"""Run salt and control twins: every prompt of a salted phase carries the salt, the audit sample
repeats byte for byte, twins carry their own salt, interleaved, and no cache can answer them."""

import json
from pathlib import Path

import pandas as pd
import pytest

from auditkit import artifacts
from auditkit.config import MockConfig
from auditkit.data import Dataset, Sample, SampleOrder
from auditkit.endpoints.json_api import JsonAdapter
from auditkit.endpoints.openai import ChatAdapter, CompletionsAdapter
from auditkit.loadgen import HttpTarget, run_phase
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mock.latency import CACHE_HIT_S
from auditkit.plan import LoadPattern, RunSpec, new_salt
from auditkit.results import RECORD_COLUMNS, PhaseResult

TARGET = HttpTarget("http://sut.invalid")
MS = 1_000_000
SALT = "[run 0badc0de]"
TWIN = "[control 0badc0de]"


def sut(cache: str = "none") -> SimulatedSUT:
    """No jitter, no prefill: every computed request takes 10 ms (10 tokens at 1 ms)."""
    cfg = MockConfig(
        cache=cache,  # type: ignore[arg-type]
        jitter_cv=0.0,
        base_latency_ms=0.0,
        prefill_us_per_token=0.0,
        decode_us_per_token=1000.0,
    )
    return SimulatedSUT(cfg)


def run(
    spec: RunSpec,
    dataset: Dataset,
    server: SimulatedSUT | None = None,
    adapter: CompletionsAdapter | ChatAdapter | None = None,
) -> tuple[PhaseResult, list[bytes]]:
    transport = FakeTransport(server or sut())
    adapter = adapter or CompletionsAdapter("mock-llm", 10, 0.0, False)
    result = run_phase(spec, dataset, adapter, TARGET, transport=transport)
    bodies = [r.body for r in transport.requests if r.method == "POST"]
    return result, bodies


def spec(
    order: SampleOrder, samples: int, scenario: str = "single-stream", **kw: object
) -> RunSpec:
    load = LoadPattern(scenario, max_concurrency=4)  # type: ignore[arg-type]
    return RunSpec("p", order, samples, load, **kw)  # type: ignore[arg-type]


def prompts(bodies: list[bytes]) -> list[str]:
    return [json.loads(b)["prompt"] for b in bodies]


def test_new_salt_is_a_short_random_token() -> None:
    a, b = new_salt(), new_salt()
    assert len(a) == 8 and int(a, 16) >= 0 and a != b


@pytest.mark.parametrize("scenario", ["offline", "single-stream", "multi-stream", "server"])
def test_every_prompt_of_a_salted_phase_starts_with_the_salt(
    dataset: Dataset, scenario: str
) -> None:
    s = RunSpec(
        "p",
        SampleOrder.without_replacement(1),
        16,
        LoadPattern(scenario, max_concurrency=4, samples_per_query=2, target_qps=500.0),  # type: ignore[arg-type]
        salt=SALT,
    )
    result, bodies = run(s, dataset)
    assert len(bodies) == 16
    records = result.records
    assert all(prompt.startswith(SALT + " ") for prompt in prompts(bodies))
    by_text = {p.removeprefix(SALT + " ") for p in prompts(bodies)}
    assert by_text == {dataset[int(i)].prompt for i in records["sample_index"]}
    assert (records["variant"] == "main").all()
    assert result.summary.complete


def test_audit_phase_sends_byte_identical_bodies(dataset: Dataset) -> None:
    _, bodies = run(spec(SampleOrder.single(5), 12, salt=SALT), dataset)
    assert len(bodies) == 12 and len(set(bodies)) == 1
    assert prompts(bodies)[0] == f"{SALT} {dataset[5].prompt}"


def test_unsalted_phase_sends_the_dataset_byte_for_byte(dataset: Dataset) -> None:
    result, bodies = run(spec(SampleOrder.without_replacement(0), 8), dataset)
    assert prompts(bodies) == [dataset[int(i)].prompt for i in result.records["sample_index"]]


def test_twins_are_interleaved_salted_copies_of_the_query_before(dataset: Dataset) -> None:
    s = spec(SampleOrder.without_replacement(3), 16, salt=SALT, twins=4, twin_salt=TWIN)
    assert s.planned_queries == 20
    result, bodies = run(s, dataset)
    records = result.records  # single-stream: query_id is the send order
    assert len(records) == len(bodies) == 20
    twins = records[records["variant"] == "twin"]
    # one twin centred in each quarter of the 16 main queries, right after its original
    assert twins["query_id"].tolist() == [2, 7, 12, 17]
    for qid in twins["query_id"]:
        original = records.loc[qid - 1]
        assert original["variant"] == "main"
        assert original["sample_index"] == records.loc[qid, "sample_index"]
        text = dataset[int(original["sample_index"])].prompt
        assert prompts(bodies)[qid] == f"{TWIN} {text}"
        assert prompts(bodies)[qid - 1] == f"{SALT} {text}"
    assert (records["variant"] == "main").sum() == 16
    summary = result.summary
    assert summary.requested == 20 and summary.completed == 20
    assert summary.distinct_samples == 20 and summary.complete
    assert not [r for r in summary.invalid_reasons if "repeated" in r]


@pytest.mark.parametrize(("samples", "twins"), [(10, 10), (3, 7), (50, 1), (7, 3)])
def test_twin_count_is_exact(dataset: Dataset, samples: int, twins: int) -> None:
    s = spec(SampleOrder.without_replacement(0), samples, salt=SALT, twins=twins, twin_salt=TWIN)
    result, bodies = run(s, dataset)
    variants = result.records["variant"]
    assert (variants == "twin").sum() == twins and (variants == "main").sum() == samples
    # every twin is a prompt of its own, even when a row is twinned more than once
    twin_prompts = [p for p in prompts(bodies) if p.startswith(TWIN)]
    assert len(set(twin_prompts)) == twins


def test_offline_twins_all_issued(dataset: Dataset) -> None:
    s = spec(SampleOrder.without_replacement(0), 32, "offline", salt=SALT, twins=8, twin_salt=TWIN)
    result, _ = run(s, dataset)
    assert result.summary.completed == 40
    assert (result.records["variant"] == "twin").sum() == 8


def test_output_cache_answers_salted_repeats_but_never_a_twin(dataset: Dataset) -> None:
    server = sut(cache="output")
    reference = spec(SampleOrder.without_replacement(0), 16, salt=SALT, twins=4, twin_salt=TWIN)
    ref, _ = run(reference, dataset, server)
    # each twin follows its original, already cached: a miss all the same (different text)
    assert server.stats()["cache_hits"] == 0
    assert ref.records["latency_ns"].eq(10 * MS).all()

    audit = spec(SampleOrder.single(5), 8, salt=SALT, twins=3, twin_salt=TWIN)
    aud, _ = run(audit, dataset, server)
    records = aud.records
    main = records[records["variant"] == "main"]
    twins = records[records["variant"] == "twin"]
    # the repeated salted sample is served from cache (computed once, or not at all when the
    # reference already sent it); its three twins are computed
    hits = int(main["latency_ns"].eq(int(CACHE_HIT_S * 1e9)).sum())
    assert hits >= 7 and server.stats()["cache_hits"] == hits
    assert twins["latency_ns"].eq(10 * MS).all() and len(twins) == 3


def test_salt_does_not_leak_across_runs(dataset: Dataset) -> None:
    server = sut(cache="output")
    run(spec(SampleOrder.single(5), 4, salt="[run aaaa]"), dataset, server)
    hits = server.stats()["cache_hits"]
    result, _ = run(spec(SampleOrder.single(5), 4, salt="[run bbbb]"), dataset, server)
    # the first query of a new salt is computed: nothing from the earlier run answers it
    assert server.stats()["cache_hits"] == hits + 3
    assert result.records.loc[0, "latency_ns"] == 10 * MS


def test_chat_first_user_message_carries_the_salt() -> None:
    messages = (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there"},
        {"role": "user", "content": "again"},
    )
    data = Dataset("memory", (Sample(0, None, messages),))
    adapter = ChatAdapter("mock-llm", 10, 0.0, False)
    _, bodies = run(spec(SampleOrder.single(0), 2, salt=SALT), data, adapter=adapter)
    sent = json.loads(bodies[0])["messages"]
    assert sent == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": f"{SALT} hello there"},
        {"role": "user", "content": "again"},
    ]
    assert bodies[0] == bodies[1]


def test_chat_from_a_prompt_and_completions_and_json_template(dataset: Dataset) -> None:
    sample = dataset[7].salted(SALT)
    chat = json.loads(ChatAdapter("m", 10, 0.0, False).build_body(sample))
    assert chat["messages"] == [{"role": "user", "content": f"{SALT} {dataset[7].prompt}"}]
    completion = json.loads(CompletionsAdapter("m", 10, 0.0, False).build_body(sample))
    assert completion["prompt"] == f"{SALT} {dataset[7].prompt}"
    template = JsonAdapter({"inputs": "Q: {prompt}", "n": 1}, "/generate", "text")
    assert json.loads(template.build_body(sample)) == {
        "inputs": f"Q: {SALT} {dataset[7].prompt}",
        "n": 1,
    }


def test_warmup_order_records_variant_warmup(dataset: Dataset) -> None:
    result, bodies = run(spec(SampleOrder.salted(1), 6, salt=SALT), dataset)
    assert (result.records["variant"] == "warmup").all()
    assert all(p.startswith("[warm-up ") for p in prompts(bodies))
    assert len(set(bodies)) == 6


@pytest.mark.parametrize(
    "kw",
    [
        {"twins": 2},  # no twin salt
        {"twins": 2, "salt": SALT, "twin_salt": SALT},  # a twin identical to its original
        {"twins": -1, "twin_salt": TWIN},
    ],
)
def test_bad_twin_specs_are_rejected(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="twin"):
        spec(SampleOrder.without_replacement(0), 8, **kw)


# --- the variant column ----------------------------------------------------------------------


def test_variant_is_the_last_record_column() -> None:
    assert RECORD_COLUMNS[-1] == "variant"


def test_variant_survives_parquet_and_old_files_load_as_main(
    dataset: Dataset, tmp_path: Path
) -> None:
    s = spec(SampleOrder.without_replacement(0), 8, salt=SALT, twins=2, twin_salt=TWIN)
    result, _ = run(s, dataset)
    artifacts.write_phase(tmp_path, result)
    records, _ = artifacts.load_phase(tmp_path / "p")
    assert records["variant"].dtype == "string"
    assert records["variant"].tolist() == result.records["variant"].tolist()
    assert (records["variant"] == "twin").sum() == 2
    # a records.parquet written before the column existed
    old = pd.read_parquet(tmp_path / "p" / "records.parquet").drop(columns=["variant"])
    old.to_parquet(tmp_path / "p" / "records.parquet", index=False)
    records, _ = artifacts.load_phase(tmp_path / "p")
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert (records["variant"] == "main").all() and records["variant"].dtype == "string"
